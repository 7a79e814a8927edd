"""gosuv for asyncio: :class:`Supervisor`, whose calls are awaitables that never block the
event loop, and whose events and log followers are async iterators::

    import asyncio
    import gosuv.aio

    async def main() -> None:
        async with gosuv.aio.Supervisor() as sup:
            async with sup.program("web", ["python3", "-m", "http.server", "8000"],
                                   ready={"tcp": "127.0.0.1:8000"}) as web:
                print(web.state, web.pid)
                async with sup.follow("web", stream="stderr") as lines:
                    async for line in lines:
                        print(line)
                        break

    asyncio.run(main())

Each call checks its arguments at once, on the loop's thread, and runs without the GIL: a
wait (``wait``, ``wait_for``, the wait of ``start``/``stop``/``restart``, ``program(...)``'s
entry) as a task of a native runtime that a cancelled await aborts at once, any other call on
a native thread: it hands its result back, as Rust values, through an eventfd that
the loop watches (``loop.add_reader``), and the loop's thread turns it into the call's result
or exception. So the loop never waits for the GIL that a busy worker holds. A cancelled await
stops waiting; the request itself carries on, as an interrupted blocking call does (a stop
still stops), and its late result is dropped. Cancelling a shutdown, the end of an ``async
with`` block of the supervisor or of ``program(...)`` (as a second Ctrl-C under
``asyncio.run`` does) kills the programs being stopped at once (SIGKILL), waits up to 5 s
for them to be gone, and lets the cancellation through. Cancelling ``program(...)``'s entry
drops its wait and removes the program. Event streams and log followers are
cancel-safe: cancelling the task that waits on one ends that wait's thread within 50 ms,
and an item it received meanwhile is the next one read.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Optional, TypeVar, Union

from gosuv import _native
from gosuv._errors import GosuvError, InvalidArgument
from gosuv._native import Event, ReloadReport, Stats, Status
from gosuv._options import Command, StrPath
from gosuv._state import State

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from gosuv._options import ProgramOptions

__all__ = ["Events", "LogFollower", "ScopedProgram", "Supervisor"]

# The threads every gosuv.aio supervisor shares start now, not on an event loop's thread.
_native._aio_init()

T = TypeVar("T")
_StreamName = Literal["stdout", "stderr"]
_ProgramsConfig = Union[StrPath, Mapping[str, Any], Sequence[Mapping[str, Any]]]
# What a native call hands back: whether it succeeded, and its result or exception.
_Done = Callable[[bool, Any], None]

# The longest timeout any wait takes (one day), as in the blocking API.
_MAX_WAIT = 86400.0
# How long a cancelled stop waits for the programs it killed to be gone.
_AFTER_KILL = 5.0


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # cancelled meanwhile: the late result is dropped
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    # Marks the outcome of an abandoned call as seen, so asyncio does not log it.
    if not fut.cancelled():
        fut.exception()


class _Hub:
    """One event loop's end of a supervisor's native calls: the eventfd of a
    `_native.AioHub`, watched with `loop.add_reader`, and what to do with each result."""

    def __init__(self, loop: asyncio.AbstractEventLoop, done_with: Callable[[], bool]) -> None:
        self.loop = loop
        self.native = _native.AioHub()
        # Whether the supervisor is shut down: then the hub closes once no call is left.
        self._done_with = done_with
        self._waiting: dict[int, _Done] = {}
        self.closing = False
        self.fd = self.native.fileno()
        loop.add_reader(self.fd, self._drain)

    def submit(self, start: Callable[[_native.AioHub], int], done: _Done) -> int:
        """Starts a native call (`start` submits it to the native hub and returns its id);
        `done(ok, value)` runs on the loop's thread with its result (with each of its
        results, for a call that gives several)."""
        call = start(self.native)
        self._waiting[call] = done
        return call

    def call(self, start: Callable[[_native.AioHub], int]) -> tuple[int, asyncio.Future[Any]]:
        """Starts a native call; its id and a future of its result."""
        fut: asyncio.Future[Any] = self.loop.create_future()
        return self.submit(start, lambda ok, value: _settle(fut, ok, value)), fut

    def abandon(self, call: int) -> None:
        """Tells a native wait that nobody waits for it: it ends within 50 ms."""
        self.native.abandon(call)

    def _drain(self) -> None:
        for call, ok, value, last in self.native.drain():
            done = self._waiting.pop(call, None) if last else self._waiting.get(call)
            if done is None:
                continue
            try:
                done(ok, value)
            except Exception as e:  # noqa: BLE001 - one bad callback must not lose the rest
                self.loop.call_exception_handler(
                    {"message": "gosuv.aio: a result's callback failed", "exception": e}
                )
        if self._done_with():
            self.close()

    def close(self) -> None:
        """Closes the eventfd once no call is under way (waits are abandoned)."""
        self.closing = True
        for call in self._waiting:
            self.native.abandon(call)
        if self._waiting or self.native.closed:
            return
        if not self.loop.is_closed():
            self.loop.remove_reader(self.fd)
        self.native.close()

    @property
    def closed(self) -> bool:
        return self.native.closed


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is None:
        return
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(f"timeout is a number of seconds or None, not {type(timeout).__name__}")
    if math.isnan(timeout) or not 0 <= timeout <= _MAX_WAIT:
        raise InvalidArgument(
            f"timeout {float(timeout)}: a wait is from 0 to 86400 seconds (one day), or None"
        )


async def _stopping(
    hub: _Hub, start: Callable[[_native.AioHub], int], kill: Callable[[], None]
) -> Any:
    """Awaits a call that stops programs; cancelled (a second Ctrl-C under `asyncio.run`),
    it calls `kill()`, waits up to a few seconds for the call to end, and lets the
    cancellation through."""
    _, inner = hub.call(start)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        inner.add_done_callback(_retrieve)
        kill()
        await asyncio.wait({inner}, timeout=_AFTER_KILL)
        raise


class _Stream(Generic[T]):
    """An async iterator over a stream of gosuv._native (Events or LogFollower)."""

    def __init__(self, sync: Any, hub: Callable[[], _Hub]) -> None:
        self._sync = sync
        self._hub = hub
        self._pending: collections.deque[T] = collections.deque()
        # Done when the native wait under way, if any, has ended; and how to abandon it.
        self._inflight: Optional[asyncio.Future[None]] = None
        self._abandon: Optional[Callable[[], None]] = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        item = await self.get(None)
        if item is None:
            raise StopAsyncIteration
        return item

    async def get(self, timeout: Optional[float] = None) -> Optional[T]:
        """The next item, waiting at most `timeout` seconds (`None`: no limit); `None` when
        none came in time or the stream has ended (see `closed`)."""
        _check_timeout(timeout)
        if self._inflight is not None and not self._inflight.done():
            # An abandoned wait is still ending (50 ms at most): its item comes first.
            await asyncio.shield(self._inflight)
        if self._pending:
            return self._pending.popleft()
        polled: Optional[T] = self._sync._poll()
        if polled is not None or self._sync.closed or timeout == 0:
            return polled
        hub = self._hub()
        loop = hub.loop
        fut: asyncio.Future[Optional[T]] = loop.create_future()
        ended: asyncio.Future[None] = loop.create_future()

        def done(ok: bool, value: Any) -> None:
            if not fut.done():
                _settle(fut, ok, value)
            elif ok and value is not None:
                # The wait was cancelled after it received an item: the next read gets it.
                self._pending.appendleft(value)
            if not ended.done():
                ended.set_result(None)

        sync = self._sync
        call = hub.submit(lambda native: sync._aio_get(native, timeout), done)
        self._inflight = ended
        self._abandon = lambda: hub.abandon(call)
        try:
            return await fut
        except asyncio.CancelledError:
            hub.abandon(call)
            raise

    def close(self) -> None:
        """Ends the stream: iterating stops, `get` returns `None`; the subscription is let
        go and a wait under way ends within 50 ms. Calling it again does nothing."""
        if self._abandon is not None:
            self._abandon()
        self._pending.clear()
        self._sync.close()

    async def aclose(self) -> None:
        """As `close()`, for ``async with`` and ``contextlib.aclosing``."""
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    @property
    def missed(self) -> int:
        """What a slow reader missed (events for `Events`, bytes for `LogFollower`)."""
        missed: int = self._sync.missed
        return missed

    @property
    def closed(self) -> bool:
        """Whether the stream has ended (or was closed) and every item has been read."""
        closed: bool = self._sync.closed
        return closed and not self._pending


class Events(_Stream[Event]):
    """Every program's state changes from the moment `Supervisor.events()` was called, as an
    async iterator that ends when the supervisor shuts down or the stream is closed."""


class LogFollower(_Stream[str]):
    """One program's output as an async iterator of lines (without line endings), from the
    moment `Supervisor.follow()` was called; it ends when the program is removed, the
    supervisor shuts down or the follower is closed."""


class ScopedProgram:
    """A program for the length of an ``async with`` block; see `Supervisor.program`."""

    def __init__(self, sup: Supervisor, scoped: _native.ScopedProgram) -> None:
        self._sup = sup
        self._scoped = scoped

    @property
    def name(self) -> str:
        """The program's name."""
        return self._scoped.name

    async def __aenter__(self) -> Status:
        hub = self._sup._hub()
        call, inner = hub.call(self._scoped._aio_enter)
        try:
            status: Status = await asyncio.shield(inner)
            return status
        except asyncio.CancelledError:
            # The wait is dropped at once; once it is over, the program goes (nobody will
            # leave the block).
            hub.abandon(call)
            inner.add_done_callback(self._undo)
            raise

    def _undo(self, fut: asyncio.Future[Status]) -> None:
        if not fut.cancelled():
            fut.exception()
        if self._sup._shut_down():
            return
        _, removed = self._sup._hub().call(self._scoped._aio_exit)
        removed.add_done_callback(_retrieve)

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        sync = self._sup.sync
        names = [self.name]
        await _stopping(self._sup._hub(), self._scoped._aio_exit, lambda: sync._kill_now(names))

    def __repr__(self) -> str:
        return f"<gosuv.aio.ScopedProgram {self.name!r}>"


class Supervisor:
    """`gosuv.Supervisor` for asyncio: the same arguments and calls, each awaitable.

    ``async with Supervisor(...) as sup`` (or ``await Supervisor(...).open()``) makes the
    supervisor, on a native thread; leaving the block shuts it down (as
    ``await sup.shutdown()``). `follow()` and `events()` return async iterators at once;
    `sync` is the `gosuv.Supervisor` inside, for code that is not async. It may be used from
    several event loops (one at a time or at once, from their threads); each loop it is
    used on gets an eventfd of its own. `shutdown()` (or leaving ``async with``) on any loop
    closes them all, each once its loop's calls are over: the other loops' on their own
    threads (through ``call_soon_threadsafe``), those of loops already closed at once.
    """

    def __init__(
        self,
        config: Optional[_ProgramsConfig] = None,
        *,
        base_dir: Optional[StrPath] = None,
        log_dir: Optional[StrPath] = None,
        subreaper: bool = False,
        kill_on_parent_death: bool = True,
    ) -> None:
        self._args = (config, base_dir, log_dir, subreaper, kill_on_parent_death)
        self._sync: Optional[_native.Supervisor] = None
        self._hubs: dict[asyncio.AbstractEventLoop, _Hub] = {}

    @classmethod
    def wrap(cls, sync: _native.Supervisor) -> Supervisor:
        """An async view of an open `gosuv.Supervisor`."""
        if not isinstance(sync, _native.Supervisor):
            raise TypeError(f"wrap() takes a gosuv.Supervisor, not {type(sync).__name__}")
        sup = cls()
        sup._sync = sync
        return sup

    def _shut_down(self) -> bool:
        return self._sync is not None and self._sync.closed

    def _hub(self) -> _Hub:
        """The hub of the running loop (made on first use)."""
        loop = asyncio.get_running_loop()
        hub = self._hubs.get(loop)
        if hub is None or hub.closing:
            for old in [k for k, h in self._hubs.items() if h.closed or k.is_closed()]:
                del self._hubs[old]
            hub = _Hub(loop, self._shut_down)
            self._hubs[loop] = hub
        return hub

    def _close_other_hubs(self) -> None:
        """Once shut down: closes the hubs of the other loops (the running loop's hub closes
        itself as its last result is read), each on its loop's thread; a hub whose loop is
        closed is closed here (no thread runs that loop any more)."""
        if not self._shut_down():
            return
        running = asyncio.get_running_loop()
        for loop, hub in list(self._hubs.items()):
            if loop is running or hub.closed:
                continue
            try:
                loop.call_soon_threadsafe(hub.close)
            except RuntimeError:  # the loop is closed
                hub.close()

    def _completed(self) -> int:
        """How many results wait for the loop to read them (for the tests)."""
        return sum(h.native.completed() for h in self._hubs.values() if not h.closed)

    async def _call(self, op: str, *args: Any) -> Any:
        sync = self.sync
        hub = self._hub()
        _, fut = hub.call(lambda native: sync._aio(native, op, args))
        return await fut

    async def open(self) -> Self:
        """Makes the supervisor (once; programs with ``start_auto`` start)."""
        if self._sync is None:
            config, base_dir, log_dir, subreaper, kill = self._args
            _, fut = self._hub().call(
                lambda native: _native.Supervisor._aio_new(
                    native, config, base_dir, log_dir, subreaper, kill
                )
            )
            try:
                sync: _native.Supervisor = await asyncio.shield(fut)
            except asyncio.CancelledError:
                # The one made meanwhile is shut down off the loop's thread.
                fut.add_done_callback(self._drop_made)
                raise
            if self._sync is None:
                self._sync = sync
            else:  # opened twice at once: the first one made wins
                self._drop_made(fut)
        return self

    def _drop_made(self, fut: asyncio.Future[_native.Supervisor]) -> None:
        """Shuts down a supervisor that `open()` made and nobody will use, through the
        hub: the loop's thread never waits for its programs to stop."""
        if fut.cancelled() or fut.exception() is not None:
            return
        sync = fut.result()
        hub = self._hub()
        _, gone = hub.call(lambda native: sync._aio(native, "shutdown", ()))
        gone.add_done_callback(_retrieve)

    @property
    def sync(self) -> _native.Supervisor:
        """The blocking `gosuv.Supervisor` inside."""
        if self._sync is None:
            raise GosuvError(
                "this gosuv.aio.Supervisor is not open yet: use `async with` or "
                "`await sup.open()` first"
            )
        return self._sync

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        sync = self.sync
        try:
            await _stopping(
                self._hub(), lambda native: sync._aio(native, "exit", (exc,)), sync._kill_now
            )
        finally:
            self._close_other_hubs()
        return False

    @property
    def base_dir(self) -> Path:
        return self.sync.base_dir

    @property
    def log_dir(self) -> Path:
        return self.sync.log_dir

    @property
    def closed(self) -> bool:
        return self.sync.closed

    def __contains__(self, name: str) -> bool:
        return name in self.sync

    async def add(self, name: str, command: Command, **options: Unpack[ProgramOptions]) -> None:
        await self._call("add", name, command, options)

    async def update(
        self, name: str, command: Command, **options: Unpack[ProgramOptions]
    ) -> bool:
        changed: bool = await self._call("update", name, command, options)
        return changed

    def program(
        self,
        name: str,
        command: Command,
        *,
        timeout: Optional[float] = 60.0,
        **options: Unpack[ProgramOptions],
    ) -> ScopedProgram:
        """An async context manager: entering adds the program, starts it and waits until it
        is ready, giving its `Status`; leaving stops and removes it. The options are checked
        here, at once."""
        return ScopedProgram(self, self.sync.program(name, command, timeout=timeout, **options))

    async def remove(self, name: str) -> None:
        await self._call("remove", name)

    async def start(
        self, name: str, *, wait: bool = True, timeout: Optional[float] = None
    ) -> Status:
        status: Status = await self._call("start", name, wait, timeout)
        return status

    async def stop(
        self, name: str, *, wait: bool = True, timeout: Optional[float] = None
    ) -> Status:
        status: Status = await self._call("stop", name, wait, timeout)
        return status

    async def restart(
        self, name: str, *, wait: bool = True, timeout: Optional[float] = None
    ) -> Status:
        status: Status = await self._call("restart", name, wait, timeout)
        return status

    async def wait(self, name: str, timeout: Optional[float] = 30.0) -> Status:
        status: Status = await self._call("wait", name, timeout)
        return status

    async def wait_for(
        self, name: str, state: Union[State, str], timeout: Optional[float] = None
    ) -> Status:
        status: Status = await self._call("wait_for", name, state, timeout)
        return status

    async def status(self, name: str) -> Status:
        status: Status = await self._call("status", name)
        return status

    async def list(self) -> builtins.list[Status]:
        all_: builtins.list[Status] = await self._call("list")
        return all_

    async def config(self, name: str) -> dict[str, Any]:
        config: dict[str, Any] = await self._call("config", name)
        return config

    async def reload(
        self, config: Optional[_ProgramsConfig] = None, *, yaml: Optional[str] = None
    ) -> ReloadReport:
        report: ReloadReport = await self._call("reload", config, yaml)
        return report

    async def tail(
        self, name: str, stream: _StreamName = "stdout", lines: Optional[int] = 100
    ) -> str:
        text: str = await self._call("tail", name, stream, lines)
        return text

    def follow(self, name: str, stream: _StreamName = "stdout") -> LogFollower:
        """A program's output from now on, as an async iterator of lines (returns at once)."""
        return LogFollower(self.sync.follow(name, stream), self._hub)

    def events(self) -> Events:
        """Every program's state changes from now on, as an async iterator of `Event`
        (returns at once)."""
        return Events(self.sync.events(), self._hub)

    async def wait_for_line(
        self,
        name: str,
        regex: Union[str, re.Pattern[str]],
        stream: _StreamName = "stdout",
        timeout: Optional[float] = 30.0,
    ) -> str:
        """As `gosuv.Supervisor.wait_for_line`: one native wait (a task, not a thread)
        follows the program's output without the GIL and hands its lines to the loop's
        thread in batches, where the regex matches them. It ends at once on a match, on a
        cancelled await and on the shutdown."""
        pattern = re.compile(regex)
        lines = self.sync._line_wait(name, pattern, stream, timeout)
        hub = self._hub()
        results: collections.deque[tuple[bool, Any]] = collections.deque()
        arrived: asyncio.Future[None] = hub.loop.create_future()

        def done(ok: bool, value: Any) -> None:
            results.append((ok, value))
            if not arrived.done():
                arrived.set_result(None)

        call = hub.submit(lines._aio_start, done)
        try:
            while True:
                while not results:
                    await arrived
                    arrived = hub.loop.create_future()
                ok, value = results.popleft()
                if not ok:
                    raise value
                for line in value:
                    if pattern.search(line):
                        return str(line)
                lines._aio_more()
        finally:
            # Ends the native wait at once (after its last result, nothing).
            hub.abandon(call)

    async def stats(self, name: str) -> Stats:
        stats: Stats = await self._call("stats", name)
        return stats

    async def stats_all(self) -> dict[str, Stats]:
        all_: dict[str, Stats] = await self._call("stats_all")
        return all_

    async def shutdown(self) -> None:
        """Stops every program and waits; see `gosuv.Supervisor.shutdown`. Cancelled (a
        second Ctrl-C under `asyncio.run`), it kills the programs at once (SIGKILL)."""
        sync = self.sync
        try:
            await _stopping(
                self._hub(), lambda native: sync._aio(native, "shutdown", ()), sync._kill_now
            )
        finally:
            self._close_other_hubs()

    def __repr__(self) -> str:
        if self._sync is None:
            return "<gosuv.aio.Supervisor (not open)>"
        return f"<gosuv.aio.Supervisor {self._sync!r}>"
