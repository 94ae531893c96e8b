"""flows/stagerun.py's in-process hook on DVC's private `dvc.stage.run._run`.

The DVC tests run the ingest stage of a tiny project (tests/builders/flow_project.py)
through `run_with_dvc` and assert which path its command took, two ways: the
`StageResult.command` the flow reports, and a spy standing in for DVC's own
`_run` (the subprocess runner) that sees every command DVC did not get run
in-process. So if DVC stops going through the hook, the default test fails
instead of silently running subprocesses.
"""

from __future__ import annotations

import logging
import os
import threading
import types
from pathlib import Path

import pytest

from flows import stagerun

from builders import flow_project as fp

dvc_run = pytest.importorskip("dvc.stage.run")
REAL_RUN = dvc_run._run


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A tiny DVC project where no stage has run yet (empty run cache)."""
    return fp.make(tmp_path_factory.mktemp("stagerun") / "proj", n=96)


@pytest.fixture
def proj(fresh, tmp_path):
    return fp.clone(fresh, tmp_path / "proj")


@pytest.fixture
def spy(monkeypatch):
    """DVC's `_run` (same signature), recording the commands it was handed."""
    calls: list[str] = []

    def _run(executable, cmd, **kwargs):
        calls.append(cmd)
        return REAL_RUN(executable, cmd, **kwargs)

    monkeypatch.setattr(dvc_run, "_run", _run)
    return calls


@pytest.fixture
def fake(monkeypatch):
    """A stand-in for DVC's `_run` (same signature) that only records the commands."""
    calls: list[str] = []

    def _run(executable, cmd, **kwargs):
        calls.append(cmd)

    monkeypatch.setattr(dvc_run, "_run", _run)
    return calls


@pytest.fixture
def warnings_(monkeypatch, caplog):
    """The hook's fallback warnings, with its once-per-process flag reset."""
    monkeypatch.setattr(stagerun, "_warned", False)
    caplog.set_level(logging.WARNING, logger=stagerun.__name__)
    return lambda: [r for r in caplog.records
                    if r.name == stagerun.__name__ and r.levelno == logging.WARNING]


# -- through DVC ---------------------------------------------------------------------------

@pytest.mark.slow
def test_stage_command_runs_in_process_by_default(proj, spy, warnings_, monkeypatch):
    monkeypatch.delenv(stagerun.SUBPROCESS_ENV, raising=False)
    environ, cwd = dict(os.environ), os.getcwd()

    result = stagerun.run_with_dvc("ingest", proj)

    assert (result.status, result.driver, result.command) == ("ran", "dvc", "in-process")
    assert spy == []  # DVC's subprocess runner never saw the command
    assert (proj / "reports" / "ingest.json").is_file() and "ingest" in fp.lock(proj)["stages"]
    assert dict(os.environ) == environ and os.getcwd() == cwd  # the stage's changes undone
    assert dvc_run._run is not stagerun._dispatch and not stagerun._handlers  # hook removed
    assert warnings_() == []

    again = stagerun.run_with_dvc("ingest", proj)  # unchanged: DVC skips it, no command
    assert (again.status, again.command) == ("skipped", "")


@pytest.mark.slow
def test_stage_command_is_a_subprocess_when_asked(proj, spy, warnings_, monkeypatch):
    monkeypatch.setenv(stagerun.SUBPROCESS_ENV, "1")

    result = stagerun.run_with_dvc("ingest", proj)

    assert (result.status, result.command) == ("ran", "subprocess")
    assert spy == ["encoderflow stage ingest"]
    assert (proj / "reports" / "ingest.json").is_file()
    assert warnings_() == []  # asked for, not a fallback


@pytest.mark.slow
def test_changed_run_signature_falls_back_to_subprocess_with_one_warning(proj, warnings_,
                                                                       monkeypatch):
    monkeypatch.delenv(stagerun.SUBPROCESS_ENV, raising=False)
    calls: list[str] = []

    def _run(executable, cmd, cwd=None, env=None, **kwargs):  # a "newer DVC"'s signature
        calls.append(cmd)
        return REAL_RUN(executable, cmd, cwd=cwd, env=env, **kwargs)

    monkeypatch.setattr(dvc_run, "_run", _run)

    result = stagerun.run_with_dvc("ingest", proj)
    assert (result.status, result.command) == ("ran", "subprocess")
    assert calls == ["encoderflow stage ingest"] and dvc_run._run is _run  # never replaced
    (warning,) = warnings_()
    assert "dvc.stage.run._run has signature" in warning.getMessage()
    assert "subprocesses" in warning.getMessage()

    fp.write_csv(proj / "data" / "incoming" / "part-001.csv", 16, seed=1)
    again = stagerun.run_with_dvc("ingest", proj)  # new data: runs again, no second warning
    assert (again.status, again.command) == ("ran", "subprocess") and len(calls) == 2
    assert len(warnings_()) == 1


# -- the guard -----------------------------------------------------------------------------

def test_installed_dvc_passes_the_guard():
    assert stagerun._hook_problem(dvc_run) is None


def _fake_run_module(source: str) -> types.ModuleType:
    mod = types.ModuleType("fake_dvc_stage_run")
    exec(source, vars(mod))
    return mod


@pytest.mark.parametrize("source, expected", [
    ("def cmd_run(stage):\n    pass\n", "_run does not exist"),
    ("_run = 3\ndef cmd_run(stage):\n    _run()\n", "not callable"),
    ("def _run(cmd, **kwargs):\n    pass\ndef cmd_run(stage):\n    _run('x')\n",
     "has signature (cmd, **kwargs)"),
    ("def _run(executable, cmd, **kwargs):\n    pass\n", "cmd_run (the caller of _run) is missing"),
    # DVC calling a captured reference: replacing the module attribute would not be seen
    ("def _run(executable, cmd, **kwargs):\n    pass\n"
     "def cmd_run(stage, _r=_run):\n    _r(None, 'x')\n", "does not call _run through the module"),
    ("def _run(executable, cmd, **kwargs):\n    pass\n"
     "class R:\n    run = staticmethod(_run)\n"
     "def cmd_run(stage):\n    R.run(None, 'x')\n", "does not call _run through the module"),
])
def test_guard_names_what_differs(source, expected):
    assert expected in stagerun._hook_problem(_fake_run_module(source))


def test_guard_checks_stage_cmd_failed_error(monkeypatch):
    from dvc.exceptions import DvcException
    from dvc.stage import exceptions

    class NeedsMore(DvcException):
        def __init__(self, cmd, status, stage):
            super().__init__(cmd)

    monkeypatch.setattr(exceptions, "StageCmdFailedError", NeedsMore)
    assert "StageCmdFailedError(cmd, 1) fails" in stagerun._hook_problem(dvc_run)
    monkeypatch.setattr(exceptions, "StageCmdFailedError", RuntimeError)
    assert "not a DvcException" in stagerun._hook_problem(dvc_run)
    monkeypatch.delattr(exceptions, "StageCmdFailedError")
    assert "cannot be imported" in stagerun._hook_problem(dvc_run)


def test_missing_run_falls_back_with_one_warning(monkeypatch, warnings_, tmp_path):
    monkeypatch.delenv(stagerun.SUBPROCESS_ENV, raising=False)
    monkeypatch.delattr(dvc_run, "_run")
    for _ in range(2):
        with stagerun._stage_commands_in_process(tmp_path, str(tmp_path / "err")) as commands:
            assert not hasattr(dvc_run, "_run") and not commands.hooked
        assert commands.path("ingest", ran=True) == "subprocess"
        assert commands.path("ingest", ran=False) == ""
    (warning,) = warnings_()
    assert "dvc.stage.run._run does not exist" in warning.getMessage()


def test_no_warning_when_subprocesses_are_asked_for(monkeypatch, warnings_, tmp_path):
    monkeypatch.setenv(stagerun.SUBPROCESS_ENV, "1")
    monkeypatch.delattr(dvc_run, "_run")
    with stagerun._stage_commands_in_process(tmp_path, str(tmp_path / "err")) as commands:
        assert not commands.hooked
    assert warnings_() == []


# -- scope ---------------------------------------------------------------------------------

def test_other_threads_and_other_commands_get_dvcs_own_run(fake, tmp_path):
    kwargs = {"cwd": str(tmp_path), "env": {"DVC_STAGE": "ingest"}}
    with stagerun._stage_commands_in_process(tmp_path, str(tmp_path / "err")) as commands:
        assert dvc_run._run is stagerun._dispatch
        # another thread (not the flow's reproduce): DVC's own _run, even for our command
        t = threading.Thread(target=dvc_run._run, args=("/bin/sh", "encoderflow stage ingest"),
                             kwargs=kwargs)
        t.start()
        t.join()
        assert fake == ["encoderflow stage ingest"] and commands.paths == {}
        # this thread, a command that is not `encoderflow stage NAME`
        dvc_run._run("/bin/sh", "true", **kwargs)
        assert fake[-1] == "true" and commands.paths == {"ingest": "subprocess"}
    assert dvc_run._run is not stagerun._dispatch


def test_hook_is_restored_on_error_and_after_nested_or_overlapping_use(fake, tmp_path):
    mine = dvc_run._run
    with pytest.raises(RuntimeError):
        with stagerun._stage_commands_in_process(tmp_path, "err"):
            raise RuntimeError("boom")
    assert dvc_run._run is mine and not stagerun._handlers

    with stagerun._stage_commands_in_process(tmp_path, "err"):
        with stagerun._stage_commands_in_process(tmp_path, "err"):
            assert dvc_run._run is stagerun._dispatch
        assert dvc_run._run is stagerun._dispatch  # the outer one still needs it
    assert dvc_run._run is mine and not stagerun._handlers

    entered, leave = threading.Event(), threading.Event()

    def other():
        with stagerun._stage_commands_in_process(tmp_path, "err"):
            entered.set()
            leave.wait(10)

    t = threading.Thread(target=other)
    with stagerun._stage_commands_in_process(tmp_path, "err"):
        t.start()
        assert entered.wait(10)
    assert dvc_run._run is stagerun._dispatch  # the other thread's run is still going
    leave.set()
    t.join()
    assert dvc_run._run is mine and not stagerun._handlers
