"""The states of a program (supervisord's model)."""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    """A program's state.

    A ``str`` enum: ``State.RUNNING == "running"``, and ``str(State.RUNNING)`` is
    ``"running"``.
    """

    STOPPED = "stopped"
    """Not running, and not asked to run."""
    STARTING = "starting"
    """Spawned, not yet up for ``start_seconds`` (or not yet ready, with a ``ready`` probe)."""
    RUNNING = "running"
    """Up for at least ``start_seconds`` (or ready, with a ``ready`` probe)."""
    BACKOFF = "backoff"
    """A start failed; waiting before the next try."""
    STOPPING = "stopping"
    """The stop signal was sent; waiting until none of its processes is left."""
    EXITED = "exited"
    """Was running and exited; ``autorestart`` decided not to start it again."""
    FATAL = "fatal"
    """``start_retries`` starts in a row failed, or a dependency failed; given up until the
    next ``start``."""
    WAITING = "waiting"
    """Asked to start, waiting for its ``depends_on`` to be satisfied (``Status.waiting_for``
    names those it waits for); it has no process yet."""

    def __str__(self) -> str:
        return self.value

    @property
    def is_active(self) -> bool:
        """Whether a process of the program may exist in this state."""
        return self in (State.STARTING, State.RUNNING, State.STOPPING)
