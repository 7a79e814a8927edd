"""A small test harness with gosuv: serve a directory over HTTP, wait until the server is
ready, make a request, read the request from the server's log, and stop it.

Run it with `python3 examples/python/harness.py` once `pip install ./gosuv-py` is done.
Press Ctrl-C at any moment: the wait stops, and leaving the `with` blocks stops the server.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import urllib.request
from pathlib import Path

import gosuv


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        www = Path(tmp) / "www"
        www.mkdir()
        (www / "hello.txt").write_text("hello from gosuv\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"

        with gosuv.Supervisor(log_dir=Path(tmp) / "logs") as sup:
            # Added, started, and running once a GET of the URL answers (2xx or 3xx): no
            # polling here. A server that does not answer within 30 s raises StartError,
            # which quotes the probe's last failure.
            with sup.program(
                "web",
                [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                directory=www,
                ready={"http": f"{url}/", "timeout": "30s"},
                stop_signal="INT",
                stop_timeout=5,
            ) as status:
                # ownership: "cgroup" where gosuv can give it a cgroup of its own, else "group".
                print(f"web is {status.state}, pid {status.pid}, owned by its {status.ownership}")
                with urllib.request.urlopen(f"{url}/hello.txt", timeout=5) as r:
                    print(f"GET /hello.txt -> {r.status}: {r.read().decode().strip()}")
                # http.server logs each request on stderr. The line may be written before this
                # call or after it: wait_for_line looks at the output already written first.
                line = sup.wait_for_line("web", "GET /hello.txt", stream="stderr", timeout=10)
                print(f"server log: {line}")
            # Leaving the block stopped the server (SIGINT, then SIGKILL after 5 s) and removed it.
            print(f"web is {'still there' if 'web' in sup else 'stopped and removed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
