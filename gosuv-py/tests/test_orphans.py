"""No orphans: when the Python process dies, however it dies, its programs die with it.

Each test runs a child Python that supervises a program of three processes (a shell and two
sleeps, one process group), then dies: `os._exit`, SIGKILL, or a normal exit that forgot to
shut down. The guardian process started by `kill_on_parent_death=True` (the default) kills
every group left behind; a normal exit stops them gracefully through `atexit`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DEADLINE, group_members, wait_until

CHILD = textwrap.dedent(
    """
    import os, sys
    import gosuv

    how, log_dir, kill_on_parent_death = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    sup = gosuv.Supervisor(log_dir=log_dir, kill_on_parent_death=kill_on_parent_death)
    sup.add(
        "victim",
        "trap 'echo got TERM >> stopped-by; exit 0' TERM; sleep 300 & sleep 300 & wait",
        directory=log_dir,
        start_seconds=0,
    )
    print(sup.start("victim", timeout=10).pid, flush=True)
    sys.stdin.readline()  # the test says when to die
    if how == "os._exit":
        os._exit(0)
    elif how == "sigkill":
        os.kill(os.getpid(), 9)
    # else: a normal exit, without shutdown() or a with block
    """
)


class Child:
    """A Python process that supervises one program group, and the group's id."""

    def __init__(self, how: str, log_dir: Path, kill_on_parent_death: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, how, str(log_dir), "1" if kill_on_parent_death else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            assert line.strip().isdigit(), f"the child printed {line!r}"
            self.pgid = int(line)
            wait_until(lambda: len(group_members(self.pgid)) == 3, what="the program's group")
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            self.close()
            raise

    def die(self) -> int:
        """Tells the child to die and waits for it; returns its exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        status = self.proc.wait(DEADLINE)
        self.close()
        return status

    def close(self) -> None:
        """Closes the pipes to the child."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """Groups to SIGKILL after the test, whatever happened."""
    groups: list[int] = []
    yield groups
    for g in groups:
        try:
            os.killpg(g, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("how", ["os._exit", "sigkill"])
def test_programs_die_with_the_python_process(
    tmp_path: Path, cleanup: list[int], how: str
) -> None:
    child = Child(how, tmp_path)
    cleanup.append(child.pgid)
    status = child.die()
    assert status == (0 if how == "os._exit" else -signal.SIGKILL)
    wait_until(lambda: group_members(child.pgid) == [], what="the program's group gone")
    # The guardian asks politely first (SIGTERM), then SIGKILLs what is left.
    assert (tmp_path / "stopped-by").read_text() == "got TERM\n"


def test_a_normal_exit_stops_programs_gracefully(tmp_path: Path, cleanup: list[int]) -> None:
    child = Child("exit", tmp_path)
    cleanup.append(child.pgid)
    assert child.die() == 0
    # atexit waited for the stop: the group is gone before the interpreter was.
    assert group_members(child.pgid) == []
    assert (tmp_path / "stopped-by").read_text() == "got TERM\n"


def test_without_kill_on_parent_death_programs_outlive_python(
    tmp_path: Path, cleanup: list[int]
) -> None:
    child = Child("sigkill", tmp_path, kill_on_parent_death=False)
    cleanup.append(child.pgid)
    child.die()
    # Nothing is left to stop them: they keep running (cleaned up by the fixture).
    assert len(group_members(child.pgid)) == 3
    assert not (tmp_path / "stopped-by").exists()
