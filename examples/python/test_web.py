"""Tests that use the `web` fixture of conftest.py."""

from __future__ import annotations

import urllib.request

import gosuv


def test_serves_a_file(web: str) -> None:
    with urllib.request.urlopen(f"{web}/hello.txt", timeout=5) as r:
        assert r.read() == b"hello\n"


def test_the_request_is_in_the_servers_log(web: str, supervisor: gosuv.Supervisor) -> None:
    lines = supervisor.follow("web", stream="stderr")
    urllib.request.urlopen(f"{web}/hello.txt", timeout=5).close()
    # get() waits at most 10 s for each line, so a missing line fails instead of hanging.
    line = lines.get(timeout=10)
    while line is not None and "GET /hello.txt" not in line:
        line = lines.get(timeout=10)
    assert line is not None and '"GET /hello.txt HTTP/1.1" 200' in line


def test_the_server_is_running(web: str, supervisor: gosuv.Supervisor) -> None:
    status = supervisor.status("web")
    assert status.state is gosuv.State.RUNNING
    assert supervisor.stats("web").rss_bytes > 0
