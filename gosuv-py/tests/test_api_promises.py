"""What the documentation promises of the API's edges (issue 18's smaller items): a shut-down
supervisor says so, a bad name's message is clean, a bad command type is a TypeError, and the
live streams can be closed and used as context managers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import gosuv
from conftest import DEADLINE


def test_calls_after_shutdown_say_the_supervisor_is_shut_down(tmp_path: Path) -> None:
    s = gosuv.Supervisor(log_dir=tmp_path)
    s.add("a", ["sleep", "10"])
    s.shutdown()
    calls: dict[str, Callable[[], object]] = {
        "status": lambda: s.status("a"),
        "config": lambda: s.config("a"),
        "tail": lambda: s.tail("a"),
        "follow": lambda: s.follow("a"),
        "stats": lambda: s.stats("a"),
        "wait": lambda: s.wait("a", timeout=1),
        "wait_for": lambda: s.wait_for("a", "running", timeout=1),
        "wait_for_line": lambda: s.wait_for_line("a", "x", timeout=1),
        "start": lambda: s.start("a"),
        "stop": lambda: s.stop("a"),
        "remove": lambda: s.remove("a"),
    }
    for what, call in calls.items():
        with pytest.raises(gosuv.SupervisorClosed, match="the supervisor is shut down") as info:
            call()
        assert "no program named" not in str(info.value), what
    assert s.list() == []
    assert "a" not in s


def test_an_invalid_names_message_is_clean(sup: gosuv.Supervisor) -> None:
    with pytest.raises(gosuv.ConfigError) as info:
        sup.add("bad name", "true")
    assert str(info.value).startswith('invalid name "bad name": use letters'), str(info.value)
    assert info.value.errors == [str(info.value)]
    with pytest.raises(gosuv.ConfigError) as program:
        sup.program("../x", "true")
    assert str(program.value).startswith('invalid name "../x"'), str(program.value)


@pytest.mark.parametrize("command", [None, 5, {"a": 1}, [1, 2], ["ok", None]])
def test_a_command_of_the_wrong_type_is_a_type_error(
    sup: gosuv.Supervisor, command: object
) -> None:
    with pytest.raises(TypeError, match="command"):
        sup.add("x", command)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="command"):
        sup.update("x", command)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="command"):
        sup.program("x", command)  # type: ignore[arg-type]
    assert "x" not in sup


def test_followers_close_and_are_context_managers(sup: gosuv.Supervisor) -> None:
    sup.add("talk", "while :; do echo hi; sleep 0.05; done")
    sup.start("talk", wait=False)
    with sup.follow("talk") as lines:
        assert lines.get(timeout=DEADLINE) == "hi"
        assert not lines.closed
    assert lines.closed
    assert lines.get(timeout=0) is None
    assert list(lines) == []
    with sup.events() as events:
        sup.stop("talk")
        assert events.get(timeout=DEADLINE) is not None
    assert events.closed
    assert list(events) == []
    follower = sup.follow("talk", stream="stderr")
    follower.close()
    follower.close()  # twice is fine
    assert follower.closed
