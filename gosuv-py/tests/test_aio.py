"""gosuv.aio: every call awaitable without stalling the event loop; async iterators that
are closeable and cancel-safe."""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import selectors
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import gosuv
import gosuv.aio
from conftest import DEADLINE, alive


def aio_threads(name: str = "gosuv-aio") -> int:
    """How many of this process's threads have this name: gosuv-aio for the threads of
    gosuv.aio's calls, gosuv-aio-hub for their dispatchers (one per open hub)."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_bytes().decode(errors="replace").strip() == name:
                count += 1
        except FileNotFoundError:
            continue
    return count


async def no_aio_thread_left() -> None:
    end = time.monotonic() + DEADLINE
    while aio_threads() > 0:
        assert time.monotonic() < end, f"{aio_threads()} gosuv-aio threads still run"
        await asyncio.sleep(0.01)


def sleeps() -> int:
    """How many times this thread has gone to sleep (voluntary context switches): waiting in
    epoll, for the GIL, for a lock, for the kernel's mm lock..."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


def read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            # A process's name may be any bytes (not UTF-8): never fail on another's.
            return f.read().decode(errors="replace")
    except OSError:  # gone (ENOENT, ESRCH)
        return None


def cpu_ns(proc_dir: str) -> int:
    """The CPU time (ns, schedstat's first field) of the thread or process of a /proc dir, or
    -1 once it is gone."""
    text = read(f"{proc_dir}/schedstat")
    return -1 if text is None else int(text.split()[0])


def parent(pid: int) -> int | None:
    stat = read(f"/proc/{pid}/stat")
    return None if stat is None else int(stat[stat.rindex(")") + 2 :].split()[1])


class Descendants:
    """This process's descendants, kept up to date cheaply: one full scan of /proc at first,
    then only the pids allocated since (the kernel hands pids out in order, wrapping at
    pid_max; /proc/sys/kernel/ns_last_pid is the last one)."""

    def __init__(self) -> None:
        self.pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        self.last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
        self.pids: set[int] = set()
        parents = {int(e): parent(int(e)) for e in os.listdir("/proc") if e.isdigit()}
        todo = [os.getpid()]
        while todo:
            p = todo.pop()
            for pid, ppid in parents.items():
                if ppid == p and pid not in self.pids:
                    self.pids.add(pid)
                    todo.append(pid)

    def snapshot(self) -> tuple[dict[int, int], bool]:
        """The CPU time of each descendant, and whether a new pid could not be looked at (a
        process that came and went: it may have been ours)."""
        last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
        unknown = False
        pid = self.last
        ours = {os.getpid()} | self.pids
        while pid != last:
            pid = pid + 1 if pid < self.pid_max else 1
            ppid = parent(pid)
            if ppid is None:
                unknown = True
            elif ppid in ours:
                self.pids.add(pid)
                ours.add(pid)
        self.last = last
        return {pid: cpu_ns(f"/proc/{pid}") for pid in self.pids}, unknown


class CountingSelector(selectors.EpollSelector):
    """The event loop's selector, counting the sleeps of the loop's thread beyond the one
    that each select() may take in epoll_wait (a wait for the GIL on the way out of it, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0  # sleeps inside select() calls
        self.extra = 0  # sleeps inside select() beyond one per call

    def select(
        self, timeout: float | None = None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        before = sleeps()
        try:
            return super().select(timeout)
        finally:
            n = sleeps() - before
            self.inside += n
            self.extra += max(0, n - 1)


class Usage:
    """The CPU time used so far by each thread of this process and each of its descendants."""

    def __init__(self, loop_tid: int, descendants: Descendants) -> None:
        self.threads = {t: cpu_ns(f"/proc/self/task/{t}") for t in os.listdir("/proc/self/task")}
        self.loop_cpu = self.threads.pop(str(loop_tid), 0)
        self.children, self.unknown = descendants.snapshot()

    def others_ran(self, before: Usage) -> bool:
        """Whether any thread but the loop's, or any descendant, ran between the two (a thread
        or process that came or went counts as having run)."""
        return (
            self.unknown or self.threads != before.threads or self.children != before.children
        )

    def ran(self, before: Usage, blocked: bool) -> str:
        """What ran between the two: which threads and descendants, for how long."""

        def used(now: dict[Any, int], then: dict[Any, int], name: str) -> list[str]:
            out = []
            for k, ns in now.items():
                if ns != then.get(k):
                    comm = (read(f"/proc/{name}/{k}/comm".replace("//", "/")) or "gone").strip()
                    out.append(f"{comm} {(ns - then.get(k, 0)) / 1e6:.3f} ms")
            return out

        return (
            f"loop blocked outside epoll: {blocked}; loop CPU "
            f"{(self.loop_cpu - before.loop_cpu) / 1e6:.3f} ms; threads "
            f"{used(self.threads, before.threads, 'self/task')}; children "
            f"{used(self.children, before.children, '')}; unknown new pid {self.unknown}"
        )


class Ticker:
    """Measures how late the event loop runs a coroutine that asks to wake every 1 ms: the
    lateness is how long the loop was kept from running it (a stall).

    What is asserted is each tick's whole lateness, with one exception that must be proven:
    the time another process or the hypervisor took. A tick is left out (only the loop
    thread's own CPU time in it counts) when, between a snapshot taken before it and one taken
    after it, no thread of this process but the loop's and no descendant used any CPU (their
    schedstat CPU times unchanged, none came or went) and the loop's thread slept nowhere but
    in its epoll_wait (voluntary context switches). Then nothing of ours but the loop's thread
    ran, and the rest of the lateness is the time that thread waited for a CPU held by another
    process (run-queue wait) or that the host took the virtual CPU or delivered its timer late.
    Any tick where gosuv's threads, the programs or their spawns ran counts whole, so the
    delays of our own process and its children are never excluded. The snapshots read /proc
    outside the timed window; they only widen the window in which other use is seen.
    A comparison with a baseline ticker run without gosuv was rejected: two maxima of a noisy
    machine differ by more than 5 ms either way, so it could neither fail reliably nor pass.
    """

    def __init__(self, selector: CountingSelector) -> None:
        self.selector = selector
        self.stalls: list[float] = []  # raw lateness of every tick
        self.counted: list[float] = []  # what is asserted
        self.phase = "before open"  # what main() is doing, printed with the worst tick
        self.worst = ""  # what ran during the worst tick counted whole, printed
        self.left_out = 0  # ticks proven to be others' (only the loop's CPU time counted)
        self.running = True
        self.gc_pauses: list[float] = []  # Python's own collections meanwhile, printed
        self._gc_start = 0.0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self.running:
            self.gc_pauses.append(time.perf_counter() - self._gc_start)

    async def run(self) -> None:
        sel = self.selector
        tid = threading.get_native_id()
        descendants = Descendants()
        before = Usage(tid, descendants)
        while self.running:
            s0, i0, e0 = sleeps(), sel.inside, sel.extra
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            late = time.perf_counter() - t0 - 0.001
            outside = (sleeps() - s0) - (sel.inside - i0)
            blocked = outside > 0 or sel.extra > e0
            after = Usage(tid, descendants)
            self.stalls.append(late)
            if blocked or after.others_ran(before):
                self.counted.append(late)
                if late >= max(self.counted):
                    self.worst = (
                        f"{late * 1000:.3f} ms in {self.phase}, {after.ran(before, blocked)}"
                    )
            else:
                self.left_out += 1
                self.counted.append(min(late, (after.loop_cpu - before.loop_cpu) / 1e9))
            before = after


def test_ten_programs_start_concurrently_and_the_loop_never_stalls(tmp_path: Path) -> None:
    """The whole `async with` (open, ten concurrent starts, shutdown) runs under the ticker."""
    selector = CountingSelector()
    ticker = Ticker(selector)

    async def main() -> float:
        tick = asyncio.ensure_future(ticker.run())
        await asyncio.sleep(0.05)  # the ticker runs before the supervisor is opened
        ticker.phase = "open"
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            ticker.phase = "add"
            names = [f"p{i}" for i in range(10)]
            for n in names:
                await sup.add(n, ["sleep", "60"], start_seconds=1, stop_timeout=5)
            ticker.phase = "start"
            t0 = time.monotonic()
            started = await asyncio.gather(*(sup.start(n, timeout=DEADLINE) for n in names))
            took = time.monotonic() - t0
            assert [s.state for s in started] == [gosuv.State.RUNNING] * 10
            ticker.phase = "shutdown"
        ticker.phase = "after shutdown"
        await asyncio.sleep(0.05)  # and after the shutdown
        ticker.running = False
        await tick
        return took

    loop = asyncio.SelectorEventLoop(selector)
    gc.callbacks.append(ticker.on_gc)
    try:
        took = loop.run_until_complete(main())
    finally:
        gc.callbacks.remove(ticker.on_gc)
        loop.close()
    # Each start waits its start_seconds of 1 s: together, not one after the other.
    assert took < 5.0, took
    worst = max(ticker.counted)

    def ms(v: list[float]) -> str:
        q = statistics.quantiles(v, n=100)
        return (
            f"median {statistics.median(v) * 1000:.3f} ms, p99 {q[98] * 1000:.3f} ms, "
            f"max {max(v) * 1000:.3f} ms"
        )

    print(
        f"loop stalls over {len(ticker.stalls)} ticks: raw {ms(ticker.stalls)}; asserted "
        f"{ms(ticker.counted)}; {ticker.left_out} ticks proven others' (loop CPU only); "
        f"longest gc pass {max(ticker.gc_pauses, default=0) * 1000:.3f} ms; worst tick counted "
        f"whole: {ticker.worst}"
    )
    assert worst < 0.005, f"the event loop stalled {worst * 1000:.1f} ms"


def test_a_call_runs_to_its_end_while_the_loop_thread_holds_the_gil(tmp_path: Path) -> None:
    """The native side of a gosuv.aio call never takes the GIL: not to run the call, not to
    hand its result back. With a switch interval of 100 s, a thread that asks for the GIL
    while the loop's thread runs Python code waits 100 s; here the loop's thread spins in
    Python (never releasing the GIL) while the start it submitted must start the program
    and the result must be ready to read, within the deadline."""

    async def main() -> None:
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            await sup.add("p", ["sleep", "60"], start_seconds=0)
            sync = sup.sync
            interval = sys.getswitchinterval()
            sys.setswitchinterval(100.0)
            try:
                call = asyncio.ensure_future(sup.start("p", timeout=DEADLINE))
                await asyncio.sleep(0)  # the task runs up to its await: the call is submitted
                end = time.monotonic() + DEADLINE
                # Neither status() nor monotonic() releases the GIL.
                while sync.status("p").state is not gosuv.State.RUNNING:
                    assert time.monotonic() < end, "the call did not run while the GIL was held"
                while not sup._completed():
                    assert time.monotonic() < end, "the result was not handed back natively"
            finally:
                sys.setswitchinterval(interval)
            assert (await call).state is gosuv.State.RUNNING
        await no_aio_thread_left()

    asyncio.run(main())


def test_every_call_and_the_program_block(tmp_path: Path) -> None:
    async def main() -> None:
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            assert sup.log_dir == tmp_path / "logs"
            await sup.add("talk", "echo hello; echo oops >&2; sleep 60", start_seconds=0)
            assert "talk" in sup
            st = await sup.start("talk", timeout=DEADLINE)
            assert st.state is gosuv.State.RUNNING
            assert (await sup.wait("talk")).pid == st.pid
            assert (await sup.status("talk")).pid == st.pid
            assert [s.name for s in await sup.list()] == ["talk"]
            assert (await sup.config("talk"))["start_seconds"] == 0
            assert await sup.wait_for_line("talk", "^hello$") == "hello"
            assert await sup.wait_for_line("talk", "oops", stream="stderr") == "oops"
            assert "hello" in await sup.tail("talk")
            assert (await sup.stats("talk")).rss_bytes > 0
            assert "talk" in await sup.stats_all()
            assert await sup.update("talk", "echo again; sleep 60", start_seconds=0)
            assert (await sup.restart("talk", timeout=DEADLINE)).state is gosuv.State.RUNNING
            assert (await sup.stop("talk")).state is gosuv.State.STOPPED
            await sup.remove("talk")
            with pytest.raises(gosuv.ProgramNotFound):
                await sup.status("talk")
            report = await sup.reload({"r": {"command": "sleep 60"}})
            assert report.added == ["r"]
            async with sup.program("web", "echo up; sleep 60", ready={"log": "up"}) as web:
                assert web.state is gosuv.State.RUNNING
                assert (await sup.wait_for("web", "running", timeout=1)).pid == web.pid
            assert "web" not in sup
            with pytest.raises(gosuv.StartError, match="exit code 3"):
                async with sup.program("bad", "exit 3", start_retries=0, timeout=DEADLINE):
                    pytest.fail("entered")
            assert "bad" not in sup
        assert sup.closed
        with pytest.raises(gosuv.SupervisorClosed):
            await sup.status("r")

    asyncio.run(main())


def test_a_supervisor_must_be_open(tmp_path: Path) -> None:
    sup = gosuv.aio.Supervisor(log_dir=tmp_path)
    with pytest.raises(gosuv.GosuvError, match="not open yet"):
        sup.follow("x")
    with gosuv.Supervisor(log_dir=tmp_path / "b") as sync:
        wrapped = gosuv.aio.Supervisor.wrap(sync)
        assert wrapped.sync is sync


def test_events_and_followers_are_async_iterators(tmp_path: Path) -> None:
    async def main() -> None:
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            await sup.add("count", "for i in 1 2 3; do echo $i; done; sleep 60", start_seconds=0)
            async with sup.events() as events, sup.follow("count") as lines:
                await sup.start("count")
                seen = []
                async for line in lines:
                    seen.append(line)
                    if line == "3":
                        break
                assert seen == ["1", "2", "3"]
                states = []
                async for ev in events:
                    states.append(ev.to_state)
                    if ev.to_state is gosuv.State.RUNNING:
                        break
                assert states == [gosuv.State.STARTING, gosuv.State.RUNNING]
                assert await events.get(timeout=0.1) is None
            assert events.closed and lines.closed
            assert [e async for e in events] == []
            ended = sup.events()
            await sup.shutdown()
            assert [e.to_state async for e in ended][-1] is gosuv.State.STOPPED
            assert ended.closed
        await no_aio_thread_left()

    asyncio.run(main())


def test_a_cancelled_reader_leaves_no_thread_and_loses_no_line(tmp_path: Path) -> None:
    async def main() -> None:
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            await sup.add("slow", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.03; done")
            follower = sup.follow("slow")
            await sup.start("slow", wait=False)
            got: list[int] = []
            for _ in range(10):
                # Each read is cancelled after a while; what it received is not lost.
                reader = asyncio.ensure_future(follower.get())
                await asyncio.sleep(0.02)
                reader.cancel()
                try:
                    line = await reader
                    assert line is not None
                    got.append(int(line))
                except asyncio.CancelledError:
                    pass
            while len(got) < 15:
                line = await follower.get(timeout=DEADLINE)
                assert line is not None
                got.append(int(line))
            assert got == list(range(got[0], got[0] + len(got)))
            # A task iterating, cancelled: its waiting thread ends.
            async def iterate() -> None:
                async for _ in sup.events():
                    pass

            task = asyncio.ensure_future(iterate())
            await asyncio.sleep(0.1)
            assert aio_threads() >= 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            follower.close()
            await no_aio_thread_left()
            # A cancelled wait_for_line ends its thread too.
            waiter = asyncio.ensure_future(sup.wait_for_line("slow", "never", timeout=None))
            await asyncio.sleep(0.1)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            await no_aio_thread_left()

    asyncio.run(main())


def test_reading_closed_never_waits_for_a_get_in_flight(tmp_path: Path) -> None:
    """`closed` is read without waiting for the lock a wait of another task holds (the
    getter runs on the loop's thread, with the GIL): each read takes well under 1 ms."""

    async def main() -> None:
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            await sup.add("quiet", ["sleep", "60"], start_seconds=0)
            await sup.start("quiet")
            follower = sup.follow("quiet")
            reader = asyncio.ensure_future(follower.get(timeout=DEADLINE))
            # The wait is under way on its thread, slice after slice (50 ms each).
            end = time.monotonic() + DEADLINE
            while aio_threads() == 0:
                assert time.monotonic() < end, "the get did not start"
                await asyncio.sleep(0.005)
            # A read that waits for a lock sleeps (a voluntary context switch); one that the
            # scheduler merely preempted on this shared machine (involuntary) is not held
            # against the getter, unless it also slept.
            slowest = 0.0
            slept = 0
            reads = 0
            until = time.monotonic() + 0.5  # ten slices of the wait
            while time.monotonic() < until:
                before = resource.getrusage(resource.RUSAGE_THREAD)
                t0 = time.perf_counter()
                assert not follower.closed
                took = time.perf_counter() - t0
                after = resource.getrusage(resource.RUSAGE_THREAD)
                slept += after.ru_nvcsw - before.ru_nvcsw
                if after.ru_nivcsw == before.ru_nivcsw or after.ru_nvcsw != before.ru_nvcsw:
                    slowest = max(slowest, took)
                reads += 1
                if reads % 100 == 0:
                    await asyncio.sleep(0)
            assert not reader.done()
            assert slowest < 0.001, f"a read of closed took {slowest * 1000:.1f} ms"
            assert slept == 0, f"reads of closed slept {slept} times"
            follower.close()
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            assert follower.closed

    asyncio.run(main())


def test_a_cancelled_program_block_removes_the_program(tmp_path: Path) -> None:
    async def main() -> None:
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            entering = asyncio.ensure_future(
                sup.program("late", ["sleep", "60"], start_seconds=1).__aenter__()
            )
            end = time.monotonic() + DEADLINE
            while "late" not in sup:  # added by the entry's thread
                assert time.monotonic() < end, "the program was not added"
                await asyncio.sleep(0.01)
            await sup.wait_for("late", "starting", timeout=DEADLINE)
            entering.cancel()
            with pytest.raises(asyncio.CancelledError):
                await entering
            # The start ends (running after 1 s), then the program is removed.
            end = time.monotonic() + DEADLINE
            while "late" in sup:
                assert time.monotonic() < end, "the program was not removed"
                await asyncio.sleep(0.02)

    asyncio.run(main())


def eventfds() -> set[int]:
    """This process's open eventfds (the aio hubs', and the core runtimes' own)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "eventfd" in os.readlink(f"/proc/self/fd/{fd}"):
                found.add(int(fd))
        except FileNotFoundError:  # the listing's own fd, closed meanwhile
            continue
    return found


def eventfd_id(fd: int) -> str | None:
    """The kernel's id of the eventfd open as `fd` (fdinfo's eventfd-id), if it is one."""
    try:
        info = Path(f"/proc/self/fdinfo/{fd}").read_text()
    except FileNotFoundError:
        return None
    ids = [line.split()[1] for line in info.splitlines() if line.startswith("eventfd-id:")]
    return ids[0] if ids else None


def test_the_eventfd_closes_with_the_supervisor_and_loops_do_not_mix(tmp_path: Path) -> None:
    """Each loop a supervisor is used on gets an eventfd of its own, closed once the
    supervisor is shut down; two supervisors on two loops (two threads) at once work, and
    leave no thread and no fd behind."""
    gc.collect()
    before = eventfds()

    def run(index: int, results: list[str], check_fd: bool = False) -> None:
        async def main() -> None:
            async with gosuv.aio.Supervisor(log_dir=tmp_path / f"logs{index}") as sup:
                await sup.add("p", "echo hello; sleep 60", start_seconds=0)
                await sup.start("p")
                results.append(await sup.wait_for_line("p", "hello", timeout=DEADLINE))
                hubs = list(sup._hubs.values())
                assert len(hubs) == 1 and not hubs[0].closed
                fd = hubs[0].fd
                ident = eventfd_id(fd)
                assert ident is not None
            assert hubs[0].closed
            # Closed at once, or by the last call's thread as it ends. (With nothing else
            # making eventfds meanwhile, the fd and its kernel id are not reused.)
            end = time.monotonic() + DEADLINE
            while check_fd and eventfd_id(fd) == ident:
                assert time.monotonic() < end, "the eventfd is still open"
                await asyncio.sleep(0.01)

        asyncio.run(main())

    results: list[str] = []
    run(0, results, check_fd=True)
    # Two loops at once, one supervisor on each.
    threads = [threading.Thread(target=run, args=(i, results)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert results == ["hello"] * 3
    asyncio.run(no_aio_thread_left())
    gc.collect()  # the supervisors themselves, and their runtimes' eventfds
    # One dispatcher thread for the whole process, started by `import gosuv.aio`.
    assert aio_threads("gosuv-aio-hub") == 1
    assert eventfds() - before == set()


def test_shutdown_on_one_loop_closes_the_eventfds_of_the_others(tmp_path: Path) -> None:
    """A supervisor used from loop A (still running, on its own thread) and from loop C
    (closed since), then shut down on loop B: A's eventfd is closed and its reader removed
    (on A's thread), C's eventfd is closed too, and the shutdown does not fail."""
    loop_a = asyncio.new_event_loop()
    runner = threading.Thread(target=loop_a.run_forever)
    runner.start()

    def on_a(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop_a).result(DEADLINE)

    async def has_reader(fd: int) -> bool:
        # remove_reader says whether one was there; a hub's reader is put back if it was.
        hubs = [h for h in sup._hubs.values() if h.loop is loop_a and h.fd == fd]
        removed = loop_a.remove_reader(fd)
        if removed:
            loop_a.add_reader(fd, hubs[0]._drain)
        return removed

    sup = gosuv.aio.Supervisor(log_dir=tmp_path / "logs")
    try:

        async def on_b() -> tuple[int, str, int, str]:
            await sup.open()
            assert on_a(sup.list()) == []
            loop_c_hub: list[Any] = []

            def use_from_c() -> None:
                async def call() -> None:
                    assert await sup.list() == []
                    loop_c_hub.append(sup._hubs[asyncio.get_running_loop()])

                asyncio.run(call())  # loop C: closed after the call

            other = threading.Thread(target=use_from_c)
            other.start()
            other.join(DEADLINE)
            hub_a = sup._hubs[loop_a]
            fd_a, fd_c = hub_a.fd, loop_c_hub[0].fd
            id_a, id_c = eventfd_id(fd_a), eventfd_id(fd_c)
            assert id_a is not None and id_c is not None
            assert on_a(has_reader(fd_a))
            await sup.shutdown()
            return fd_a, id_a, fd_c, id_c

        fd_a, id_a, fd_c, id_c = asyncio.run(on_b())
        end = time.monotonic() + DEADLINE
        while eventfd_id(fd_a) == id_a or eventfd_id(fd_c) == id_c:
            assert time.monotonic() < end, "an eventfd of another loop is still open"
            time.sleep(0.01)
        assert not on_a(has_reader(fd_a))
    finally:
        loop_a.call_soon_threadsafe(loop_a.stop)
        runner.join(DEADLINE)
        loop_a.close()


def test_a_cancelled_call_carries_on_and_its_late_result_is_dropped(tmp_path: Path) -> None:
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx))
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            await sup.add("slow", ["sleep", "60"], start_seconds=1)
            started = asyncio.ensure_future(sup.start("slow"))
            failing = asyncio.ensure_future(sup.wait("slow", timeout=0.2))  # will raise
            await asyncio.sleep(0.05)
            started.cancel()
            failing.cancel()
            for fut in (started, failing):
                with pytest.raises(asyncio.CancelledError):
                    await fut
            # The start carries on: the program gets running; the results are dropped.
            st = await sup.wait_for("slow", "running", timeout=DEADLINE)
            assert st.state is gosuv.State.RUNNING
            end = time.monotonic() + DEADLINE
            while any(h.native.running() for h in sup._hubs.values()):
                assert time.monotonic() < end, "the cancelled calls did not end"
                await asyncio.sleep(0.01)
        await no_aio_thread_left()

    asyncio.run(main())
    gc.collect()
    assert errors == []


def test_cancelled_waits_keep_neither_a_thread_nor_the_supervisor(tmp_path: Path) -> None:
    # Defect: each cancelled wait kept its thread, and the thread kept the supervisor, its
    # program and (after Drop let go of it) a log_dir lock that no longer protected anything.
    logs = tmp_path / "logs"

    async def main() -> int:
        sup = await gosuv.aio.Supervisor(
            {"p": {"command": "sleep 600", "start_auto": True}}, log_dir=logs
        ).open()
        st = await sup.wait("p")
        for call in ("wait_for", "start", "wait"):
            for _ in range(100):
                if call == "wait_for":
                    aw: Any = sup.wait_for("p", "fatal", timeout=None)
                elif call == "start":
                    aw = sup.restart("p", timeout=None)
                else:
                    aw = sup.wait("p", timeout=None)
                try:
                    await asyncio.wait_for(aw, 0.001)
                except asyncio.TimeoutError:
                    pass
        end = time.monotonic() + DEADLINE
        while aio_threads() > 0:
            assert time.monotonic() < end, f"{aio_threads()} gosuv-aio threads still run"
            await asyncio.sleep(0.01)
        assert st.pid is not None
        return st.pid

    pid = asyncio.run(main())
    gc.collect()
    # The supervisor object is gone: its program goes, and the log_dir is free only then.
    end = time.monotonic() + DEADLINE
    while True:
        try:
            again = gosuv.Supervisor(log_dir=logs)
        except gosuv.GosuvError:
            assert time.monotonic() < end, "the log_dir is never let go"
            time.sleep(0.01)
            continue
        assert not alive(pid), "the log_dir was let go while the program still ran"
        again.shutdown()
        break


def test_cancelling_open_does_not_block_the_loop_for_the_shutdown(tmp_path: Path) -> None:
    # Defect: the made supervisor was dropped on the loop's thread, which then waited for
    # its whole shutdown (a program that ignores TERM: stop_timeout).

    lateness: list[float] = []
    ticking_on = True

    async def tick() -> None:
        while ticking_on:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - t0 - 0.001)

    async def main() -> float:
        nonlocal ticking_on
        sup = gosuv.aio.Supervisor(
            # nohup ignores SIGHUP from its start: the stop waits out stop_timeout.
            {"p": {"command": "nohup sleep 600", "start_auto": True, "stop_signal": "HUP",
                   "stop_timeout": 2}},
            log_dir=tmp_path / "logs",
        )
        opening = asyncio.ensure_future(sup.open())
        await asyncio.sleep(0)
        opening.cancel()
        # The supervisor is made and its program started (and ignoring HUP) meanwhile; the
        # loop has not read the result yet.
        time.sleep(0.5)
        ticking = asyncio.ensure_future(tick())
        with pytest.raises(asyncio.CancelledError):
            await opening
        # Until the supervisor made meanwhile is shut down (its log_dir let go).
        end = time.monotonic() + DEADLINE
        while True:
            try:
                gosuv.Supervisor(log_dir=tmp_path / "logs").shutdown()
                break
            except gosuv.GosuvError:
                assert time.monotonic() < end, "the cancelled open's supervisor lives on"
                await asyncio.sleep(0.01)
        ticking_on = False
        await ticking
        return max(lateness)

    worst = asyncio.run(main())
    assert worst < 0.5, f"the loop stalled {worst * 1000:.0f} ms"


def count_native_calls(sup: gosuv.aio.Supervisor) -> list[int]:
    """Counts the native calls the supervisor's hub starts from now on (the returned list's
    first item; each was a thread or a task) and the results they hand to the loop (its
    second item; each a wake-up of the loop)."""
    calls = [0, 0]
    real = gosuv.aio._Hub.submit

    def submit(hub: Any, start: Any, done: Any) -> int:
        calls[0] += 1

        def counted(ok: bool, value: Any) -> None:
            calls[1] += 1
            done(ok, value)

        return real(hub, start, counted)

    sup._hub().submit = submit.__get__(sup._hub())  # type: ignore[method-assign]
    return calls


async def nothing_left_running(sup: gosuv.aio.Supervisor) -> None:
    """Waits until no native call of the supervisor is under way or undrained."""
    end = time.monotonic() + DEADLINE
    while any(h.native.running() for h in sup._hubs.values() if not h.closed):
        assert time.monotonic() < end, "a native call is still under way"
        await asyncio.sleep(0.01)


def test_wait_for_line_on_a_chatty_program_makes_one_native_call(tmp_path: Path) -> None:
    """One wait_for_line is one long-lived native wait, not one per batch of lines: a 2 s
    wait on a program that prints a line every millisecond starts at most a few native
    calls (it used to start hundreds, each a thread and a wake-up of the loop)."""

    async def main() -> None:
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            chatty = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.001)"
            await sup.add("chatty", [sys.executable, "-c", chatty], start_seconds=0)
            await sup.start("chatty", timeout=DEADLINE)
            assert await sup.wait_for_line("chatty", "^tick$", timeout=DEADLINE) == "tick"
            await nothing_left_running(sup)
            calls = count_native_calls(sup)
            started = time.monotonic()
            with pytest.raises(gosuv.Timeout):
                await sup.wait_for_line("chatty", "never printed", timeout=2)
            assert time.monotonic() - started >= 2
            assert calls[0] <= 5, f"one 2 s wait_for_line made {calls[0]} native calls"
            # Its batches are at least 10 ms apart: at most 200 wake-ups of the loop.
            assert calls[1] <= 250, f"one 2 s wait_for_line woke the loop {calls[1]} times"
            await nothing_left_running(sup)
            assert aio_threads() == 0

    asyncio.run(main())


def test_wait_for_line_finds_the_tail_then_new_output_and_cancel_leaves_nothing(
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"

    async def main() -> None:
        async with gosuv.aio.Supervisor(log_dir=tmp_path / "logs") as sup:
            await sup.add(
                "p",
                f"echo early; while [ ! -e '{go}' ]; do sleep 0.01; done; echo late now; sleep 60",
                start_seconds=0,
            )
            await sup.start("p", timeout=DEADLINE)
            # In the output already written (the tail), found without new output.
            assert await sup.wait_for_line("p", "^ear", timeout=DEADLINE) == "early"
            calls = count_native_calls(sup)
            waiter = asyncio.ensure_future(sup.wait_for_line("p", "^late", timeout=DEADLINE))
            await asyncio.sleep(0.1)
            assert not waiter.done()
            go.touch()
            # In new output.
            assert await waiter == "late now"
            assert calls[0] <= 2
            await nothing_left_running(sup)
            # Cancelled: the native wait ends at once, nothing is left under way.
            waiter = asyncio.ensure_future(sup.wait_for_line("p", "never", timeout=None))
            await asyncio.sleep(0.1)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            await nothing_left_running(sup)
            assert aio_threads() == 0
            # A timeout names the program and the regex.
            with pytest.raises(gosuv.Timeout, match="never"):
                await sup.wait_for_line("p", "never", timeout=0.2)
            await nothing_left_running(sup)
            # The shutdown ends a wait under way.
            waiter = asyncio.ensure_future(sup.wait_for_line("p", "never", timeout=None))
            await asyncio.sleep(0.1)
            await sup.shutdown()
            with pytest.raises(gosuv.SupervisorClosed):
                await waiter

    asyncio.run(main())
