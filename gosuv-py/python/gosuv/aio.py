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

Each call runs the blocking call of :class:`gosuv.Supervisor` on a native thread of its own
(started without waiting for it, so the loop never waits either; the call itself waits
without the GIL) and completes an asyncio future through ``loop.call_soon_threadsafe``. A
cancelled await stops waiting; the request itself carries on, as an interrupted blocking call
does (a stop still stops). Cancelling ``program(...)``'s entry removes the program once its
start is over. Event streams and log followers are cancel-safe: cancelling the task that
waits on one ends that wait's thread within 50 ms, and an item it received meanwhile is the
next one read.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import math
import re
import threading
import time
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

T = TypeVar("T")
_StreamName = Literal["stdout", "stderr"]
_ProgramsConfig = Union[StrPath, Mapping[str, Any], Sequence[Mapping[str, Any]]]

# How long a stream's waiting thread waits between looks at whether it was abandoned.
_SLICE = 0.05
# The longest timeout any wait takes (one day), as in the blocking API.
_MAX_WAIT = 86400.0


def _settle(fut: asyncio.Future[T], ok: bool, value: Any) -> None:
    if fut.done():  # cancelled meanwhile
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _in_thread(func: Callable[[], T]) -> asyncio.Future[T]:
    """A future of the running loop that gets what `func()` returns or raises, run on a new
    native thread."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            value: Any = func()
            ok = True
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            value, ok = e, False
        try:
            loop.call_soon_threadsafe(_settle, fut, ok, value)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for it any more

    _native.start_thread(work)
    return fut


async def _call(func: Callable[[], T]) -> T:
    return await _in_thread(func)


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is None:
        return
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(f"timeout is a number of seconds or None, not {type(timeout).__name__}")
    if math.isnan(timeout) or not 0 <= timeout <= _MAX_WAIT:
        raise InvalidArgument(
            f"timeout {float(timeout)}: a wait is from 0 to 86400 seconds (one day), or None"
        )


class _Stream(Generic[T]):
    """An async iterator over a blocking stream of gosuv._native (Events or LogFollower)."""

    def __init__(self, sync: Any) -> None:
        self._sync = sync
        self._pending: collections.deque[T] = collections.deque()
        # The wait under way, if any, and the flag that tells its thread to give up.
        self._inflight: Optional[asyncio.Future[Optional[T]]] = None
        self._abandon: Optional[threading.Event] = None

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
        abandon = threading.Event()
        sync = self._sync

        def wait() -> Optional[T]:
            end = None if timeout is None else time.monotonic() + timeout
            while not abandon.is_set():
                left = _SLICE if end is None else min(_SLICE, end - time.monotonic())
                if left <= 0:
                    return None
                got: Optional[T] = sync.get(timeout=left)
                if got is not None or sync.closed:
                    return got
            return None

        inner = _in_thread(wait)
        self._inflight, self._abandon = inner, abandon
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            abandon.set()
            inner.add_done_callback(self._keep_for_later)
            raise

    def _keep_for_later(self, fut: asyncio.Future[Optional[T]]) -> None:
        # An item the cancelled wait received is not lost: the next read returns it.
        if fut.cancelled() or fut.exception() is not None:
            return
        item = fut.result()
        if item is not None:
            self._pending.appendleft(item)

    def close(self) -> None:
        """Ends the stream: iterating stops, `get` returns `None`; the subscription is let
        go and a wait under way ends within 50 ms. Calling it again does nothing."""
        if self._abandon is not None:
            self._abandon.set()
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

    def __init__(self, scoped: _native.ScopedProgram) -> None:
        self._scoped = scoped

    @property
    def name(self) -> str:
        """The program's name."""
        return self._scoped.name

    async def __aenter__(self) -> Status:
        scoped = self._scoped
        inner = _in_thread(scoped.__enter__)
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            inner.add_done_callback(self._undo)
            raise

    def _undo(self, fut: asyncio.Future[Status]) -> None:
        # The start the cancelled task waited for succeeded: nobody will leave the block.
        if fut.cancelled() or fut.exception() is not None:
            return
        scoped = self._scoped
        _native.start_thread(lambda: scoped.__exit__(None, None, None))

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        scoped = self._scoped
        await _call(lambda: scoped.__exit__(exc_type, exc, tb))

    def __repr__(self) -> str:
        return f"<gosuv.aio.ScopedProgram {self.name!r}>"


class Supervisor:
    """`gosuv.Supervisor` for asyncio: the same arguments and calls, each awaitable.

    ``async with Supervisor(...) as sup`` (or ``await Supervisor(...).open()``) makes the
    supervisor, on a thread; leaving the block shuts it down (as ``await sup.shutdown()``).
    `follow()` and `events()` return async iterators at once; `sync` is the
    `gosuv.Supervisor` inside, for code that is not async.
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

    @classmethod
    def wrap(cls, sync: _native.Supervisor) -> Supervisor:
        """An async view of an open `gosuv.Supervisor`."""
        if not isinstance(sync, _native.Supervisor):
            raise TypeError(f"wrap() takes a gosuv.Supervisor, not {type(sync).__name__}")
        sup = cls()
        sup._sync = sync
        return sup

    async def open(self) -> Self:
        """Makes the supervisor (once; programs with ``start_auto`` start)."""
        if self._sync is None:
            config, base_dir, log_dir, subreaper, kill = self._args
            self._sync = await _call(
                lambda: _native.Supervisor(
                    config,
                    base_dir=base_dir,
                    log_dir=log_dir,
                    subreaper=subreaper,
                    kill_on_parent_death=kill,
                )
            )
        return self

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
        await _call(lambda: sync.__exit__(exc_type, exc, tb))
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
        sync = self.sync
        await _call(lambda: sync.add(name, command, **options))

    async def update(
        self, name: str, command: Command, **options: Unpack[ProgramOptions]
    ) -> bool:
        sync = self.sync
        return await _call(lambda: sync.update(name, command, **options))

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
        return ScopedProgram(self.sync.program(name, command, timeout=timeout, **options))

    async def remove(self, name: str) -> None:
        sync = self.sync
        await _call(lambda: sync.remove(name))

    async def start(
        self, name: str, *, wait: bool = True, timeout: Optional[float] = None
    ) -> Status:
        sync = self.sync
        return await _call(lambda: sync.start(name, wait=wait, timeout=timeout))

    async def stop(
        self, name: str, *, wait: bool = True, timeout: Optional[float] = None
    ) -> Status:
        sync = self.sync
        return await _call(lambda: sync.stop(name, wait=wait, timeout=timeout))

    async def restart(
        self, name: str, *, wait: bool = True, timeout: Optional[float] = None
    ) -> Status:
        sync = self.sync
        return await _call(lambda: sync.restart(name, wait=wait, timeout=timeout))

    async def wait(self, name: str, timeout: Optional[float] = 30.0) -> Status:
        sync = self.sync
        return await _call(lambda: sync.wait(name, timeout))

    async def wait_for(
        self, name: str, state: Union[State, str], timeout: Optional[float] = None
    ) -> Status:
        sync = self.sync
        return await _call(lambda: sync.wait_for(name, state, timeout))

    async def status(self, name: str) -> Status:
        sync = self.sync
        return await _call(lambda: sync.status(name))

    async def list(self) -> builtins.list[Status]:
        sync = self.sync
        return await _call(sync.list)

    async def config(self, name: str) -> dict[str, Any]:
        sync = self.sync
        return await _call(lambda: sync.config(name))

    async def reload(
        self, config: Optional[_ProgramsConfig] = None, *, yaml: Optional[str] = None
    ) -> ReloadReport:
        sync = self.sync
        return await _call(lambda: sync.reload(config, yaml=yaml))

    async def tail(
        self, name: str, stream: _StreamName = "stdout", lines: Optional[int] = 100
    ) -> str:
        sync = self.sync
        return await _call(lambda: sync.tail(name, stream, lines))

    def follow(self, name: str, stream: _StreamName = "stdout") -> LogFollower:
        """A program's output from now on, as an async iterator of lines (returns at once)."""
        return LogFollower(self.sync.follow(name, stream))

    def events(self) -> Events:
        """Every program's state changes from now on, as an async iterator of `Event`
        (returns at once)."""
        return Events(self.sync.events())

    async def wait_for_line(
        self,
        name: str,
        regex: Union[str, re.Pattern[str]],
        stream: _StreamName = "stdout",
        timeout: Optional[float] = 30.0,
    ) -> str:
        """As `gosuv.Supervisor.wait_for_line`; a cancelled await ends the wait's thread too."""
        sync = self.sync
        abandon = threading.Event()
        inner = _in_thread(lambda: sync._wait_for_line(name, regex, stream, timeout, abandon))
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            abandon.set()
            inner.add_done_callback(_retrieve)
            raise

    async def stats(self, name: str) -> Stats:
        sync = self.sync
        return await _call(lambda: sync.stats(name))

    async def stats_all(self) -> dict[str, Stats]:
        sync = self.sync
        return await _call(sync.stats_all)

    async def shutdown(self) -> None:
        """Stops every program and waits; see `gosuv.Supervisor.shutdown`."""
        sync = self.sync
        await _call(sync.shutdown)

    def __repr__(self) -> str:
        if self._sync is None:
            return "<gosuv.aio.Supervisor (not open)>"
        return f"<gosuv.aio.Supervisor {self._sync!r}>"


def _retrieve(fut: asyncio.Future[Any]) -> None:
    # Marks the outcome of an abandoned wait as seen, so asyncio does not log it.
    if not fut.cancelled():
        fut.exception()
