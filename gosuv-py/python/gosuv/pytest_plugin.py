"""The pytest plugin of gosuv, loaded by pytest itself once gosuv is installed (entry point
``pytest11``; ``-p no:gosuv`` turns it off).

Fixtures:

- ``gosuv_supervisor``: a `gosuv.Supervisor` for one test, its logs under the test's
  ``tmp_path`` (``tmp_path / "gosuv-logs"``, kept as pytest keeps temp dirs), shut down after
  the test whatever its outcome: no program's process is left. Its ``base_dir`` is the pytest
  rootdir (``request.config.rootpath``): programs run there, and a relative ``directory`` or
  command path resolves against it (``python3 server.py`` finds the project's server.py).
- ``gosuv_program``: a factory, ``gosuv_program(name, command, *, timeout=60, **options)``,
  that adds a program to ``gosuv_supervisor``, starts it and waits until it is ready (its
  ``ready=`` probe, else ``start_seconds``), and returns its `gosuv.Status`; a start that fails
  raises `gosuv.StartError` quoting why. Each program is stopped and removed after the test.

When a test fails, its report gets a section per program of ``gosuv_supervisor`` with the
last lines of its stdout and stderr (``--gosuv-tail-lines``, default 20).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional, Protocol

import pytest

from gosuv._errors import GosuvError
from gosuv._native import Status, Supervisor
from gosuv._options import Command

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from gosuv._options import ProgramOptions

__all__ = ["ProgramFactory", "gosuv_program", "gosuv_supervisor"]

_SUPERVISOR = pytest.StashKey[Supervisor]()


class ProgramFactory(Protocol):
    """The type of the ``gosuv_program`` fixture."""

    def __call__(
        self,
        name: str,
        command: Command,
        *,
        timeout: Optional[float] = 60.0,
        **options: Unpack[ProgramOptions],
    ) -> Status: ...


def _tail_lines(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, not {text!r}")
    return n


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gosuv")
    group.addoption(
        "--gosuv-tail-lines",
        type=_tail_lines,
        default=20,
        metavar="N",
        help="lines of each program's stdout and stderr shown in a failed test's report "
        "(default 20; 0: none)",
    )


@pytest.fixture
def gosuv_supervisor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Supervisor]:
    """A supervisor for this test, based in the pytest rootdir (programs run there); logs
    under ``tmp_path / "gosuv-logs"``; shut down after."""
    sup = Supervisor(base_dir=request.config.rootpath, log_dir=tmp_path / "gosuv-logs")
    request.node.stash[_SUPERVISOR] = sup
    try:
        yield sup
    finally:
        sup.shutdown()


@pytest.fixture
def gosuv_program(gosuv_supervisor: Supervisor) -> Iterator[ProgramFactory]:
    """Adds, starts and waits for a program: ``gosuv_program(name, command, **options)``."""
    with contextlib.ExitStack() as stack:

        def start(
            name: str,
            command: Command,
            *,
            timeout: Optional[float] = 60.0,
            **options: Unpack[ProgramOptions],
        ) -> Status:
            scoped = gosuv_supervisor.program(name, command, timeout=timeout, **options)
            return stack.enter_context(scoped)

        yield start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed or report.when == "teardown":
        return
    sup = item.stash.get(_SUPERVISOR, None)
    lines = item.config.getoption("gosuv_tail_lines", 20)
    if sup is None or not lines:
        return
    try:
        for name, stream, text in _tails(sup, lines):
            report.sections.append((f"gosuv: last lines of {name}'s {stream}", text))
    except Exception as e:  # a report must never fail the run (INTERNALERROR)
        report.sections.append(("gosuv: last lines", f"(could not be read: {e!r})\n"))


def _tails(sup: Supervisor, lines: int) -> Iterator[tuple[str, str, str]]:
    try:
        programs = sup.list()
    except GosuvError:
        return
    for st in programs:
        streams: tuple[Literal["stdout", "stderr"], ...] = ("stdout", "stderr")
        for stream in streams:
            try:
                text = sup.tail(st.name, stream, lines)
            except GosuvError:
                continue  # removed meanwhile
            yield st.name, stream, text or "(nothing written)\n"
