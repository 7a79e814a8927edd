"""gosuv: supervise processes from Python.

Start the services a test or a tool needs, wait until they run, read their output, stop
them cleanly, and leave no orphan behind, even when Python itself dies::

    import gosuv

    with gosuv.Supervisor() as sup:
        with sup.program(
            "web",
            ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"],
            ready={"http": "http://127.0.0.1:8000/"},
        ) as web:
            print(web.state, web.pid)  # running 12345: it answers HTTP here
            # http.server logs each request on stderr, the probe's requests too.
            print(sup.wait_for_line("web", '"GET / HTTP', stream="stderr"))
        # web is stopped and removed here
    # every program is stopped here, and none of its processes is left

The supervisor itself is the Rust library ``gosuv``; every blocking call releases the GIL
and can be interrupted with Ctrl-C. Errors are subclasses of :class:`GosuvError`.
"""

from __future__ import annotations

import atexit

from gosuv._errors import (
    ConfigError,
    GosuvError,
    InvalidArgument,
    ProgramExists,
    ProgramNotFound,
    StartError,
    StoppedBeforeRunning,
    SupervisorClosed,
    TaskFailed,
    Timeout,
)
from gosuv._native import (
    Event,
    Events,
    HealthStatus,
    LogFollower,
    ReloadReport,
    ScopedProgram,
    Stats,
    Status,
    Supervisor,
    __version__,
    shutdown_all,
)
from gosuv._options import (
    Command,
    Dependency,
    HealthOptions,
    ProgramOptions,
    ReadyOptions,
    StrPath,
)
from gosuv._state import State

__all__ = [
    "Command",
    "ConfigError",
    "Dependency",
    "Event",
    "Events",
    "GosuvError",
    "InvalidArgument",
    "LogFollower",
    "ProgramExists",
    "ProgramNotFound",
    "HealthOptions",
    "HealthStatus",
    "ProgramOptions",
    "ReadyOptions",
    "ReloadReport",
    "ScopedProgram",
    "StartError",
    "State",
    "Stats",
    "Status",
    "StoppedBeforeRunning",
    "StrPath",
    "Supervisor",
    "SupervisorClosed",
    "TaskFailed",
    "Timeout",
    "__version__",
    "shutdown_all",
]

# A normal interpreter exit stops every program gracefully (stop_signal, then SIGKILL after
# stop_timeout). An abnormal one (os._exit, SIGKILL, a crash) is covered by
# kill_on_parent_death, which needs no Python code to run.
atexit.register(shutdown_all)
