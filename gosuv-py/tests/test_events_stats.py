"""State-change events as an iterator; CPU and memory stats."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import gosuv
from conftest import DEADLINE, wait_until


def test_events_of_a_start_and_a_stop(sup: gosuv.Supervisor) -> None:
    sup.add("svc", ["sleep", "300"], start_seconds=0)
    events = sup.events()
    pid = sup.start("svc", timeout=DEADLINE).pid
    sup.stop("svc", timeout=DEADLINE)
    seen = []
    for ev in events:
        seen.append((ev.program, ev.from_state, ev.to_state))
        if ev.to_state is gosuv.State.STOPPED:
            break
    S = gosuv.State
    assert seen == [
        ("svc", S.STOPPED, S.STARTING),
        ("svc", S.STARTING, S.RUNNING),
        ("svc", S.RUNNING, S.STOPPING),
        ("svc", S.STOPPING, S.STOPPED),
    ]
    assert events.get(timeout=0.05) is None
    assert events.missed == 0


def test_event_fields(sup: gosuv.Supervisor) -> None:
    sup.add("quits", "exit 4", start_seconds=0, autorestart=False)
    events = sup.events()
    sup.start("quits", timeout=DEADLINE)
    while True:
        ev = events.get(timeout=DEADLINE)
        assert ev is not None
        if ev.to_state is gosuv.State.EXITED:
            break
    assert ev.from_state is gosuv.State.RUNNING
    assert ev.exit_code == 4 and ev.exit_signal is None
    assert ev.pid is not None
    assert isinstance(ev.at, datetime.datetime) and ev.at.tzinfo is not None
    assert "to_state=<State.EXITED" in repr(ev)


def test_events_end_when_the_supervisor_shuts_down(tmp_path: Path) -> None:
    s = gosuv.Supervisor(log_dir=tmp_path)
    s.add("svc", ["sleep", "300"], start_seconds=0)
    s.start("svc", timeout=DEADLINE)
    events = s.events()
    seen: list[gosuv.Event] = []
    reader = threading.Thread(target=lambda: seen.extend(events))
    reader.start()
    s.shutdown()
    reader.join(DEADLINE)
    assert not reader.is_alive()
    assert events.closed
    assert [e.to_state for e in seen] == [gosuv.State.STOPPING, gosuv.State.STOPPED]


def test_stats_of_the_whole_tree(sup: gosuv.Supervisor) -> None:
    sup.add("tree", "sleep 300 & sleep 300 & wait", start_seconds=0)
    sup.add("idle", "true")
    pid = sup.start("tree", timeout=DEADLINE).pid
    wait_until(lambda: len(sup.stats("tree").pids) == 3, what="three processes")
    st = sup.stats("tree")
    assert st.pids[0] == pid
    assert st.rss_bytes > 0
    assert st.cpu_percent >= 0.0 and st.cpu_seconds >= 0.0
    assert "Stats(pids=" in repr(st)
    assert sup.stats("idle").pids == []
    assert list(sup.stats_all()) == ["tree"]
