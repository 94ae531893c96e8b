"""Security on the real pipeline: a registered model loads and predicts without unpickling,
and a credential in a logged URI never reaches logs, params, tags or artifacts (a real
`encoderflow stage ingest` subprocess). The units are tests/unit/test_security.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from components.core.config import load_params

from builders import tiny_pipeline
from builders.guards import no_unpickling

SECRET = "s3cret"


@pytest.mark.slow
def test_registered_model_loads_and_predicts_without_unpickling(tmp_path_factory, monkeypatch):
    import mlflow
    import pandas as pd

    from components.core.paths import Paths
    from components.stages import register

    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory),
                               tmp_path_factory.mktemp("secure_register"), with_store=True)
    monkeypatch.chdir(root)
    register.run(load_params(root / "params.yaml"), Paths.at(root))
    assert not [p for p in (root / "mlartifacts").rglob("*") if p.suffix in (".pkl", ".pickle", ".bin")]
    no_unpickling(monkeypatch)
    model = mlflow.pyfunc.load_model("models:/encoderflow@champion")  # models-from-code + safetensors
    out = model.predict(pd.DataFrame({"text": ["a really great film", "a dull boring plot"]}))
    assert list(out["label"]) == ["positive", "negative"]


def test_credentials_never_reach_logs_params_or_artifacts(project):
    """A real ingest stage (subprocess) with a credential in a logged URI param."""
    from components.core import tracking

    tiny_pipeline.write_project(project, n=40)
    # The experiment exists already (with a local artifact root); the run then sees an
    # FTP artifact root with a password in it, as MLflow's FTP store takes it.
    tracking.experiment_id(load_params(project / "params.yaml").project, project)
    ftp = f"ftp://alice:{SECRET}@ftp.example.invalid/mlflow"
    exe = Path(sys.executable).parent / "encoderflow"
    res = subprocess.run([str(exe), "stage", "ingest", "--set", f"project.artifact_location={ftp}"],
                         cwd=project, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ingest: done" in res.stdout
    assert SECRET not in res.stdout + res.stderr

    with sqlite3.connect(project / "mlflow.db") as db:
        params = dict(db.execute("SELECT key, value FROM params").fetchall())
        tags = db.execute("SELECT key, value FROM tags").fetchall()
    assert params["project.artifact_location"] == "ftp://***@ftp.example.invalid/mlflow"  # logged, redacted
    assert params["ingest.source"] == "file:raw.csv"
    assert tags and not [t for t in tags if SECRET in t[1]]
    leaks = [p for p in project.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []  # mlflow.db, mlartifacts/, reports/, data/ ...
