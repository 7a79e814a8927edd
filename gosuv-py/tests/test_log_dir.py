"""Where the programs' logs go: a temp dir of each supervisor's own unless log_dir is given;
an explicit log_dir is locked against a second supervisor."""

from __future__ import annotations

import subprocess
import sys
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
