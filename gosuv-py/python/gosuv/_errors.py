"""The exceptions gosuv raises, all rooted at :class:`GosuvError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from gosuv._state import State


class GosuvError(Exception):
    """Base class of every gosuv error. The message says what went wrong and what to do."""


class ConfigError(GosuvError, ValueError):
    """A program or config file is invalid; nothing was changed.

    ``errors`` lists every problem found, each with its file, line and key where known.
    """

    errors: list[str]

    def __init__(self, message: str, errors: Optional[list[str]] = None) -> None:
        super().__init__(message)
        self.errors = errors if errors is not None else [message]


class ProgramNotFound(GosuvError, LookupError):
    """No program has that name (``program`` holds it)."""

    program: str


class ProgramExists(GosuvError):
    """A program with that name exists already (``program`` holds it)."""

    program: str


class StartError(GosuvError):
    """A program could not be brought to ``running``.

    ``program`` is its name, ``reason`` why its last start failed (the spawn error, or its
    exit and last output).
    """

    program: str
    reason: str


class StoppedBeforeRunning(StartError):
    """A stop (or remove) came before the program reached ``running``."""


class Timeout(GosuvError, TimeoutError):
    """A wait took longer than its timeout; the program carries on.

    ``program`` is its name and ``state`` the state it had when the wait ended.
    """

    program: str
    state: State


class SupervisorClosed(GosuvError):
    """The supervisor has shut down: it accepts no more changes."""


class InvalidArgument(GosuvError, ValueError):
    """An argument is out of its bounds, such as a ``timeout`` that is negative, not a
    number, or longer than a day (86400 seconds); nothing was done."""


class TaskFailed(GosuvError):
    """gosuv's task for a program failed (a bug in gosuv: please report it).

    The program (``program`` holds its name) was stopped and marked ``fatal``; it stays
    usable, and its ``last_error`` says what happened. A ``start`` tries again.
    """

    program: str
