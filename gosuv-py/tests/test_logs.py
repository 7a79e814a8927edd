"""Output: log files, tail, and follow as an iterator of lines."""

from __future__ import annotations

import threading
from pathlib import Path

import gosuv
from conftest import DEADLINE, wait_until


def test_tail_lines_and_streams(sup: gosuv.Supervisor, tmp_path: Path) -> None:
    sup.add(
        "talk",
        "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; sleep 300",
        start_seconds=0,
    )
    sup.start("talk", timeout=DEADLINE)
    # Two pipes, read by two tasks: neither waits for the other, so wait for both.
    wait_until(lambda: sup.tail("talk", stream="stderr").count("\n") == 5, what="5 err lines")
    wait_until(lambda: sup.tail("talk").count("\n") == 5, what="5 out lines")
    assert sup.tail("talk", lines=2) == "out4\nout5\n"
    assert sup.tail("talk", stream="stderr", lines=1) == "err5\n"
    assert sup.tail("talk", lines=None).splitlines() == [f"out{i}" for i in range(1, 6)]
    assert sup.tail("talk", lines=0) == ""
    logs = tmp_path / "logs"
    wait_until(lambda: (logs / "talk.stdout.log").read_text().count("\n") == 5, what="file")
    assert (logs / "talk.stderr.log").read_text().startswith("err1\n")


def test_tail_of_a_full_buffer_starts_at_a_line(sup: gosuv.Supervisor) -> None:
    # 100 KiB of numbered lines: more than the 64 KiB kept in memory.
    sup.add("lots", "seq 1 20000; sleep 300", start_seconds=0, log_disable=True)
    sup.start("lots", timeout=DEADLINE)
    wait_until(lambda: sup.tail("lots", lines=1) == "20000\n", what="all output")
    kept = sup.tail("lots", lines=None).splitlines()
    assert kept[-1] == "20000"
    assert [int(x) for x in kept] == list(range(int(kept[0]), 20001))


def test_redirect_stderr_and_log_disable(sup: gosuv.Supervisor, tmp_path: Path) -> None:
    sup.add(
        "both",
        "echo out; echo err >&2; sleep 300",
        redirect_stderr=True,
        log_disable=True,
        start_seconds=0,
    )
    sup.start("both", timeout=DEADLINE)
    wait_until(lambda: sup.tail("both").count("\n") == 2, what="both lines")
    assert sorted(sup.tail("both").splitlines()) == ["err", "out"]
    assert sup.tail("both", stream="stderr") == ""
    assert not (tmp_path / "logs" / "both.stdout.log").exists()


def test_follow_yields_lines_across_restarts(sup: gosuv.Supervisor) -> None:
    sup.add("ticker", "echo start-$$; echo 'partial \xe9'; sleep 300", start_seconds=0)
    lines = sup.follow("ticker")
    first = sup.start("ticker", timeout=DEADLINE).pid
    assert lines.get(timeout=DEADLINE) == f"start-{first}"
    assert lines.get(timeout=DEADLINE) == "partial \xe9"
    assert lines.get(timeout=0.05) is None
    assert not lines.closed
    second = sup.restart("ticker", timeout=DEADLINE).pid
    assert next(lines) == f"start-{second}"
    assert lines.missed == 0


def test_follow_ends_when_the_program_is_removed(sup: gosuv.Supervisor) -> None:
    sup.add("words", "echo one; echo two; sleep 300", start_seconds=0)
    lines = sup.follow("words")
    sup.start("words", timeout=DEADLINE)
    seen: list[str] = []

    def read() -> None:
        seen.extend(lines)

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: len(seen) == 2, what="two lines read")
    sup.remove("words")
    reader.join(DEADLINE)
    assert not reader.is_alive()
    assert seen == ["one", "two"]
    assert lines.closed
    assert lines.get(timeout=0) is None


def test_follow_of_stderr_and_a_last_line_without_newline(sup: gosuv.Supervisor) -> None:
    sup.add("err", "printf 'a\\nb' >&2", start_seconds=0, autorestart=False)
    lines = sup.follow("err", stream="stderr")
    sup.start("err", timeout=DEADLINE)
    assert lines.get(timeout=DEADLINE) == "a"
    sup.wait_for("err", "exited", timeout=DEADLINE)
    sup.remove("err")
    assert list(lines) == ["b"]
