"""The task with gosuv's pytest plugin: start an HTTP server, wait until it is ready, make
a request, find the request in its log; the plugin stops it after the test."""
import sys
import urllib.request

import gosuv
from gosuv.pytest_plugin import ProgramFactory


def test_http_server(gosuv_program: ProgramFactory, gosuv_supervisor: gosuv.Supervisor) -> None:
    server = [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"]
    gosuv_program("web", server, ready={"log": r"Serving HTTP .* port \d+"})
    port = gosuv_supervisor.wait_for_line("web", r"port \d+").split("port ")[1].split()[0]
    urllib.request.urlopen(f"http://127.0.0.1:{port}/?probe=1").close()
    assert gosuv_supervisor.wait_for_line("web", r"GET /\?probe=1 ", stream="stderr")
