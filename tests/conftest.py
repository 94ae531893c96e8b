"""Shared fixtures. Tests build tiny data themselves; no network, no hub."""

from __future__ import annotations

import os

import pytest

from components.core import env

env.configure()

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
