"""gosuv knows its programs whatever the host does: a host that reaps every child itself does
not make it lose an exit, it never takes the host's own children, and absurd numbers are
refused with a clear error instead of a panic.

The hosts that reap run as child Pythons: their reaping loop would take this process's
children too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

import gosuv
from conftest import DEADLINE

REAPING_HOST = textwrap.dedent(
    """
    import json, os, signal, sys, threading, time
    import gosuv

    def reap_forever() -> None:
        while True:
            try:
                os.wait()
            except ChildProcessError:
                time.sleep(0.001)

    threading.Thread(target=reap_forever, daemon=True).start()
    result = {"failures": []}
    subreaper = sys.argv[2] == "1"
    with gosuv.Supervisor(base_dir=sys.argv[1], log_dir=sys.argv[1], subreaper=subreaper) as sup:
        sup.add("stoppable", "exec sleep 300", start_seconds=0)
        sup.start("stoppable", timeout=10)
        try:
            sup.stop("stoppable", timeout=10)
        except gosuv.GosuvError as e:
            result["failures"].append(f"stop: {e}")
        sup.add("victim", "exec sleep 300", start_seconds=0)
        pid = sup.start("victim", timeout=10).pid
        took = []
        for _ in range(5):
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            while time.monotonic() - t0 < 5:
                st = sup.status("victim")
                if st.state == "running" and st.pid not in (None, pid):
                    took.append(time.monotonic() - t0)
                    pid = st.pid
                    break
                time.sleep(0.001)
            else:
                result["failures"].append("not restarted 5 s after SIGKILL")
                break
        result["took"] = took
        try:
            sup.stop("victim", timeout=10)
        except gosuv.GosuvError as e:
            result["failures"].append(f"stop after the kills: {e}")
    print(json.dumps(result), flush=True)
    """
)


@pytest.mark.parametrize("subreaper", [False, True])
def test_a_host_that_reaps_every_child_loses_no_exit(tmp_path: Path, subreaper: bool) -> None:
    out = subprocess.run(
        [sys.executable, "-c", REAPING_HOST, str(tmp_path), "1" if subreaper else "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["failures"] == []
    took = sorted(result["took"])
    assert len(took) == 5
    assert took[2] < 0.1, f"median restart {took[2] * 1000:.1f} ms is over 100 ms"


NEW_SESSION_HOST = textwrap.dedent(
    """
    import subprocess, sys
    import gosuv

    codes = []
    with gosuv.Supervisor(base_dir=sys.argv[1], log_dir=sys.argv[1], subreaper=True) as sup:
        sup.add("busy", "exec sleep 300", start_seconds=0)
        sup.start("busy", timeout=10)
        for _ in range(30):
            done = subprocess.run(
                ["sh", "-c", "echo hi; exit 3"], start_new_session=True, capture_output=True
            )
            codes.append(done.returncode)
    print(codes, flush=True)
    """
)


def test_the_hosts_children_in_new_sessions_keep_their_exit_codes(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", NEW_SESSION_HOST, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([3] * 30)


@pytest.mark.parametrize("timeout", [1e308, 86_401.0, float("inf")])
def test_absurd_timeouts_are_refused_not_a_panic(sup: gosuv.Supervisor, timeout: float) -> None:
    sup.add("p", "exec sleep 30", start_seconds=0)
    for call in (sup.start, sup.stop, sup.restart):
        with pytest.raises(ValueError, match="timeout"):
            call("p", timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        sup.wait_for("p", "running", timeout=timeout)
    assert sup.status("p").state == "stopped"


@pytest.mark.parametrize("timeout", [float("nan"), float("-inf"), -0.5, 86_400.001])
def test_every_timeout_is_bounded_by_the_core(sup: gosuv.Supervisor, timeout: float) -> None:
    sup.add("p", "exec sleep 30", start_seconds=0)
    events = sup.events()
    lines = sup.follow("p")
    calls: list[Callable[[], object]] = [
        lambda: sup.start("p", timeout=timeout),
        lambda: sup.start("p", wait=False, timeout=timeout),
        lambda: sup.stop("p", timeout=timeout),
        lambda: sup.restart("p", timeout=timeout),
        lambda: sup.wait_for("p", "running", timeout=timeout),
        lambda: events.get(timeout=timeout),
        lambda: lines.get(timeout=timeout),
    ]
    for call in calls:
        with pytest.raises(gosuv.InvalidArgument, match=r"^timeout .* from 0 to 86400 \(1 day\)"):
            call()
    assert sup.status("p").state == "stopped"
    assert issubclass(gosuv.InvalidArgument, ValueError)


def test_a_timeout_of_one_day_or_none_is_accepted(sup: gosuv.Supervisor) -> None:
    sup.add("p", "exec sleep 30", start_seconds=0)
    assert sup.start("p", timeout=86_400).state == "running"
    assert sup.wait_for("p", "running", timeout=None).state == "running"
    assert sup.stop("p", timeout=86_400.0).state == "stopped"
    assert sup.restart("p", timeout=None).state == "running"
    assert sup.stop("p", timeout=None).state == "stopped"


def test_an_int_too_large_for_a_float_is_an_error_not_a_panic(sup: gosuv.Supervisor) -> None:
    sup.add("p", "exec sleep 30", start_seconds=0)
    # Python itself cannot make a float of it (OverflowError, as for time.sleep(10**400)).
    with pytest.raises(OverflowError):
        sup.start("p", timeout=10**400)
    with pytest.raises(OverflowError):
        sup.events().get(timeout=10**400)
    assert sup.status("p").state == "stopped"


def test_absurd_numbers_in_a_program_are_refused(sup: gosuv.Supervisor) -> None:
    for key, options in (
        ("stop_timeout", gosuv.ProgramOptions(stop_timeout=2**64 - 1)),
        ("start_seconds", gosuv.ProgramOptions(start_seconds=2**64 - 1)),
        ("start_retries", gosuv.ProgramOptions(start_retries=2**32 - 1)),
    ):
        with pytest.raises(gosuv.ConfigError, match=key):
            sup.add("p", "exec sleep 30", **options)
    assert sup.list() == []
    sup.add("p", "exec sleep 30", start_seconds=0)
    sup.start("p", timeout=DEADLINE)
    assert sup.stop("p", timeout=DEADLINE).state == "stopped"
