"""A pytest fixture that runs the service under test with gosuv.

Copy this into your own conftest.py. The `web` fixture starts one HTTP server for the whole
test session, waits until it answers, hands its base URL to the tests, and stops it at the
end. If a test (or pytest itself) crashes, the server still does not outlive the run:
gosuv's guardian kills it when this Python process dies.
"""

from __future__ import annotations

import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import gosuv


@pytest.fixture(scope="session")
def supervisor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gosuv.Supervisor]:
    """One supervisor for the session; its logs go to a temp dir that pytest keeps."""
    logs = tmp_path_factory.mktemp("gosuv-logs")
    with gosuv.Supervisor(log_dir=logs) as sup:
        yield sup


@pytest.fixture(scope="session")
def web(supervisor: gosuv.Supervisor, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running HTTP server that serves `hello.txt`."""
    root: Path = tmp_path_factory.mktemp("www")
    (root / "hello.txt").write_text("hello\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    supervisor.add(
        "web",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        directory=root,
        environ={"PYTHONUNBUFFERED": "1"},
        start_seconds=1,
        stop_signal="INT",
    )
    supervisor.start("web", timeout=30)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                log = supervisor.tail("web", stream="stderr", lines=20)
                pytest.fail(f"the web server did not answer within 30s; its log:\n{log}")
            time.sleep(0.05)
    yield url
    supervisor.remove("web")
