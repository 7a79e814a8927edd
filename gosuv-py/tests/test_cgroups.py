"""How gosuv owns a program's processes, as `Status.ownership` shows it, and the program
options about it: `cgroup` (auto, off or required) and `memory_max`.

The "cgroup" cases need what gosuv needs for them, a cgroup v2 it can create cgroups under
(root on a cgroup v2 host, a container, a delegated subtree); elsewhere they are skipped and
say why.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Literal

import pytest

import gosuv
from conftest import DEADLINE, alive, group_members, no_writable_cgroup_v2, wait_until

NO_CGROUP = no_writable_cgroup_v2()
needs_cgroup = pytest.mark.skipif(
    NO_CGROUP is not None, reason=f"gosuv cannot own programs by cgroup here: {NO_CGROUP}"
)


def test_no_ownership_before_the_first_start(sup: gosuv.Supervisor) -> None:
    sup.add("p", "exec sleep 300", start_seconds=0)
    st = sup.status("p")
    assert st.ownership is None
    assert "ownership=None" in repr(st)


@needs_cgroup
def test_by_default_a_program_is_owned_through_a_cgroup(sup: gosuv.Supervisor) -> None:
    sup.add("p", "exec sleep 300", start_seconds=0)
    st = sup.start("p", timeout=DEADLINE)
    assert st.ownership == "cgroup"
    assert 'ownership="cgroup"' in repr(st)
    assert sup.config("p")["cgroup"] == "auto"
    # The last run's ownership is kept once it has stopped.
    st = sup.stop("p", timeout=DEADLINE)
    assert (st.state, st.ownership) == (gosuv.State.STOPPED, "cgroup")


@needs_cgroup
def test_cgroup_required_gets_a_cgroup(sup: gosuv.Supervisor) -> None:
    sup.add("p", "exec sleep 300", start_seconds=0, cgroup="required")
    assert sup.start("p", timeout=DEADLINE).ownership == "cgroup"


def test_cgroup_off_owns_the_process_group(sup: gosuv.Supervisor) -> None:
    sup.add("p", "exec sleep 300", start_seconds=0, cgroup="off")
    assert sup.config("p")["cgroup"] == "off"
    st = sup.start("p", timeout=DEADLINE)
    assert st.ownership == "group"
    assert st.pid is not None and os.getpgid(st.pid) == st.pid
    assert sup.stop("p", timeout=DEADLINE).ownership == "group"
    assert group_members(st.pid) == []
    # Changing it back is a config change like any other.
    sup.update("p", "exec sleep 300", start_seconds=0, cgroup="auto")
    assert sup.config("p")["cgroup"] == "auto"


@pytest.mark.parametrize("cgroup", ["auto", "off"])
def test_a_child_that_leaves_the_session_is_stopped_with_its_program(
    sup: gosuv.Supervisor, tmp_path: Path, cgroup: Literal["auto", "off"]
) -> None:
    pid_file = tmp_path / "child.pid"
    sup.add(
        "p",
        f"setsid sleep 300 & echo $! > {shlex.quote(str(pid_file))}; exec sleep 300",
        start_seconds=0,
        cgroup=cgroup,
    )
    st = sup.start("p", timeout=DEADLINE)
    assert st.ownership == ("cgroup" if cgroup == "auto" and NO_CGROUP is None else "group")
    wait_until(
        lambda: pid_file.exists() and pid_file.read_text().endswith("\n"), what="the child's pid"
    )
    child = int(pid_file.read_text())
    # Out of the program's session and process group: still the program's.
    wait_until(lambda: os.getsid(child) == child, what="the child in a session of its own")
    wait_until(lambda: child in sup.stats("p").pids, what="the child in the program's stats")
    st = sup.stop("p", timeout=DEADLINE)
    assert st.state is gosuv.State.STOPPED
    assert not alive(child)


def test_memory_max_takes_bytes_or_a_size(sup: gosuv.Supervisor) -> None:
    sup.add("bytes", "exec sleep 300", memory_max=512 * 1024 * 1024)
    sup.add("size", "exec sleep 300", memory_max="1GB")
    sup.add("none", "exec sleep 300")
    assert sup.config("bytes")["memory_max"] == "512MB"
    assert sup.config("size")["memory_max"] == "1GB"
    assert "memory_max" not in sup.config("none")
    sup.update("size", "exec sleep 300", memory_max="64MB")
    assert sup.config("size")["memory_max"] == "64MB"


@pytest.mark.parametrize("cgroup", ["auto", "off"])
def test_a_program_over_memory_max_is_restarted(
    sup: gosuv.Supervisor, cgroup: Literal["auto", "off"]
) -> None:
    hog = "import time; data = b'x' * (96 << 20); time.sleep(300)"
    sup.add(
        "hog", [sys.executable, "-c", hog], start_seconds=0, memory_max="32MB", cgroup=cgroup
    )
    sup.start("hog", timeout=DEADLINE)

    def restarted_for_memory() -> bool:
        st = sup.status("hog")
        return st.restarts >= 1 and "over memory_max" in (st.last_error or "")

    wait_until(restarted_for_memory, what="a restart for using more than memory_max")
    sup.stop("hog", timeout=DEADLINE)


def test_invalid_values_are_config_errors_naming_the_key(sup: gosuv.Supervisor) -> None:
    with pytest.raises(gosuv.ConfigError) as info:
        sup.add("p", "true", cgroup="sometimes")  # type: ignore[arg-type]
    assert info.value.errors == ["p.cgroup: 'sometimes' is not auto, off or required"]
    with pytest.raises(gosuv.ConfigError, match=r"p\.memory_max: 'lots' is not a size"):
        sup.add("p", "true", memory_max="lots")
    with pytest.raises(gosuv.ConfigError, match=r"p\.memory_max: memory_max of 0 would"):
        sup.add("p", "true", memory_max=0)
    with pytest.raises(gosuv.ConfigError, match=r"p\.memory_max: -1 is not a size"):
        sup.add("p", "true", memory_max=-1)
    assert sup.list() == []
