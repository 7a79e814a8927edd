"""``depends_on``: a start waits in ``waiting`` until its dependencies are satisfied (starting
them), a dependency that goes fatal fails the start and names itself, and the constructor
starts a set of programs dependencies first."""

from __future__ import annotations

from pathlib import Path

import pytest

import gosuv
from conftest import DEADLINE

# Says it is ready only once the file `go` exists in its directory: the test decides when.
GATED_DB = "while [ ! -e go ]; do sleep 0.02; done; echo 'db ready'; exec sleep 300"


def add_gated_db(sup: gosuv.Supervisor) -> None:
    sup.add("db", GATED_DB, ready={"log": "db ready", "timeout": "60s"})


def test_a_dependent_waits_until_its_dependency_is_ready(
    sup: gosuv.Supervisor, tmp_path: Path
) -> None:
    add_gated_db(sup)
    sup.add("api", "exec sleep 300", start_seconds=0, depends_on=["db"])
    events = sup.events()
    sup.start("api", wait=False)

    st = sup.wait_for("api", "waiting", timeout=DEADLINE)
    assert st.state is gosuv.State.WAITING
    assert st.waiting_for == ["db"]
    assert st.pid is None
    # The start of api started db, which is not ready until the gate opens.
    assert sup.wait_for("db", "starting", timeout=DEADLINE).ready_at is None
    assert sup.status("api").state is gosuv.State.WAITING

    (tmp_path / "go").touch()
    api = sup.wait("api", timeout=DEADLINE)
    db = sup.status("db")
    assert db.state is gosuv.State.RUNNING
    assert api.waiting_for == []
    assert db.ready_at is not None and api.started_at is not None
    assert api.started_at >= db.ready_at

    seen: list[gosuv.Event] = []
    while not (seen and seen[-1].program == "api" and seen[-1].to_state == "running"):
        ev = events.get(timeout=DEADLINE)
        assert ev is not None, f"no running event for api; saw {seen}"
        seen.append(ev)
    api_moves = [(e.from_state, e.to_state) for e in seen if e.program == "api"]
    assert api_moves[0] == ("stopped", "waiting")
    assert api_moves[-1] == ("starting", "running")
    waiting = next(e for e in seen if e.program == "api" and e.to_state == "waiting")
    assert waiting.reason is not None and "db" in waiting.reason
    ready = next(e for e in seen if e.program == "db" and e.to_state == "running")
    assert ready.reason is not None and "log probe" in ready.reason


def test_the_started_condition_needs_only_a_process(sup: gosuv.Supervisor) -> None:
    add_gated_db(sup)  # never ready: the gate stays shut
    sup.add(
        "api",
        "exec sleep 300",
        start_seconds=0,
        depends_on=[{"name": "db", "condition": "started"}],
    )
    st = sup.start("api", timeout=DEADLINE)
    assert st.state is gosuv.State.RUNNING
    assert sup.status("db").state is gosuv.State.STARTING
    assert sup.config("api")["depends_on"] == [{"name": "db", "condition": "started"}]


def test_a_dependency_that_goes_fatal_fails_the_start_naming_it(sup: gosuv.Supervisor) -> None:
    sup.add("db", "echo 'no config' >&2; exit 3", start_retries=1)
    sup.add("api", "exec sleep 300", depends_on=["db"])
    with pytest.raises(gosuv.StartError, match="'db' is fatal") as caught:
        sup.start("api", timeout=DEADLINE)
    assert caught.value.program == "api"
    assert "no config" in caught.value.reason
    st = sup.status("api")
    assert st.state is gosuv.State.FATAL
    assert st.last_error is not None and "dependency 'db' is fatal" in st.last_error
    assert sup.status("db").state is gosuv.State.FATAL


def test_unknown_dependencies_and_cycles_are_refused(sup: gosuv.Supervisor) -> None:
    with pytest.raises(gosuv.ConfigError, match="nope"):
        sup.add("api", "exec sleep 300", depends_on=["nope"])
    assert "api" not in sup
    sup.add("a", "exec sleep 300")
    sup.add("b", "exec sleep 300", depends_on=["a"])
    with pytest.raises(gosuv.ConfigError, match="cycle"):
        sup.update("a", "exec sleep 300", depends_on=["b"])
    assert sup.config("a").get("depends_on", []) == []
    # Checked at run time too, for untyped callers (mypy refuses this call).
    soon = [{"name": "a", "condition": "soon"}]
    with pytest.raises(gosuv.ConfigError, match="condition"):
        sup.update("b", "exec sleep 300", depends_on=soon)  # type: ignore[arg-type]


def test_update_sets_depends_on(sup: gosuv.Supervisor) -> None:
    sup.add("db", "exec sleep 300", start_seconds=0)
    sup.add("api", "exec sleep 300", start_seconds=0)
    sup.update("api", "exec sleep 300", start_seconds=0, depends_on=["db"])
    assert sup.config("api")["depends_on"] == ["db"]
    sup.start("api", timeout=DEADLINE)
    assert sup.status("db").state is gosuv.State.RUNNING


def test_the_constructor_starts_dependencies_first(tmp_path: Path) -> None:
    # api comes first in the dict and depends on db: db is added and started before it.
    programs = {
        "api": {"command": "exec sleep 300", "start_auto": True, "depends_on": ["db"]},
        "db": {"command": "echo 'db ready'; exec sleep 300", "ready": {"log": "db ready"}},
    }
    with gosuv.Supervisor(programs, base_dir=tmp_path) as s:
        api = s.wait("api", timeout=DEADLINE)
        db = s.status("db")
        assert db.state is gosuv.State.RUNNING
        assert db.ready_at is not None and api.started_at is not None
        assert api.started_at >= db.ready_at
