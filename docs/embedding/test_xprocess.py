"""The task with pytest-xprocess: start an HTTP server, wait until it answers, make a
request, find the request in its log, stop it."""
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from xprocess import ProcessStarter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_server(xprocess: Any) -> None:
    port = free_port()

    class Starter(ProcessStarter):  # type: ignore[misc]
        pattern = "Serving HTTP"
        timeout = 10
        args = [sys.executable, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        terminate_on_interrupt = True

    _, log = xprocess.ensure("server", Starter)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/?probe=1").read()
        deadline = time.monotonic() + 5
        while "GET /?probe=1" not in Path(log).read_text():
            assert time.monotonic() < deadline, "the request never reached the log"
            time.sleep(0.05)
    finally:
        xprocess.getinfo("server").terminate()
