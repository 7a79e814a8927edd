"""Readiness from Python: ``ready=`` makes ``start`` return once the server answers (no
polling loop in the test), ``wait`` waits without starting, and a probe that never passes
fails the start with the probe's error; ``notify`` keeps the ``STATUS=`` text, and a failing
``health`` check shows in the status and as an event with its reason."""

from __future__ import annotations

import sys
import urllib.request

import pytest

import gosuv
from conftest import DEADLINE, free_port, wait_until

# Says READY=1 and a status on $NOTIFY_SOCKET (sd_notify), then idles.
NOTIFIER = """
import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.send(b"READY=1\\nSTATUS=serving 3 clients")
time.sleep(300)
"""


def test_start_returns_once_the_http_server_answers(sup: gosuv.Supervisor) -> None:
    port = free_port()
    sup.add(
        "web",
        f"sleep 1; exec {sys.executable} -m http.server {port} --bind 127.0.0.1",
        ready={"http": f"http://127.0.0.1:{port}/", "interval": "50ms", "timeout": "30s"},
    )
    st = sup.start("web", timeout=DEADLINE)
    assert st.state == gosuv.State.RUNNING
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        assert r.status == 200
    assert sup.wait("web", timeout=DEADLINE).pid == st.pid


def test_a_probe_that_never_passes_fails_the_start_with_its_error(sup: gosuv.Supervisor) -> None:
    port = free_port()
    sup.add(
        "never",
        "exec sleep 300",
        start_retries=1,
        ready={"tcp": f"127.0.0.1:{port}", "timeout": "300ms"},
    )
    with pytest.raises(gosuv.StartError, match="not ready within 300ms"):
        sup.start("never", timeout=DEADLINE)
    with pytest.raises(gosuv.StartError, match="tcp probe"):
        sup.wait("never", timeout=DEADLINE)


def test_wait_times_out_without_starting(sup: gosuv.Supervisor) -> None:
    sup.add("idle", "exec sleep 300")
    with pytest.raises(gosuv.Timeout):
        sup.wait("idle", timeout=0.2)
    assert sup.status("idle").state == gosuv.State.STOPPED


def test_notify_readiness_keeps_the_status_text(sup: gosuv.Supervisor) -> None:
    sup.add("notifier", [sys.executable, "-c", NOTIFIER], ready={"notify": True})
    st = sup.start("notifier", timeout=DEADLINE)
    assert st.state is gosuv.State.RUNNING
    assert st.ready_at is not None and st.started_at is not None
    assert st.ready_at >= st.started_at
    wait_until(
        lambda: sup.status("notifier").status_text == "serving 3 clients", what="the status"
    )


def test_a_failing_health_check_shows_in_the_status_and_an_event(sup: gosuv.Supervisor) -> None:
    port = free_port()
    sup.add(
        "sick",
        "exec sleep 300",
        start_seconds=0,
        health={"tcp": f"127.0.0.1:{port}", "interval": "100ms", "failures": 1000},
    )
    events = sup.events()
    sup.start("sick", timeout=DEADLINE)
    ev = events.get(timeout=DEADLINE)
    while ev is not None and not (ev.from_state == ev.to_state == gosuv.State.RUNNING):
        ev = events.get(timeout=DEADLINE)
    assert ev is not None, "no event for the failed health check"
    assert ev.program == "sick"
    assert ev.reason is not None
    assert "health check failed" in ev.reason and str(port) in ev.reason
    health = sup.status("sick").health
    assert health is not None
    assert health.failures >= 1 and health.failing >= 1
    assert health.last_error is not None and str(port) in health.last_error
    assert sup.status("sick").state is gosuv.State.RUNNING
