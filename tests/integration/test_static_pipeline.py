"""The static student, general distillation and the frontier through the real stages.

The tiny pipeline (tests/builders/tiny_pipeline.py) with a tiny BERT as teacher.init
(tests/builders/teacher_model.py) and the default run's recipe on: the teacher stage's base
outputs (base vectors, model2vec's table of the tiny BERT), pretrain's vector term, finetune's
static student next to the transformer, evaluate's frontier with the model2vec baseline, and
register's `<name>-static`, served by its torch-free ONNX pyfunc. No hub download."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from components.core.paths import Paths

from builders import teacher_model, tiny_pipeline
from builders.tiny_pipeline import TINY, register, registry_client

NAME = "encoderflow"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("static_pipeline") / "p"
    bert = teacher_model.tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert")
    tiny_pipeline.write_project(root, overrides={
        "teacher": {"enabled": True, "base": True, "init": str(bert), "max_epochs": 2, "min_steps": 0,
                    "batch_size": 16, "lr": 0.003, "patience": 2, "precision": "32", "augment_copies": 1,
                    "label_batch_size": 64, "max_length": 32, "static_dims": 16},
        "pretrain": {**TINY["pretrain"], "vector_weight": 1.0},
        "finetune": {**TINY["finetune"], "distill": {"enabled": True},
                     "static": {"enabled": True, "mlp_size": 16, "max_epochs": 2, "batch_size": 16}},
    })
    tiny_pipeline.run_stages(root, ("ingest", "validate", "teacher", "tokenize", "pretrain", "finetune",
                                    "evaluate"))
    return root


def test_teacher_writes_base_vectors_and_the_model2vec_table(built):
    paths = Paths.at(built)
    base = pd.read_parquet(paths.teacher_base)
    transfer = pd.read_parquet(paths.teacher_transfer)
    assert len(base) > 0 and sorted(base["text"]) == sorted(transfer["text"])  # label-free: same texts
    assert {len(v) for v in base["vector"]} == {16}  # the tiny BERT's hidden size
    assert (paths.model2vec / "model.safetensors").is_file() and (paths.model2vec / "tokenizer.json").is_file()
    pre = json.loads(paths.report("pretrain").read_text())
    assert pre["vector_weight"] == 1.0  # the vector term was on


def test_finetune_trains_a_static_student_next_to_the_transformer(built):
    paths = Paths.at(built)
    cfg = json.loads((paths.finetuned_static / "config.json").read_text())
    assert cfg["backbone"]["encoder"]["family"] == "static"
    assert json.loads((paths.finetuned / "config.json").read_text())["backbone"]["encoder"]["family"] == "transformer"
    report = json.loads(paths.report("finetune").read_text())
    assert report["static"]["steps"] > 0 and 0 <= report["static"]["best_val_acc"] <= 1


def test_evaluate_puts_every_model_on_the_frontier(built):
    paths = Paths.at(built)
    metrics = json.loads(paths.report("metrics").read_text())
    for key in ("model.accuracy", "static.accuracy", "teacher.accuracy", "baseline.model2vec.accuracy",
                "baseline.tfidf_lr.accuracy", "baseline.nbsvm.accuracy"):
        assert 0 <= metrics[key] <= 1, key
    assert not any("texts_per_s" in k or "p50" in k for k in metrics)  # timings stay out of metrics.json
    frontier = json.loads(paths.report("frontier").read_text())
    rows = {m["name"]: m for m in frontier["models"]}
    assert {"majority", "tfidf_lr", "nbsvm", "model2vec", "static", "transformer", "teacher"} <= set(rows)
    prefixes = {"tfidf_lr": "baseline.tfidf_lr", "nbsvm": "baseline.nbsvm", "model2vec": "baseline.model2vec",
                "static": "static", "transformer": "model", "teacher": "teacher"}
    for name, prefix in prefixes.items():
        m = rows[name]
        assert m["texts_per_s"] > 0 and m["p50_ms"] > 0, name
        assert m["accuracy"] == metrics[f"{prefix}.accuracy"], name
    assert any(m["pareto"] for m in rows.values())
    best = max(rows.values(), key=lambda m: (m["accuracy"], m["texts_per_s"] or 0))
    assert best["pareto"]  # the most accurate model is on the front
    assert (paths.reports / "plots" / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_register_serves_the_static_student_without_torch(built, tmp_path, monkeypatch):
    import mlflow

    root = tiny_pipeline.clone(built, tmp_path / "proj", with_store=True)
    monkeypatch.chdir(root)
    report = register(root, floor_vs_baselines=False, floor_accuracy=0.0)
    static = report["static"]
    assert (static["model_name"], static["version"]) == (f"{NAME}-static", "1")
    assert static["decision"] in ("champion", "challenger")
    client = registry_client(root)
    tags = client.get_model_version(f"{NAME}-static", "1").tags
    assert tags["encoderflow.role"] == "static" and tags["encoderflow.serving"] == "onnx"
    model = mlflow.pyfunc.load_model(f"models:/{NAME}-static/1")
    out = model.predict(pd.DataFrame({"text": ["a great and wonderful film", "dull awful plot"]}))
    assert len(out) == 2 and set(out["label"]) <= {"negative", "positive"}
    vectors = model.predict(pd.DataFrame({"text": ["a great film"]}), params={"output": "embedding"})
    assert vectors.shape[0] == 1 and vectors.shape[1] > 0
