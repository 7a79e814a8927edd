"""gosuv as a test harness: a real HTTP server, from start to stop; and the examples run."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import gosuv
from conftest import DEADLINE, free_port, group_members, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        body: bytes = r.read()
        return body


def answers(url: str) -> bool:
    try:
        get(url)
        return True
    except (urllib.error.URLError, ConnectionError):
        return False


def test_http_server_from_start_to_stop(sup: gosuv.Supervisor, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hi there\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sup.add(
        "web",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        directory=www,
        environ={"PYTHONUNBUFFERED": "1"},
        start_seconds=1,
        stop_signal="INT",
    )
    requests = sup.follow("web", stream="stderr")

    st = sup.start("web", timeout=DEADLINE)
    assert st.state is gosuv.State.RUNNING
    assert st.pid is not None
    pgid = st.pid
    wait_until(lambda: answers(url), what="the server answers")
    assert f"Serving HTTP on 127.0.0.1 port {port}" in sup.tail("web")

    assert get(f"{url}/hello.txt") == b"hi there\n"
    # http.server logs each request on stderr.
    for line in requests:
        if '"GET /hello.txt HTTP/1.1" 200' in line:
            break
    assert '"GET /hello.txt HTTP/1.1" 200' in sup.tail("web", stream="stderr", lines=1)
    log_file = sup.log_dir / "web.stderr.log"
    wait_until(lambda: "GET /hello.txt" in log_file.read_text(), what="the request in the log")

    st = sup.stop("web", timeout=DEADLINE)
    assert st.state is gosuv.State.STOPPED
    assert group_members(pgid) == []
    assert not answers(url)


def test_the_runnable_example(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "harness.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "GET /hello.txt HTTP/1.1\" 200" in out.stdout
    assert "web is stopped" in out.stdout


def test_the_pytest_fixture_example(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert " passed" in out.stdout


def test_the_side_by_side_example_of_the_docs(tmp_path: Path) -> None:
    """docs/embedding.md's gosuv test (the plugin, an HTTP server on port 0, its request
    found in its log) runs as written and passes."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "embedding" / "test_gosuv.py"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(docs)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout
