"""The stages' MLflow side, on the hand-made data of the unit tests (builders/data.py): ingest
and tokenize log their counts, the baselines tag their feature choice on the active run.
Each test creates a sqlite MLflow store (seconds of schema migration), which is why they are
not unit tests."""

from __future__ import annotations

import pytest

from components.core.config import IngestConfig, Params, TokenizeConfig
from components.core.paths import Paths
from components.evaluation import baselines as B
from components.stages import ingest, tokenize

from builders.data import chinese_reviews, split, tokenize_project


def _reviews(n: int) -> list[tuple[str, str]]:  # as in tests/unit/test_ingest.py
    return [(f"review number {i} of the film", "neg" if i % 3 == 0 else "pos") for i in range(n)]


def _write_csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "".join(f'"{t}",{l}\n' for t, l in rows), encoding="utf-8")


@pytest.mark.slow  # creating the sqlite MLflow store takes ~12 s on 2 shared cores
def test_stage_run_logs_counts_to_mlflow(project):
    import mlflow

    _write_csv(project / "data.csv", _reviews(60))
    paths = Paths.at(project)
    summary = ingest.run(Params(ingest=IngestConfig(source="file:data.csv")), paths)
    (found,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert found.info.run_name == "ingest" and found.data.params["ingest.source"] == "file:data.csv"
    assert found.data.metrics["rows.train"] == summary["train"]
    assert found.data.metrics["rows_read"] == 60


@pytest.mark.slow  # ~10 s of MLflow start-up (import + sqlite schema)
def test_run_logs_to_mlflow(project):
    import mlflow

    paths = tokenize_project(project)
    cfg = Params(tokenize=TokenizeConfig(model="bpe", vocab_size=300))
    summary = tokenize.run(cfg, paths)
    assert summary["texts"]["unlabeled"] == 2 and summary["vocab_size"] <= 300
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["encoderflow"], output_format="list")
    assert [r.info.run_name for r in runs] == ["tokenize"]
    assert runs[0].data.metrics["vocab_size"] == summary["vocab_size"]
    assert runs[0].data.params["tokenize.model"] == "bpe"


def test_choice_is_tagged_on_the_active_mlflow_run(project):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        args = split(*chinese_reviews(200, seed=6))[:5]
        with mlflow.start_run() as run:
            B.sklearn_baselines(*args, 2)
        tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    finally:
        mlflow.set_tracking_uri(previous)
    assert "char_wb" in tags["baseline.tfidf_lr.analyzer"] and "char_wb" in tags["baseline.nbsvm.analyzer"]
    assert float(tags["baseline.nbsvm.C"]) in B.C_GRID
    assert tags["baseline.tfidf_lr.val_accuracy"].startswith("word ")
