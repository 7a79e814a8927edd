"""Blocking calls release the GIL and stop at Ctrl-C (SIGINT -> KeyboardInterrupt)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import gosuv
from conftest import DEADLINE, alive, group_members, wait_until


class CtrlC:
    """Sends SIGINT to this process as Ctrl-C does, and counts any SIGINT it did not send.

    While installed, SIGINT raises KeyboardInterrupt (as Python's default handler does) only
    inside the call under test: one that comes at any other moment (a call that returned
    before it was interrupted, say) fails the test instead of stopping pytest.
    """

    def __init__(self) -> None:
        self.inside = False
        self.stray: list[float] = []
        self.pressed_at: float | None = None
        self.returned_at: float | None = None

    def handler(self, signum: int, frame: object) -> None:
        if self.inside:
            self.inside = False
            raise KeyboardInterrupt
        self.stray.append(time.monotonic())

    def press_when(self, ready: Callable[[], bool]) -> None:
        """Sends SIGINT from another thread once `ready()` holds."""

        def run() -> None:
            end = time.monotonic() + DEADLINE
            while not ready() and time.monotonic() < end:
                time.sleep(0.01)
            self.pressed_at = time.monotonic()
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=run, daemon=True).start()

    def blocked_in(self, call: Callable[[], object]) -> tuple[float, BaseException | None]:
        """Runs `call` in the main thread and presses Ctrl-C once it is inside; returns how
        long it took and what it raised."""
        started = threading.Event()
        # Another thread gets to send the signal only because the call releases the GIL.
        self.press_when(started.is_set)
        t0 = time.monotonic()
        try:
            self.inside = True
            started.set()
            call()
        except BaseException as e:  # noqa: BLE001 - the test looks at it
            self.returned_at = time.monotonic()
            return self.returned_at - t0, e
        finally:
            self.inside = False
        return time.monotonic() - t0, None


@pytest.fixture
def ctrl_c() -> Iterator[CtrlC]:
    keys = CtrlC()
    previous = signal.signal(signal.SIGINT, keys.handler)
    try:
        yield keys
    finally:
        signal.signal(signal.SIGINT, previous)
    assert keys.stray == [], "a SIGINT came when no call was waiting"


@pytest.mark.parametrize(
    "what", ["start", "wait_for", "events", "follow", "wait_for_line", "stop"]
)
def test_ctrl_c_interrupts_a_wait(sup: gosuv.Supervisor, ctrl_c: CtrlC, what: str) -> None:
    if what == "stop":
        # A program that ignores its stop signal for a minute.
        sup.add(
            "stuck",
            "trap '' TERM; echo trapped; while :; do sleep 0.1; done",
            stop_timeout=60,
        )
    else:
        # A program that never counts as started.
        sup.add("stuck", ["sleep", "300"], start_seconds=120)
    calls: dict[str, Callable[[], object]] = {
        "start": lambda: sup.start("stuck"),
        "wait_for": lambda: sup.wait_for("stuck", "fatal"),
        "events": lambda: [e for e in sup.events() if e.to_state is gosuv.State.FATAL],
        "follow": lambda: list(sup.follow("stuck")),
        "wait_for_line": lambda: sup.wait_for_line("stuck", "never written", timeout=None),
        "stop": lambda: sup.stop("stuck"),
    }
    if what == "stop":
        sup.start("stuck", wait=False)
        # Stopping before the trap is set would just stop it.
        wait_until(lambda: "trapped" in sup.tail("stuck"), what="the TERM trap set")
    took, raised = ctrl_c.blocked_in(calls[what])
    assert isinstance(raised, KeyboardInterrupt), raised
    assert took < 5.0
    if what == "wait_for_line":
        # It looks for a signal between waits of 50 ms: Ctrl-C is felt at once.
        assert ctrl_c.pressed_at is not None and ctrl_c.returned_at is not None
        assert ctrl_c.returned_at - ctrl_c.pressed_at < 0.3
    if what == "stop":
        # Ctrl-C while a stop waits means "stop now": the program got SIGKILL, and the
        # call raised once it was gone, long before its stop_timeout of 60 s.
        st = sup.status("stuck")
        assert st.state is gosuv.State.STOPPED
        assert st.exit_signal == signal.SIGKILL


def test_ctrl_c_while_a_scoped_program_starts_removes_it(
    sup: gosuv.Supervisor, ctrl_c: CtrlC
) -> None:
    scoped = sup.program("stuck", ["sleep", "300"], start_seconds=120)
    took, raised = ctrl_c.blocked_in(scoped.__enter__)
    assert isinstance(raised, KeyboardInterrupt), raised
    assert took < 5.0
    assert "stuck" not in sup


def test_other_threads_run_while_a_call_waits(sup: gosuv.Supervisor) -> None:
    sup.add("slow", ["sleep", "300"], start_seconds=1)
    counter = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counter
        while not stop.is_set():
            counter += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    try:
        before = counter
        sup.start("slow", timeout=DEADLINE)  # about one second of waiting
        assert counter - before > 50
    finally:
        stop.set()
        t.join()


SECOND_CTRL_C = """
import sys, time
import gosuv

with gosuv.Supervisor(log_dir=sys.argv[1]) as sup:
    sup.add(
        "stubborn",
        "trap 'echo got TERM' TERM; echo trapped; while :; do sleep 0.1; done",
        stop_timeout=30,
    )
    sup.start("stubborn", wait=False)
    sup.wait_for_line("stubborn", "trapped", timeout=15)
    print(sup.status("stubborn").pid, flush=True)
    time.sleep(120)  # the first Ctrl-C ends this; leaving the block stops the program
"""

# The same with gosuv.aio under asyncio.run, whose first Ctrl-C cancels the main task (so
# leaving the block stops the program gracefully) and whose second one raises
# KeyboardInterrupt and cancels the tasks left: the stop under way, which then kills.
SECOND_CTRL_C_AIO = """
import asyncio, sys
import gosuv.aio

async def main() -> None:
    async with gosuv.aio.Supervisor(log_dir=sys.argv[1]) as sup:
        await sup.add(
            "stubborn",
            "trap 'echo got TERM' TERM; echo trapped; while :; do sleep 0.1; done",
            stop_timeout=30,
        )
        await sup.start("stubborn", wait=False)
        await sup.wait_for_line("stubborn", "trapped", timeout=15)
        print((await sup.status("stubborn")).pid, flush=True)
        await asyncio.sleep(120)

asyncio.run(main())
"""


@pytest.mark.parametrize("api", ["blocking", "aio"])
def test_a_second_ctrl_c_during_the_stop_kills_at_once(tmp_path: Path, api: str) -> None:
    """A script whose first Ctrl-C starts the graceful stop of a program that ignores
    SIGTERM (stop_timeout 30 s); the second Ctrl-C kills it at once."""
    if api == "aio" and sys.version_info < (3, 11):
        pytest.skip("asyncio.run cancels the main task on Ctrl-C from Python 3.11")
    logs = tmp_path / "logs"
    script_text = SECOND_CTRL_C if api == "blocking" else SECOND_CTRL_C_AIO
    with subprocess.Popen(
        [sys.executable, "-c", script_text, str(logs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as script:
        try:
            assert script.stdout is not None and script.stderr is not None
            pid = int(script.stdout.readline())
            script.send_signal(signal.SIGINT)
            out = logs / "stubborn.stdout.log"
            wait_until(lambda: "got TERM" in out.read_text(), what="the graceful stop began")
            assert script.poll() is None, "the script did not wait for the stop"
            assert alive(pid)
            pressed = time.monotonic()
            script.send_signal(signal.SIGINT)
            script.wait(timeout=DEADLINE)
            took = time.monotonic() - pressed
            assert took < 3.0, took
            assert group_members(pid) == []
            assert "KeyboardInterrupt" in script.stderr.read()
        finally:
            script.kill()
