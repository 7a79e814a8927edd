"""Fixtures and helpers shared by the gosuv tests: real processes, temp dirs, deadlines."""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

import gosuv

# How long any single wait in a test may take before the test fails. Generous, since CI
# machines are slow and shared; the waits end as soon as their condition holds.
DEADLINE = 15.0


def wait_until(
    condition: Callable[[], bool], timeout: float = DEADLINE, what: str = "condition"
) -> None:
    """Polls `condition` until it holds; fails the test after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what} did not hold within {timeout}s")
        time.sleep(0.01)


def proc_state(pid: int) -> str | None:
    """The state letter of a process from /proc (R, S, Z, ...), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an unreaped corpse is dead)."""
    state = proc_state(pid)
    return state is not None and state != "Z"


def group_members(pgid: int) -> list[int]:
    """Every live (non-zombie) process in the process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is the state (field 3 of proc(5)); the group is field 5.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def _unescape_mountinfo(field: str) -> str:
    """Undoes the octal escapes of /proc/self/mountinfo (``\\040`` for a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def no_writable_cgroup_v2() -> str | None:
    """Why gosuv cannot own programs by cgroup here, or None when it can.

    Probes what gosuv needs: a directory created (and removed) under this process's own
    cgroup v2, found from /proc/self/cgroup and the cgroup2 mount of /proc/self/mountinfo.
    """
    mount = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            fields = left.split()
            mount = (_unescape_mountinfo(fields[3]), _unescape_mountinfo(fields[4]))
            break
    if mount is None:
        return "no cgroup v2 hierarchy is mounted"
    own = next(
        (
            line[3:]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.startswith("0::")
        ),
        None,
    )
    if own is None:
        return "this process is in no cgroup v2"
    root, point = mount
    try:
        rel = Path(own).relative_to(root)
    except ValueError:
        return f"this process's cgroup {own} is outside the mounted cgroup v2 tree"
    # Not named gosuv-*: a supervisor clears the empty gosuv-* cgroups it finds there.
    probe = Path(point) / rel / f"pytest-cgroup-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        return f"cannot create a cgroup under {probe.parent}: {e}"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[gosuv.Supervisor]:
    """A supervisor working in a temp dir; every program is stopped when the test ends."""
    with gosuv.Supervisor(base_dir=tmp_path, log_dir=tmp_path / "logs") as s:
        yield s
