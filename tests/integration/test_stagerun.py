"""How the flow runs one stage: through DVC's public entry point, and what it gets back.

The DVC tests run the ingest stage of a tiny project (tests/flow_project.py)
through `stage_dvc.run_with_dvc` for real: DVC starts `encoderflow stage
ingest` as its own subprocess and records dvc.lock. The flow's process is left
as it was, a failure comes back as StageFailed carrying the stage command's own
one-line error (the ENCODERFLOW_ERROR_FILE hand-off), and the project reaches
DVC through `dvc.repo.Repo` and `dvc.exceptions` only.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from components.core.imports import imported_names
from flows import stage_dvc, stagerun

from builders import flow_project as fp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A tiny DVC project where no stage has run yet (empty run cache)."""
    return fp.make(tmp_path_factory.mktemp("stagerun") / "proj", n=96)


# -- through DVC ---------------------------------------------------------------------------

@pytest.mark.slow
def test_stage_runs_through_dvc_and_leaves_the_flow_process_as_it_was(fresh, tmp_path):
    proj = fp.clone(fresh, tmp_path / "proj")
    environ, cwd = dict(os.environ), os.getcwd()

    result = stage_dvc.run_with_dvc("ingest", proj)

    assert (result.name, result.status, result.driver) == ("ingest", "ran", "dvc")
    assert (proj / "reports" / "ingest.json").is_file() and "ingest" in fp.lock(proj)["stages"]
    assert "up to date" in fp.sh(proj, "dvc", "status", "ingest").stdout  # dvc.lock says what ran
    assert dict(os.environ) == environ and os.getcwd() == cwd  # ERROR_ENV, PATH, chdir undone

    again = stage_dvc.run_with_dvc("ingest", proj)  # unchanged: DVC skips it
    assert (again.status, again.driver) == ("skipped", "dvc")

    fp.write_csv(proj / "data" / "incoming" / "part-001.csv", 16, seed=1)
    assert stage_dvc.run_with_dvc("ingest", proj).status == "ran"  # a changed dep reruns it


@pytest.mark.slow
def test_a_failing_stage_command_is_stage_failed_with_its_own_one_line(tmp_path):
    proj = fp.make(tmp_path / "proj", n=8,
                   overrides={"ingest": {"source": "file:data/incoming/none-*.csv"}})

    with pytest.raises(stagerun.StageFailed) as err:
        stage_dvc.run_with_dvc("ingest", proj)

    message = str(err.value)
    assert message.startswith("stage 'ingest' failed: ") and "none-*.csv" in message
    assert "\n" not in message and "failed to reproduce" not in message  # not DVC's generic line
    assert err.value.name == "ingest" and not err.value.detail.startswith("ingest: ")
    assert stagerun.ERROR_ENV not in os.environ


def test_a_dvc_error_before_any_command_names_dvcs_problem(fresh):
    with pytest.raises(stagerun.StageFailed) as err:
        stage_dvc.run_with_dvc("nosuchstage", fresh)
    assert str(err.value).startswith("stage 'nosuchstage' failed: ") and "nosuchstage" in err.value.detail


def test_only_public_dvc_entry_points_are_used():
    """dvc.repo.Repo (what the `dvc` CLI calls) and dvc.exceptions; no private module."""
    allowed = {"dvc.repo", "dvc.repo.Repo", "dvc.exceptions", "dvc.exceptions.DvcException"}
    used = {}
    for package in ("components", "flows"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for name in imported_names(tree, package):
                if name == "dvc" or name.startswith("dvc."):
                    used.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    assert set(used) <= allowed, {k: v for k, v in used.items() if k not in allowed}
    assert "dvc.repo.Repo" in used  # the walk does see the driver's imports


# -- the one-line error hand-off -----------------------------------------------------------

def test_error_file_carries_the_first_line_only_and_is_removed(monkeypatch):
    with stagerun.error_file() as path:
        assert path.is_file() and stagerun.read_error(path) == ""
        monkeypatch.setenv(stagerun.ERROR_ENV, str(path))
        stagerun.write_error("validate: 2 critical checks failed\nvalidate: train: 3 texts are null")
        assert stagerun.read_error(path) == "validate: 2 critical checks failed"
    assert not path.exists()

    monkeypatch.delenv(stagerun.ERROR_ENV)
    stagerun.write_error("nobody listens")  # no flow started this command: a no-op


def test_stage_failed_names_the_stage_once():
    assert str(stagerun.StageFailed("validate", "validate: 3 texts are null")) == \
        "stage 'validate' failed: 3 texts are null"
    assert str(stagerun.StageFailed("ingest", "no file matches x.csv")) == \
        "stage 'ingest' failed: no file matches x.csv"
