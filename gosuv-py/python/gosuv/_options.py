"""The options of a program, as keyword arguments of ``Supervisor.add``, ``update`` and
``program`` (the keys of ``programs.yml``)."""

from __future__ import annotations

import os
import signal
from typing import Literal, Mapping, Sequence, TypedDict, Union

StrPath = Union[str, os.PathLike[str]]
"""A path: a ``str`` or an ``os.PathLike`` such as ``pathlib.Path``."""

Command = Union[str, Sequence[str]]
"""A shell command line (run by ``/bin/sh -c``) or an argv list (exec'd directly)."""


class ReadyOptions(TypedDict, total=False):
    """When a start has succeeded: exactly one of ``http``, ``tcp``, ``exec``, ``log``,
    ``notify``. Durations are seconds or strings such as ``"250ms"``, ``"10s"``."""

    http: str
    """An ``http://`` URL: a GET answered 2xx or 3xx."""
    tcp: str
    """``"host:port"`` or ``"unix:/path"``: a connection is accepted."""
    exec: Union[str, Sequence[str]]
    """A command, run like the program's, that exits 0."""
    log: str
    """A regex matched by a line of the program's stdout or stderr."""
    notify: bool
    """The program sends ``READY=1`` to ``$NOTIFY_SOCKET`` (sd_notify)."""
    interval: Union[int, float, str]
    """Between attempts of http, tcp and exec. Default ``"100ms"``."""
    timeout: Union[int, float, str]
    """Not ready by then: a failed start. Default ``"60s"``."""


class HealthOptions(TypedDict, total=False):
    """Checks while running: exactly one of ``http``, ``tcp``, ``exec``."""

    http: str
    tcp: str
    exec: Union[str, Sequence[str]]
    interval: Union[int, float, str]
    """Between attempts. Default ``"10s"``."""
    timeout: Union[int, float, str]
    """One attempt's limit. Default ``"2s"``."""
    failures: int
    """Failed attempts in a row that restart the program. Default 3."""


class _DependencyName(TypedDict):
    name: str
    """The program depended on."""


class Dependency(_DependencyName, total=False):
    """One entry of ``depends_on`` in its long form: ``{"name": "db", "condition": ...}``."""

    condition: Literal["ready", "started", "exited_ok"]
    """``"ready"`` (the default, as for a bare name): it is ``running``, ready with a
    ``ready`` probe; ``"started"``: its process exists; ``"exited_ok"``: it exited with one of
    its ``exit_codes``."""


class ProgramOptions(TypedDict, total=False):
    """Every option of a program; each has the default of ``programs.yml``.

    Seconds are whole numbers (at most 86400, one day). Sizes are bytes or strings such as
    ``"10MB"``.
    """

    environ: Union[Mapping[str, Union[str, int, bool]], Sequence[str]]
    """Variables added to the supervisor's environment: a dict or ``["K=V", ...]``."""
    directory: StrPath
    """Working directory (must exist); relative to ``base_dir``. Default: ``base_dir``."""
    start_auto: bool
    """Start as soon as the program is added (and when a reload adds it). Default False."""
    start_seconds: int
    """Seconds it must stay up to count as started. Default 1."""
    start_retries: int
    """Failed starts in a row before ``fatal`` (at most 1000). Default 3."""
    autorestart: Union[bool, Literal["unexpected"]]
    """Restart after it exits: always, never, or on an exit code not in ``exit_codes``."""
    exit_codes: Sequence[int]
    """Expected exit codes. Default ``[0]``."""
    stop_signal: Union[str, signal.Signals]
    """Signal sent to its processes to stop it: ``"TERM"`` (default), ``"INT"``, ..."""
    stop_timeout: int
    """Seconds before SIGKILL to all its processes. Default 10."""
    user: str
    """Run as this user (gosuv must run as root to switch)."""
    umask: Union[int, str]
    """The child's umask: ``0o022`` or ``"022"``. Default: inherited."""
    redirect_stderr: bool
    """Send stderr to the stdout log. Default False."""
    log_disable: bool
    """Keep output in memory only (for tail and follow). Default False."""
    log_max_bytes: Union[int, str]
    """Rotate a log file at this size; 0 never rotates. Default ``"50MB"``."""
    log_backups: int
    """Rotated files kept. Default 10."""
    memory_max: Union[int, str]
    """Restart the program when it uses more memory than this: bytes or a size such as
    ``"512MB"``. Its cgroup's memory where it has one, else the RSS of its processes.
    Default: no limit."""
    ready: ReadyOptions
    """What says a start succeeded (see ``ReadyOptions``); without it, ``start_seconds``."""
    health: HealthOptions
    """What says a running program is still well (see ``HealthOptions``)."""
    depends_on: Sequence[Union[str, Dependency]]
    """Programs to satisfy before this one starts: names (each must be ``running``, ready)
    or ``Dependency`` dicts. A start waits in ``waiting``, starting those not started; a
    dependency that goes ``fatal`` or is removed makes the start fail, naming it. Every
    name must be a program of the supervisor, with no cycle."""
    cgroup: Literal["auto", "off", "required"]
    """Own its processes through a cgroup of its own, so that a child that calls ``setsid``
    or double-forks is still stopped with it: ``"auto"`` (the default) where gosuv can make
    one, else its process group; ``"off"``, its process group; ``"required"``, a cgroup or
    the start fails. ``Status.ownership`` says which a run got."""
