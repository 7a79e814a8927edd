"""pytest fixtures that run the services under test with gosuv.

Copy this into your own conftest.py. `supervisor` is one gosuv supervisor for the whole test
session; `web` starts one HTTP server for the session, ready once it answers, and stops it at
the end; `port` is a free TCP port for a test that starts a server of its own. If a test (or
pytest itself) crashes, the servers still do not outlive the run: gosuv's guardian kills them
when this Python process dies.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import gosuv


def http_server(port: int) -> list[str]:
    """The command of a Python HTTP server on 127.0.0.1:`port` serving its directory."""
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def port() -> int:
    """A free TCP port for a test's own server."""
    return free_port()


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
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Ready once a GET answers; a server that never does fails the fixture with a StartError
    # quoting the probe's last failure. Stopped and removed after the session.
    with supervisor.program(
        "web", http_server(port), directory=root, ready={"http": url}, stop_signal="INT"
    ):
        yield url
