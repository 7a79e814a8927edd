"""Supervisors made from dicts, lists, files and YAML text; reload."""

from __future__ import annotations

from pathlib import Path

import pytest

import gosuv
from conftest import DEADLINE


def test_from_a_dict(tmp_path: Path) -> None:
    config = {
        "web": {"command": ["sleep", "300"], "start_auto": True, "start_seconds": 0},
        "worker": {"command": "sleep 300"},
    }
    with gosuv.Supervisor(config, base_dir=tmp_path, log_dir=tmp_path / "logs") as sup:
        assert [s.name for s in sup.list()] == ["web", "worker"]
        assert sup.wait_for("web", "running", timeout=DEADLINE).pid is not None
        assert sup.status("worker").state is gosuv.State.STOPPED


def test_from_a_list(tmp_path: Path) -> None:
    config = [{"name": "a", "command": "true"}, {"name": "b", "command": "true"}]
    with gosuv.Supervisor(config, log_dir=tmp_path) as sup:
        assert [s.name for s in sup.list()] == ["a", "b"]


def test_every_error_of_every_program(tmp_path: Path) -> None:
    config = {
        "a": {"command": "true", "start_retries": "many"},
        "b": {"commnd": "true"},
    }
    with pytest.raises(gosuv.ConfigError) as info:
        gosuv.Supervisor(config, log_dir=tmp_path)
    assert len(info.value.errors) == 3, info.value.errors
    text = str(info.value)
    assert "a.start_retries: expected a whole number" in text
    assert "b.commnd: unknown key `commnd`" in text
    assert any(e.startswith("b") and "missing `command`" in e for e in info.value.errors)


def test_from_a_programs_file(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = tmp_path / "programs.yml"
    path.write_text(
        "- name: here\n"
        "  command: pwd; sleep 300\n"
        "  directory: work\n"
        "  start_auto: true\n"
        "  start_seconds: 0\n"
    )
    with gosuv.Supervisor(path, log_dir=tmp_path / "logs") as sup:
        assert sup.base_dir == tmp_path
        sup.wait_for("here", "running", timeout=DEADLINE)
        assert sup.config("here")["directory"] == str(work)


def test_a_bad_programs_file_has_lines(tmp_path: Path) -> None:
    path = tmp_path / "programs.yml"
    path.write_text("- name: ok\n  command: x\n- name: bad\n  command: y\n  colour: red\n")
    with pytest.raises(gosuv.ConfigError) as info:
        gosuv.Supervisor(str(path), log_dir=tmp_path)
    [error] = info.value.errors
    assert error.startswith(
        f"{path}:5: [1].colour: unknown key `colour`; a program's keys are: name, command, "
    ), error
    assert error.endswith("(see docs/config.md)"), error


def test_from_a_config_yml_and_its_programs_file(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(
        "include: ./my-programs.yml\nserver:\n  log:\n    logpath: out\n"
    )
    (tmp_path / "my-programs.yml").write_text("- name: job\n  command: echo hi\n")
    with gosuv.Supervisor(tmp_path / "config.yml") as sup:
        assert sup.log_dir == tmp_path / "out"
        assert [s.name for s in sup.list()] == ["job"]


def test_from_yaml(tmp_path: Path) -> None:
    text = "- name: a\n  command: [sleep, '300']\n  start_seconds: 0\n"
    with gosuv.Supervisor.from_yaml(text, base_dir=tmp_path, log_dir=tmp_path) as sup:
        assert sup.start("a", timeout=DEADLINE).state is gosuv.State.RUNNING
    with pytest.raises(gosuv.ConfigError, match="not valid YAML"):
        gosuv.Supervisor.from_yaml("- name: [", log_dir=tmp_path)


def test_reload_adds_changes_and_removes(tmp_path: Path) -> None:
    with gosuv.Supervisor(
        {
            "keep": {"command": "sleep 300", "start_seconds": 0},
            "change": {"command": "sleep 300", "start_seconds": 0},
            "drop": {"command": "sleep 300", "start_seconds": 0},
        },
        log_dir=tmp_path,
    ) as sup:
        pids = {n: sup.start(n, timeout=DEADLINE).pid for n in ("keep", "change", "drop")}
        report = sup.reload(
            {
                "keep": {"command": "sleep 300", "start_seconds": 0},
                "change": {"command": "sleep 301", "start_seconds": 0},
                "new": {"command": "sleep 300", "start_auto": True, "start_seconds": 0},
            }
        )
        assert (report.added, report.changed, report.removed) == (["new"], ["change"], ["drop"])
        assert "drop" not in sup
        assert sup.status("keep").pid == pids["keep"]
        st = sup.wait_for("change", "running", timeout=DEADLINE)
        assert st.pid != pids["change"]
        sup.wait_for("new", "running", timeout=DEADLINE)
        assert "new" in repr(report)


def test_a_bad_reload_changes_nothing(sup: gosuv.Supervisor) -> None:
    sup.add("a", "true")
    with pytest.raises(gosuv.ConfigError):
        sup.reload({"a": {"command": "true", "autorestart": "sometimes"}})
    with pytest.raises(gosuv.ConfigError, match="nothing to reload from"):
        sup.reload()
    with pytest.raises(TypeError, match="not both"):
        sup.reload({}, yaml="[]")
    assert [s.name for s in sup.list()] == ["a"]


def test_reload_rereads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "programs.yml"
    path.write_text("- name: a\n  command: 'true'\n")
    with gosuv.Supervisor(path, log_dir=tmp_path) as sup:
        path.write_text("- name: b\n  command: 'true'\n")
        report = sup.reload()
        assert (report.added, report.removed) == (["b"], ["a"])
        report = sup.reload(yaml="[]")
        assert report.removed == ["b"]
        assert sup.list() == []
