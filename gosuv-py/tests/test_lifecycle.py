"""Adding, starting, stopping, restarting, updating and removing programs; statuses."""

from __future__ import annotations

import datetime
import signal
from pathlib import Path

import pytest

import gosuv
from conftest import DEADLINE, alive, group_members, wait_until


def test_start_waits_until_running_and_stop_until_the_group_is_gone(
    sup: gosuv.Supervisor,
) -> None:
    sup.add("svc", "sleep 300 & sleep 300; wait", start_seconds=1)
    st = sup.status("svc")
    assert st.state is gosuv.State.STOPPED
    assert st.pid is None

    st = sup.start("svc", timeout=DEADLINE)
    assert st.state is gosuv.State.RUNNING
    assert st.pid is not None
    assert st.uptime is not None and st.uptime >= 1.0
    assert isinstance(st.started_at, datetime.datetime)
    assert st.started_at.tzinfo is not None
    pgid = st.pid
    wait_until(lambda: len(group_members(pgid)) == 3, what="sh and its two sleeps running")

    st = sup.stop("svc", timeout=DEADLINE)
    assert st.state is gosuv.State.STOPPED
    assert st.pid is None
    assert group_members(pgid) == []


def test_start_without_wait_returns_at_once(sup: gosuv.Supervisor) -> None:
    sup.add("svc", ["sleep", "300"], start_seconds=1)
    st = sup.start("svc", wait=False)
    # The request is queued, not yet handled: the status may still say stopped.
    assert st.state in (gosuv.State.STOPPED, gosuv.State.STARTING)
    st = sup.wait_for("svc", gosuv.State.RUNNING, timeout=DEADLINE)
    assert st.state is gosuv.State.RUNNING
    sup.stop("svc", wait=False)
    assert sup.wait_for("svc", "stopped", timeout=DEADLINE).state is gosuv.State.STOPPED


def test_restart_gives_a_new_process(sup: gosuv.Supervisor) -> None:
    sup.add("svc", ["sleep", "300"], start_seconds=0)
    first = sup.start("svc", timeout=DEADLINE).pid
    assert first is not None
    second = sup.restart("svc", timeout=DEADLINE).pid
    assert second is not None and second != first
    wait_until(lambda: not alive(first), what="the old process gone")
    assert sup.status("svc").state is gosuv.State.RUNNING


def test_autorestart_after_a_crash_counts_restarts(sup: gosuv.Supervisor) -> None:
    sup.add("crashy", ["sleep", "300"], start_seconds=0)
    pid = sup.start("crashy", timeout=DEADLINE).pid
    assert pid is not None
    events = sup.events()
    import os

    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: (s := sup.status("crashy")).state is gosuv.State.RUNNING and s.pid != pid,
        what="crashy restarted",
    )
    st = sup.status("crashy")
    assert st.restarts == 1
    assert st.exit_signal == signal.SIGKILL
    exited = next(e for e in events if e.to_state is gosuv.State.EXITED)
    assert exited.exit_signal == signal.SIGKILL


def test_program_that_exits_as_expected_is_exited(sup: gosuv.Supervisor) -> None:
    sup.add("once", "exit 0", start_seconds=0, autorestart=False)
    sup.start("once", timeout=DEADLINE)
    st = sup.wait_for("once", gosuv.State.EXITED, timeout=DEADLINE)
    assert st.exit_code == 0
    assert st.restarts == 0


def test_list_contains_and_remove(sup: gosuv.Supervisor) -> None:
    sup.add("b", ["sleep", "300"])
    sup.add("a", ["sleep", "300"], start_seconds=0)
    pid = sup.start("a", timeout=DEADLINE).pid
    assert pid is not None
    assert [s.name for s in sup.list()] == ["a", "b"]
    assert "a" in sup and "zzz" not in sup

    sup.remove("a")
    assert not alive(pid)
    assert [s.name for s in sup.list()] == ["b"]
    with pytest.raises(gosuv.ProgramNotFound):
        sup.status("a")


def test_options_reach_the_program(sup: gosuv.Supervisor, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    sup.add(
        "env",
        'echo "$GREETING $NUMBER $(pwd) $(umask)"; sleep 300',
        environ={"GREETING": "hello", "NUMBER": 7},
        directory=work,
        umask=0o027,
        start_seconds=0,
        stop_signal=signal.SIGINT,
        stop_timeout=5,
        exit_codes=[0, 2],
        autorestart="unexpected",
        log_max_bytes="1MB",
        log_backups=2,
    )
    sup.start("env", timeout=DEADLINE)
    wait_until(lambda: sup.tail("env") != "", what="output")
    assert sup.tail("env").strip() == f"hello 7 {work} 0027"
    cfg = sup.config("env")
    assert cfg["environ"] == ["GREETING=hello", "NUMBER=7"]
    assert cfg["directory"] == str(work)
    assert cfg["umask"] == "027"
    assert cfg["stop_signal"] == "INT"
    assert cfg["exit_codes"] == [0, 2]
    assert cfg["autorestart"] == "unexpected"
    assert cfg["log_max_bytes"] == 1 << 20


def test_update_restarts_a_running_program_with_the_new_config(
    sup: gosuv.Supervisor,
) -> None:
    sup.add("svc", "echo one; sleep 300", start_seconds=0)
    sup.start("svc", timeout=DEADLINE)
    assert sup.update("svc", "echo one; sleep 300", start_seconds=0) is False
    assert sup.update("svc", "echo two; sleep 300", start_seconds=0) is True
    wait_until(lambda: "two" in sup.tail("svc"), what="the new command's output")
    assert sup.status("svc").state is gosuv.State.RUNNING


def test_leaving_the_block_stops_everything(tmp_path: Path) -> None:
    with gosuv.Supervisor(base_dir=tmp_path, log_dir=tmp_path) as s:
        for name in ("a", "b", "c"):
            s.add(name, "sleep 300 & sleep 300; wait", start_seconds=0)
            s.start(name, timeout=DEADLINE)
        pgids = [st.pid for st in s.list()]
        assert not s.closed
    assert s.closed
    for pgid in pgids:
        assert pgid is not None
        assert group_members(pgid) == []
    with pytest.raises(gosuv.SupervisorClosed):
        s.add("late", "true")
    s.shutdown()  # a second shutdown does nothing


def test_start_auto_starts_when_added(sup: gosuv.Supervisor) -> None:
    sup.add("auto", ["sleep", "300"], start_auto=True, start_seconds=0)
    assert sup.wait_for("auto", "running", timeout=DEADLINE).pid is not None


def test_repr_and_properties(sup: gosuv.Supervisor, tmp_path: Path) -> None:
    sup.add("svc", "true")
    assert sup.base_dir == tmp_path
    assert sup.log_dir == tmp_path / "logs"
    assert "svc" in repr(sup)
    st = sup.status("svc")
    assert repr(st).startswith('Status(name="svc", state=<State.STOPPED')
    assert str(gosuv.State.RUNNING) == "running"
    name: str = "running"
    assert gosuv.State.RUNNING == name
    assert gosuv.State("fatal") is gosuv.State.FATAL
    assert gosuv.State.STOPPING.is_active and not gosuv.State.FATAL.is_active
    assert [s.value for s in gosuv.State] == [
        "stopped", "starting", "running", "backoff", "stopping", "exited", "fatal", "waiting"
    ]
    assert gosuv.State("waiting") is gosuv.State.WAITING and not gosuv.State.WAITING.is_active
