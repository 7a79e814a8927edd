"""A small test harness with gosuv: serve a directory over HTTP, wait until the server
answers, make a request, read the server's log, and stop it.

Run it with `python3 examples/python/harness.py` once `pip install ./gosuv-py` is done.
Press Ctrl-C at any moment: the wait stops, and leaving the `with` block stops the server.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import gosuv


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_answers(url: str, timeout: float) -> None:
    """Polls `url` until it answers; raises TimeoutError after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > end:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.05)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        www = Path(tmp) / "www"
        www.mkdir()
        (www / "hello.txt").write_text("hello from gosuv\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"

        with gosuv.Supervisor(log_dir=Path(tmp) / "logs") as sup:
            sup.add(
                "web",
                [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                directory=www,
                environ={"PYTHONUNBUFFERED": "1"},
                start_seconds=1,  # must stay up 1 s to count as started
                stop_signal="INT",
                stop_timeout=5,
            )
            status = sup.start("web", timeout=30)
            # ownership: "cgroup" where gosuv can give it a cgroup of its own, else "group".
            print(f"web is {status.state}, pid {status.pid}, owned by its {status.ownership}")

            wait_until_answers(url, timeout=30)
            # http.server logs each request on stderr: follow it before asking.
            requests = sup.follow("web", stream="stderr")
            with urllib.request.urlopen(f"{url}/hello.txt", timeout=5) as r:
                print(f"GET /hello.txt -> {r.status}: {r.read().decode().strip()}")
            for line in requests:
                if "GET /hello.txt" in line:
                    print(f"server log: {line}")
                    break

            status = sup.stop("web", timeout=30)
            print(f"web is {status.state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
