"""Tests that use the fixtures of conftest.py."""

from __future__ import annotations

import re
import urllib.request
import uuid
from pathlib import Path

import gosuv
from conftest import http_server


def test_a_server_of_its_own(supervisor: gosuv.Supervisor, port: int, tmp_path: Path) -> None:
    """Starts an HTTP server, waits until it answers, reads its log, and stops it."""
    (tmp_path / "hi.txt").write_text("hi\n")
    url = f"http://127.0.0.1:{port}"
    with supervisor.program("hi", http_server(port), directory=tmp_path, ready={"http": url}):
        with urllib.request.urlopen(f"{url}/hi.txt", timeout=5) as r:
            assert r.read() == b"hi\n"
        line = supervisor.wait_for_line("hi", "GET /hi.txt", stream="stderr", timeout=10)
        assert '"GET /hi.txt HTTP/1.1" 200' in line


def test_serves_a_file(web: str) -> None:
    with urllib.request.urlopen(f"{web}/hello.txt", timeout=5) as r:
        assert r.read() == b"hello\n"


def test_the_request_is_in_the_servers_log(web: str, supervisor: gosuv.Supervisor) -> None:
    # The server is shared: a query of our own tells this request's line from the others'.
    path = f"/hello.txt?{uuid.uuid4().hex}"
    urllib.request.urlopen(f"{web}{path}", timeout=5).close()
    line = supervisor.wait_for_line("web", re.escape(path), stream="stderr", timeout=10)
    assert f'"GET {path} HTTP/1.1" 200' in line


def test_the_server_is_running(web: str, supervisor: gosuv.Supervisor) -> None:
    # wait() returns at once for a program that runs, and raises if it went fatal.
    status = supervisor.wait("web", timeout=10)
    assert status.state is gosuv.State.RUNNING
    assert status.ready_at is not None
    assert supervisor.stats("web").rss_bytes > 0
