"""Shared fixtures of every tier. Tests build tiny data themselves; no network, no hub.

The tiers are folders: tests/unit (`make check`: code and property tests, seconds in all),
tests/integration (real pipelines, DVC, Prefect, MLflow stores, Lightning training on
tiny configs), tests/system (a browser, PostgreSQL, multi-process DDP). Each test gets
its folder's marker (`pytest -m "not system"`). The builders behind the fixtures are in
tests/builders/.
"""

from __future__ import annotations

import os

import pytest

from components.core import env

env.configure()

TIERS = ("unit", "integration", "system")
# Every unit test is a few seconds at most; this catches one that grows into an
# integration test (pyproject's default timeout is for the slow tiers).
UNIT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items):
    for item in items:
        parts = item.path.relative_to(item.config.rootpath).parts
        tier = parts[1] if len(parts) > 2 and parts[0] == "tests" and parts[1] in TIERS else None
        if tier is None:
            continue
        item.add_marker(tier)
        if tier == "unit" and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_S))


# mlflow.set_tracking_uri / set_registry_uri also export these, and every later
# subprocess inherits them: a test that registers in-process (a pair model) once sent
# test_postgres's `mlflow models serve` to that test's store. Each test keeps its own.
MLFLOW_URIS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def mlflow_uris_stay_in_their_test():
    saved = {key: os.environ.get(key) for key in MLFLOW_URIS}
    yield
    env.restore(saved)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder as the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli():
    """`cli(*args) -> (exit code, output)`: the `encoderflow` Typer app, in-process (CliRunner).

    For the installed console script in a subprocess, see builders.flow_project.encoderflow.
    """
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        res = runner.invoke(app, list(args))
        return res.exit_code, res.output

    return invoke


# --- the tiny pipeline (builders/tiny_pipeline.py) --------------------------------------------

@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The tiny project after ingest -> evaluate, built once per pytest process. Read-only:
    tests change a copy (`proj`)."""
    from builders import tiny_pipeline

    return tiny_pipeline.cached_build(tmp_path_factory)


@pytest.fixture
def proj(built, tmp_path, monkeypatch):
    """A copy of `built` as the working directory, its MLflow store included (the stage runs,
    which register's lineage tags point at; nothing registered yet)."""
    from builders import tiny_pipeline

    root = tiny_pipeline.clone(built, tmp_path / "proj", with_store=True)
    monkeypatch.chdir(root)
    return root


# --- lower-level projects ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tokenized labelled project (builders/cls_project.py), one per test module: its tests
    write only models/, reports/ and the transfer set."""
    from builders import cls_project

    return cls_project.make_project(tmp_path_factory.mktemp("cls_project"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A pretraining project (builders/mlm_project.py), one per test module; copy it (tiny_project)."""
    from builders import mlm_project

    return mlm_project.write_tiny_project(tmp_path_factory.mktemp("mlm_project"))


@pytest.fixture
def tiny_project(project, tiny_data):
    """A copy of `tiny_data` as the working directory."""
    from builders import mlm_project

    return mlm_project.new_project(tiny_data, project)
