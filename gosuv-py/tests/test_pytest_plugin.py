"""The pytest plugin shipped in the package, run through pytester in a pytest of its own."""

from __future__ import annotations

import ast

import pytest

from conftest import alive

pytest_plugins = ("pytester",)

TESTS = '''
import os

def test_passes(gosuv_program, gosuv_supervisor, tmp_path):
    st = gosuv_program("hello", "echo hello; sleep 60", ready={"log": "hello"})
    assert st.state == "running"
    assert gosuv_supervisor.log_dir == tmp_path / "gosuv-logs"
    assert gosuv_supervisor.wait_for_line("hello", "hello") == "hello"

def test_fails(gosuv_program, gosuv_supervisor):
    st = gosuv_program(
        "noisy",
        "for i in $(seq 1 30); do echo out-$i; echo err-$i >&2; done; sleep 60",
        ready={"log": "err-30"},
        stop_timeout=30,
        stop_signal="KILL",
    )
    with open(os.environ["PID_FILE"], "w") as f:
        f.write(str(st.pid))
    assert False, "the test fails here"
'''


def test_a_passing_and_a_failing_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_with_gosuv=TESTS)
    pid_file = pytester.path / "pid"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    # In a process of its own: the plugin is found through its entry point, as users get it.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    # The failing test's report shows the last 20 lines of each stream of its program...
    result.stdout.fnmatch_lines(
        [
            "*gosuv: last lines of noisy's stdout*",
            "out-11",
            "*out-30",
            "*gosuv: last lines of noisy's stderr*",
            "err-11",
            "*err-30",
        ]
    )
    assert "out-10\n" not in out
    # ...and the passing test's report none.
    assert "last lines of hello" not in out
    # The failed test's program was stopped in its teardown: no process of it is left.
    pid = int(pid_file.read_text())
    assert not alive(pid)


def test_a_program_that_does_not_start_fails_the_setup_with_its_output(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def broken(gosuv_program):
            return gosuv_program("broken", "echo about to fail >&2; exit 4", start_retries=0)

        def test_it(broken):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gosuv-tail-lines=5")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*StartError*exit code 4*"])


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(gosuv_supervisor): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:gosuv")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'gosuv_supervisor' not found*"])


def test_a_negative_tail_length_is_refused_at_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_fails(gosuv_supervisor):\n    assert False\n")
    result = pytester.runpytest_subprocess("--gosuv-tail-lines=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gosuv-tail-lines*0 or more*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_programs_run_in_the_rootdir_and_log_under_tmp_path(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program's command and a relative `directory` resolve against the pytest rootdir
    (as `python3 server.py` typed there would), while its logs stay in the test's tmp_path."""
    pytester.makepyfile(
        server="import os\nprint('cwd', os.getcwd(), flush=True)\nimport time\ntime.sleep(60)\n",
        test_cwd="""
        import os
        import sys

        def test_it(gosuv_program, gosuv_supervisor, tmp_path):
            python = sys.executable
            gosuv_program("server", [python, "server.py"], ready={"log": "cwd"})
            gosuv_program("sub", "pwd; sleep 60", directory="sub", ready={"log": "/"})
            cwds = [
                gosuv_supervisor.wait_for_line("server", "cwd", timeout=15).split(" ", 1)[1],
                gosuv_supervisor.wait_for_line("sub", "/", timeout=15),
            ]
            logs = sorted(str(p) for p in (tmp_path / "gosuv-logs").rglob("*") if p.is_file())
            with open(os.environ["RESULT_FILE"], "w") as f:
                f.write(repr((cwds, str(tmp_path), logs)))
        """,
    )
    (pytester.path / "sub").mkdir()
    result_file = pytester.path / "result"
    monkeypatch.setenv("RESULT_FILE", str(result_file))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    cwds, tmp_path, logs = ast.literal_eval(result_file.read_text())
    root = pytester.path.resolve()
    assert cwds == [str(root), str(root / "sub")]
    # Both programs' logs are in the test's tmp_path, none in the rootdir.
    assert logs and all(log.startswith(tmp_path + "/gosuv-logs/") for log in logs)
    assert any("server" in log for log in logs) and any("sub" in log for log in logs)
    assert not (root / "gosuv-logs").exists()
