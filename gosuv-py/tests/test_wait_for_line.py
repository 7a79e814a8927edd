"""``sup.wait_for_line``: the first matching line, from the output already written (which
``follow`` after ``start`` misses) or from output written later; a clean timeout."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

import gosuv
from conftest import DEADLINE, wait_until


def test_a_line_written_before_the_call_is_found(sup: gosuv.Supervisor) -> None:
    # Ready once it has printed its token: the line is written before the start returns.
    sup.add("p", "echo 'token=abc123'; exec sleep 300", ready={"log": "token="})
    sup.start("p", timeout=DEADLINE)
    # follow() only sees what comes after it: the token is already gone for it.
    assert sup.follow("p").get(timeout=0.2) is None
    # With no time to wait, the line can only come from the output kept in memory.
    assert sup.wait_for_line("p", r"token=\w+", timeout=0) == "token=abc123"


def test_a_line_written_later_is_found(sup: gosuv.Supervisor) -> None:
    sup.add(
        "ticker",
        "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.01; done",
        start_seconds=0,
    )
    sup.start("ticker", timeout=DEADLINE)
    wait_until(lambda: "tick" in sup.tail("ticker"), what="a first tick")
    last = int(sup.tail("ticker", lines=1).split()[1])
    # Not written yet: it can only be found by following.
    later = f"tick {last + 30}"
    assert sup.wait_for_line("ticker", f"^{later}$", timeout=DEADLINE) == later


def test_a_line_cut_by_the_call_is_found_whole(sup: gosuv.Supervisor, tmp_path: Path) -> None:
    # Writes half a line, waits for the test to open the gate, then ends the line.
    sup.add(
        "half",
        "echo up >&2; printf 'abc'; while [ ! -e go ]; do sleep 0.01; done; echo def; "
        "exec sleep 300",
        ready={"log": "up"},
    )
    sup.start("half", timeout=DEADLINE)
    wait_until(lambda: sup.tail("half").endswith("abc"), what="the first half")
    # A line counts once its newline is written.
    with pytest.raises(gosuv.Timeout):
        sup.wait_for_line("half", "abc", timeout=0)
    # The result is the same whenever the gate opens; a little later makes it likely that the
    # line is completed while the call follows, after it read the first half from memory.
    opener = threading.Timer(0.1, (tmp_path / "go").touch)
    opener.start()
    try:
        assert sup.wait_for_line("half", "^abcdef$", timeout=DEADLINE) == "abcdef"
    finally:
        opener.join()


def test_it_times_out_naming_the_regex_and_the_program(sup: gosuv.Supervisor) -> None:
    sup.add("quiet", "echo hello; exec sleep 300", start_seconds=0)
    sup.start("quiet", timeout=DEADLINE)
    t0 = time.monotonic()
    with pytest.raises(gosuv.Timeout, match=r"quiet's stdout matched 'never here'") as caught:
        sup.wait_for_line("quiet", "never here", timeout=0.3)
    took = time.monotonic() - t0
    assert 0.3 <= took < 5.0
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.program == "quiet"
    assert caught.value.state is gosuv.State.RUNNING


def test_stderr_a_compiled_pattern_and_the_first_match(sup: gosuv.Supervisor) -> None:
    sup.add(
        "talk",
        "echo 'Listening on 1' >&2; echo 'LISTENING ON 2' >&2; exec sleep 300",
        start_seconds=0,
    )
    sup.start("talk", timeout=DEADLINE)
    pattern = re.compile(r"listening on (\d)", re.IGNORECASE)
    assert sup.wait_for_line("talk", pattern, stream="stderr", timeout=DEADLINE) == (
        "Listening on 1"
    )
    assert sup.wait_for_line("talk", "ON 2$", "stderr", DEADLINE) == "LISTENING ON 2"
    with pytest.raises(gosuv.Timeout):
        sup.wait_for_line("talk", "Listening", stream="stdout", timeout=0)


def test_unknown_and_removed_programs(sup: gosuv.Supervisor) -> None:
    with pytest.raises(gosuv.ProgramNotFound):
        sup.wait_for_line("nobody", "x")
    with pytest.raises(ValueError, match="stream"):
        sup.wait_for_line("nobody", "x", stream="both")  # type: ignore[arg-type]
    with pytest.raises(re.error):
        sup.wait_for_line("nobody", "(")
    sup.add("gone", "exec sleep 300", start_seconds=0)
    sup.start("gone", timeout=DEADLINE)
    # Removed before or during the call: either way it ends with ProgramNotFound.
    remover = threading.Timer(0.1, sup.remove, args=("gone",))
    remover.start()
    try:
        with pytest.raises(gosuv.ProgramNotFound, match="gone"):
            sup.wait_for_line("gone", "never", timeout=DEADLINE)
    finally:
        remover.join()
