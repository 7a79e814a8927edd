"""The task with mirakuru: start an HTTP server, wait until it answers, make a request,
find the request in its log, stop it."""
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mirakuru import HTTPExecutor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_server(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with open(tmp_path / "server.log", "w") as log:
        server = HTTPExecutor(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            url=url, stdout=log, stderr=subprocess.STDOUT, timeout=10,
        )
        with server:
            urllib.request.urlopen(url + "?probe=1").read()
            deadline = time.monotonic() + 5
            while "GET /?probe=1" not in (tmp_path / "server.log").read_text():
                assert time.monotonic() < deadline, "the request never reached the log"
                time.sleep(0.05)
