"""Readiness from Python: ``ready=`` makes ``start`` return once the server answers (no
polling loop in the test), ``wait`` waits without starting, and a probe that never passes
fails the start with the probe's error."""

from __future__ import annotations

import sys
import urllib.request

import pytest

import gosuv
from conftest import DEADLINE, free_port


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
