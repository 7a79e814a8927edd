"""Where the programs' logs go: a temp dir of each supervisor's own unless log_dir is given;
an explicit log_dir is locked against a second supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gosuv
from conftest import DEADLINE, wait_until


def test_the_default_is_a_temp_dir_of_its_own_not_the_cwds_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with gosuv.Supervisor() as one, gosuv.Supervisor() as two:
        assert one.log_dir != two.log_dir
        for sup in (one, two):
            assert not sup.log_dir.is_relative_to(tmp_path)
            assert sup.log_dir.name.startswith("gosuv-logs-")
            sup.add("same", "echo from $GOSUV_TEST", environ={"GOSUV_TEST": str(sup.log_dir)})
            sup.start("same", wait=False)
        for sup in (one, two):
            log = sup.log_dir / "same.stdout.log"
            wait_until(lambda: log.exists() and log.read_text() != "", what="the log written")
            assert log.read_text() == f"from {sup.log_dir}\n"
        dirs = (one.log_dir, two.log_dir)
    assert not (tmp_path / "logs").exists()
    # A clean shutdown removes them.
    assert not any(d.exists() for d in dirs)


def test_a_failed_with_block_keeps_the_logs_and_says_where(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as info:
        with gosuv.Supervisor() as sup:
            sup.add("app", "echo the clue; sleep 60")
            sup.start("app", wait=False)
            sup.wait_for_line("app", "clue", timeout=DEADLINE)
            raise RuntimeError("the test failed")
    kept = sup.log_dir
    try:
        assert (kept / "app.stdout.log").read_text() == "the clue\n"
        assert getattr(info.value, "__notes__", None) == [f"gosuv: the programs' logs are kept in {kept}"]
    finally:
        for f in kept.iterdir():
            f.unlink()
        kept.rmdir()


def test_an_explicit_log_dir_is_kept_and_cannot_be_shared(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with gosuv.Supervisor(log_dir=logs) as sup:
        sup.add("a", "true")
        with pytest.raises(gosuv.GosuvError, match="is in use by another gosuv supervisor") as e:
            gosuv.Supervisor(log_dir=logs)
        assert str(logs) in str(e.value)
        # Another process (a second pytest-xdist worker) is refused too.
        other = subprocess.run(
            [sys.executable, "-c", f"import gosuv; gosuv.Supervisor(log_dir={str(logs)!r})"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode != 0
        assert "is in use by another gosuv supervisor" in other.stderr
    assert logs.is_dir()
    # Once the first has shut down, the directory is free again.
    with gosuv.Supervisor(log_dir=logs) as again:
        again.add("a", "true")


@pytest.mark.parametrize("kind", ["symlink", "fifo", "someone else's"])
def test_a_lock_file_that_is_not_our_regular_file_is_refused_and_left_alone(
    tmp_path: Path, kind: str
) -> None:
    """A `.gosuv.lock` planted as a symlink would make gosuv write its pid into, then
    truncate, whatever file it points to; it is refused, and nothing is written anywhere."""
    logs = tmp_path / "logs"
    logs.mkdir()
    lock = logs / ".gosuv.lock"
    victim = tmp_path / "precious"
    victim.write_text("precious data\n")
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.write_text("")
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(lock, 65534, 65534)
    with pytest.raises(gosuv.GosuvError) as e:
        gosuv.Supervisor(log_dir=logs)
    assert str(lock) in str(e.value)
    assert "remove it" in str(e.value)
    assert victim.read_text() == "precious data\n"
    if kind == "someone else's":
        assert lock.read_text() == ""


def test_a_forked_child_does_not_keep_the_log_dir_locked(tmp_path: Path) -> None:
    """os.fork() copies the lock's descriptor into the child; the child lets it go, so once
    the parent has shut down its supervisor a new one may take the directory while the
    child still lives."""
    logs = tmp_path / "logs"
    sup = gosuv.Supervisor(log_dir=logs)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: says it runs, then sleeps until killed
        os.write(ready_w, b"x")
        time.sleep(60)
        os._exit(0)
    try:
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"x"
        sup.shutdown()
        with gosuv.Supervisor(log_dir=logs) as again:
            again.add("a", "true")
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the child is still alive"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
