"""``sup.program(...)``: a program for one ``with`` block, ready inside it (an HTTP server
answers), stopped and removed after it, also when the block raises or the start fails."""

from __future__ import annotations

import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import gosuv
from conftest import DEADLINE, alive, free_port


def http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except (urllib.error.URLError, ConnectionError):
        return False


def test_the_server_answers_in_the_block_and_is_gone_after(
    sup: gosuv.Supervisor, tmp_path: Path
) -> None:
    (tmp_path / "hello.txt").write_text("hi\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with sup.program("web", http_server(port), ready={"http": f"{url}/"}) as web:
        assert web.state is gosuv.State.RUNNING
        assert web.ready_at is not None and web.pid is not None
        with urllib.request.urlopen(f"{url}/hello.txt", timeout=5) as r:
            assert r.read() == b"hi\n"
        pid = web.pid
    assert "web" not in sup
    assert not alive(pid)
    assert not answers(url)


def test_leaving_by_an_exception_stops_and_removes_it(sup: gosuv.Supervisor) -> None:
    port = free_port()
    pid = None
    with pytest.raises(RuntimeError, match="the body failed"):
        with sup.program(
            "web", http_server(port), ready={"http": f"http://127.0.0.1:{port}/"}
        ) as web:
            pid = web.pid
            raise RuntimeError("the body failed")
    assert pid is not None
    assert "web" not in sup
    assert not alive(pid)


def test_a_start_that_fails_raises_the_probes_error_and_removes_it(
    sup: gosuv.Supervisor,
) -> None:
    scoped = sup.program(
        "never",
        "exec sleep 300",
        start_retries=1,
        ready={"tcp": f"127.0.0.1:{free_port()}", "timeout": "300ms"},
    )
    assert scoped.name == "never"
    assert "never" not in sup  # nothing is added before the block is entered
    with pytest.raises(gosuv.StartError, match="tcp probe") as caught:
        with scoped:
            pytest.fail("the block ran although the start failed")
    assert caught.value.program == "never"
    assert "never" not in sup


def test_a_start_that_takes_too_long_times_out_and_removes_it(sup: gosuv.Supervisor) -> None:
    with pytest.raises(gosuv.Timeout):
        with sup.program(
            "slow",
            "exec sleep 300",
            ready={"tcp": f"127.0.0.1:{free_port()}", "timeout": "60s"},
            timeout=0.3,
        ):
            pytest.fail("the block ran although the start timed out")
    assert "slow" not in sup


def test_bad_options_raise_at_the_call(sup: gosuv.Supervisor) -> None:
    with pytest.raises(gosuv.ConfigError, match="start_retries"):
        sup.program("bad", "exec sleep 300", start_retries=-1)
    with pytest.raises(gosuv.InvalidArgument):
        sup.program("bad", "exec sleep 300", timeout=-1)
    assert "bad" not in sup


def test_a_program_removed_in_the_block_is_fine(sup: gosuv.Supervisor) -> None:
    with sup.program("short", "exec sleep 300", start_seconds=0):
        sup.remove("short")
    assert "short" not in sup


def test_other_threads_run_while_it_starts(sup: gosuv.Supervisor) -> None:
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    try:
        before = ticks
        # About a second of waiting for the log line.
        with sup.program(
            "slow", "sleep 1; echo up; exec sleep 300", ready={"log": "up"}, timeout=DEADLINE
        ):
            assert ticks - before > 50
    finally:
        stop.set()
        t.join()
