"""The pytest plugin that ships with gosuv (fixtures gosuv_program and gosuv_supervisor): no
conftest needed. A failing test's report shows the server's last lines of output."""

from __future__ import annotations

import urllib.request

import gosuv
from conftest import http_server
from gosuv.pytest_plugin import ProgramFactory


def test_http_server(
    gosuv_program: ProgramFactory, gosuv_supervisor: gosuv.Supervisor, port: int
) -> None:
    url = f"http://127.0.0.1:{port}/"
    gosuv_program("web", http_server(port), ready={"http": url})  # started, answers HTTP
    urllib.request.urlopen(f"{url}?from=test", timeout=5).close()
    line = gosuv_supervisor.wait_for_line("web", r"GET /\?from=test ", stream="stderr")
    assert '"GET /?from=test HTTP/1.1" 200' in line
