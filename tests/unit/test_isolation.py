"""conftest's mlflow_uris_stay_in_their_test: a URI one test sets in-process does not
reach the next test's subprocesses (they inherit os.environ). Runs in file order."""

from __future__ import annotations

import os

import mlflow

LEAKED = "sqlite:////nonexistent/leaked-by-an-earlier-test.db"


def test_setting_the_registry_in_process_exports_it(tmp_path):
    mlflow.set_registry_uri(LEAKED)
    mlflow.set_tracking_uri(LEAKED)
    assert os.environ["MLFLOW_REGISTRY_URI"] == os.environ["MLFLOW_TRACKING_URI"] == LEAKED


def test_the_next_test_does_not_inherit_it():
    assert LEAKED not in (os.environ.get("MLFLOW_REGISTRY_URI"), os.environ.get("MLFLOW_TRACKING_URI"))
