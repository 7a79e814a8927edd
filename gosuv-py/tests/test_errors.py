"""Every error is a GosuvError subclass whose message says what to fix."""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path

import pytest

import gosuv
from conftest import DEADLINE


def test_the_hierarchy() -> None:
    for cls in (
        gosuv.ConfigError,
        gosuv.ProgramNotFound,
        gosuv.ProgramExists,
        gosuv.StartError,
        gosuv.StoppedBeforeRunning,
        gosuv.Timeout,
        gosuv.SupervisorClosed,
        gosuv.InvalidArgument,
        gosuv.TaskFailed,
    ):
        assert issubclass(cls, gosuv.GosuvError)
    assert issubclass(gosuv.Timeout, TimeoutError)
    assert issubclass(gosuv.ProgramNotFound, LookupError)
    assert issubclass(gosuv.ConfigError, ValueError)
    assert issubclass(gosuv.InvalidArgument, ValueError)
    assert issubclass(gosuv.StoppedBeforeRunning, gosuv.StartError)


def test_every_config_error_at_once(sup: gosuv.Supervisor) -> None:
    with pytest.raises(gosuv.ConfigError) as info:
        sup.add(  # type: ignore[call-arg]
            "web",
            "",
            start_seconds=-1,
            stop_signal="NOPE",
            colour="red",
        )
    errors = info.value.errors
    assert len(errors) == 4, errors
    text = str(info.value)
    for needle in (
        "web.command: `command` is empty",
        "web.start_seconds: -1 is negative",
        "web.stop_signal: 'NOPE' is not a signal name",
        "web.colour: unknown key `colour`",
    ):
        assert needle in text
    assert sup.list() == []


def test_a_missing_directory_fails_the_start_not_the_add(sup: gosuv.Supervisor) -> None:
    # A directory may be made later: the program is added, and its start says why it fails.
    sup.add("web", "true", directory="/definitely/not/here", start_retries=0)
    with pytest.raises(gosuv.StartError, match="/definitely/not/here"):
        sup.start("web")
    assert sup.status("web").state == "fatal"


def test_bad_names_and_values(sup: gosuv.Supervisor) -> None:
    with pytest.raises(gosuv.ConfigError, match="invalid name"):
        sup.add("../escape", "true")
    with pytest.raises(TypeError, match="`environ`: cannot use a value of type object"):
        sup.add("x", "true", environ=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="multiple values for argument 'name'"):
        sup.add("x", "true", name="y")  # type: ignore[misc]
    with pytest.raises(gosuv.InvalidArgument, match=r"timeout -1\.0: .* from 0 to 86400"):
        sup.wait_for("x", "running", timeout=-1)
    with pytest.raises(ValueError, match="is not a state"):
        sup.wait_for("x", "sleeping", timeout=1)
    with pytest.raises(ValueError, match="is not a stream"):
        sup.tail("x", stream="stdin")  # type: ignore[arg-type]


def test_not_found_and_exists(sup: gosuv.Supervisor) -> None:
    with pytest.raises(gosuv.ProgramNotFound, match="no program named 'ghost'") as info:
        sup.start("ghost")
    assert info.value.program == "ghost"
    for call in (sup.stop, sup.restart, sup.status, sup.remove, sup.tail, sup.follow, sup.stats):
        with pytest.raises(gosuv.ProgramNotFound):
            call("ghost")
    sup.add("one", "true")
    with pytest.raises(gosuv.ProgramExists, match="already exists") as exists:
        sup.add("one", "true")
    assert exists.value.program == "one"


def test_start_error_carries_the_reason(sup: gosuv.Supervisor) -> None:
    sup.add("bad", "echo 'port in use' >&2; exit 3", start_seconds=1, start_retries=1)
    with pytest.raises(gosuv.StartError) as info:
        sup.start("bad", timeout=DEADLINE)
    assert info.value.program == "bad"
    assert "exit code 3" in info.value.reason
    assert "port in use" in info.value.reason
    st = sup.status("bad")
    assert st.state is gosuv.State.FATAL
    assert st.last_error is not None and "port in use" in st.last_error


def test_spawn_error_is_a_start_error(sup: gosuv.Supervisor) -> None:
    sup.add("nocmd", ["/no/such/program"], start_retries=1)
    with pytest.raises(gosuv.StartError, match="no such file or command"):
        sup.start("nocmd", timeout=DEADLINE)


def test_stop_during_start_is_stopped_before_running(sup: gosuv.Supervisor) -> None:
    sup.add("slow", ["sleep", "300"], start_seconds=30)
    outcome: list[BaseException] = []

    def start() -> None:
        try:
            sup.start("slow", timeout=DEADLINE)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    starter = threading.Thread(target=start)
    starter.start()
    # Stop until the start waiting in the other thread is answered: a stop that comes
    # before that start is queued just stops, and the start begins again.
    end = time.monotonic() + DEADLINE
    while starter.is_alive() and time.monotonic() < end:
        sup.stop("slow", timeout=DEADLINE)
        starter.join(0.05)
    assert len(outcome) == 1
    assert isinstance(outcome[0], gosuv.StoppedBeforeRunning)
    assert "'slow' was stopped before it reached running" in str(outcome[0])


def test_timeout_names_the_state(sup: gosuv.Supervisor) -> None:
    sup.add("slow", ["sleep", "300"], start_seconds=30)
    with pytest.raises(gosuv.Timeout) as info:
        sup.start("slow", timeout=0.2)
    assert info.value.program == "slow"
    assert info.value.state is gosuv.State.STARTING
    assert "timed out after 0.2s waiting for 'slow' to be running; it is starting" in str(
        info.value
    )
    with pytest.raises(TimeoutError):
        sup.wait_for("slow", gosuv.State.RUNNING, timeout=0.1)
    # the program carries on
    assert sup.status("slow").state is gosuv.State.STARTING


def test_closed_supervisor(tmp_path: Path) -> None:
    s = gosuv.Supervisor(log_dir=tmp_path)
    s.add("a", "true")
    s.shutdown()
    with pytest.raises(gosuv.SupervisorClosed, match="the supervisor is shut down"):
        s.add("b", "true")


def test_bad_config_argument(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="config is None, a path"):
        gosuv.Supervisor(42, log_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(gosuv.ConfigError, match="cannot read the config file"):
        gosuv.Supervisor(tmp_path / "missing.yml", log_dir=tmp_path)


def test_a_forked_child_cannot_use_the_parents_supervisor(sup: gosuv.Supervisor) -> None:
    sup.add("a", "true")
    r, w = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads is risky; this child only
        # makes one call and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            sup.status("a")
            os.write(w, b"no error")
        except gosuv.GosuvError as e:
            os.write(w, str(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode()
    os.waitpid(pid, 0)
    assert "belongs to process" in message and "(a fork)" in message
