"""The tiny pipeline (builders/tiny_pipeline.py) per task, ingest -> register with real training:
multi_label (label sets, macro-F1 gate, served pyfunc), single_label with 3 classes, pair (a
cross-encoder, `predict` on two columns, served pyfunc) and pair with the bi-encoder
(retrieval rows, the gate on recall_at_10, `embed`). The tasks' units are
tests/unit/test_tasks.py, test_pair.py and test_biencoder.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.core.config import load_params
from components.core.errors import DataError
from components.core.paths import Paths

from builders import tiny_pipeline

BI = {"finetune": {"bi_encoder": {"enabled": True, "positive": "duplicate"}}}


def _registered(root: Path, **register) -> dict:
    return tiny_pipeline.register(root, **register)


@pytest.mark.slow
def test_multi_label_pipeline_ingest_to_register_and_predict(tmp_path_factory, tmp_path, monkeypatch, capsys):
    """ingest -> validate -> tokenize -> pretrain -> finetune -> evaluate -> register on the
    tiny multi_label project; the gate compares macro-F1; the pyfunc and `predict` return label sets."""
    import mlflow
    import pandas as pd

    from components.model.classifier import TextClassifier
    from components.registry.predict import predict_file

    built = tiny_pipeline.cached_build(tmp_path_factory, task="multi_label")
    root = tiny_pipeline.clone(built, tmp_path / "p")
    monkeypatch.chdir(root)
    clf = TextClassifier.from_folder(root / "models/finetuned")
    assert clf.multi_label and len(clf.thresholds) == 3 and clf.labels == sorted(tiny_pipeline.TOPICS)
    finetune = json.loads((root / "reports/finetune.json").read_text())
    assert finetune["task"] == "multi_label" and set(finetune["thresholds"]) == set(tiny_pipeline.TOPICS)
    metrics = json.loads((root / "reports/metrics.json").read_text())
    for scorer in ("model", "baseline.tfidf_lr", "baseline.majority"):
        assert {f"{scorer}.{k}" for k in ("macro_f1", "micro_f1", "subset_accuracy", "precision.music")} <= set(metrics)
    assert "model.accuracy" not in metrics and metrics["model.macro_f1"] > 0.8  # learnable from topic words
    assert json.loads((root / "reports/validation.json").read_text())["critical_failures"] == 0
    from components.stages import teacher  # enabled, but single_label only: one line, the no-op outputs

    teacher.run(load_params(root / "params.yaml", ["teacher.enabled=true"]), Paths.at(root))
    assert "teacher: not fine-tuned: the teacher is single_label only" in capsys.readouterr().out
    assert "multi_label" in json.loads((root / "models/teacher/DISABLED.json").read_text())["reason"]

    report = _registered(root, floor_vs_baselines=False)
    assert report["decision"] == "champion" and report["gate"]["metric"] == "macro_f1"
    assert report["gate"]["accuracy"] == pytest.approx(metrics["model.macro_f1"], abs=1e-6)  # same rows, same F1
    again = _registered(root, floor_vs_baselines=False)  # the same model again: no gain, stays challenger
    assert again["decision"] == "challenger" and again["gate"]["gain"] == 0.0

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/encoderflow@champion")
    texts = ["the actor gave a fine performance", "a soundtrack and a camera shot", "the plot was a plot"]
    out = model.predict(pd.DataFrame({"text": texts}))
    assert list(out.columns) == ["labels", "prob_acting", "prob_music", "prob_visuals"]
    assert list(out["labels"]) == [list(v) for v in clf.predict_labels(texts)]
    pd.DataFrame({"text": texts}).to_csv(root / "in.csv", index=False)
    assert predict_file(model, root / "in.csv", root / "out.parquet", progress=False) == 3
    assert predict_file(model, root / "in.csv", root / "out.csv", progress=False) == 3
    assert [list(v) for v in pd.read_parquet(root / "out.parquet")["labels"]] == list(out["labels"])
    assert pd.read_csv(root / "out.csv", keep_default_na=False)["labels"].tolist() == ["|".join(v) for v in out["labels"]]


@pytest.mark.slow
def test_multi_label_pyfunc_served(tmp_path_factory, tmp_path):
    from builders.serving import post, serving

    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory, task="multi_label"), tmp_path / "p")
    _registered(root, floor_vs_baselines=False)
    with serving(root, "models:/encoderflow/1", tmp_path / "serve.log") as port:
        code, body = post(port, {"dataframe_records": [{"text": "a soundtrack with a melody and a song"},
                                                       {"text": "the plot was the plot"}]})
    assert code == 200, body
    preds = body["predictions"]
    assert set(preds[0]) == {"labels", "prob_acting", "prob_music", "prob_visuals"}
    assert "music" in preds[0]["labels"] and isinstance(preds[1]["labels"], list)
    assert all(0.0 <= preds[0][f"prob_{t}"] <= 1.0 for t in tiny_pipeline.TOPICS)


@pytest.mark.slow
def test_single_label_three_classes_pipeline(tmp_path_factory, tmp_path):
    """single_label with 3 classes: softmax over 3, multiclass baselines, gate on accuracy."""
    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory, classes=3), tmp_path / "p")
    assert json.loads((root / "data/prepared/labels.json").read_text()) == {"labels": ["negative", "neutral",
                                                                                      "positive"]}
    metrics = json.loads((root / "reports/metrics.json").read_text())
    for scorer in ("model", "baseline.tfidf_lr", "baseline.nbsvm", "baseline.majority"):
        assert f"{scorer}.precision.neutral" in metrics and f"{scorer}.accuracy" in metrics
    assert metrics["model.accuracy"] > 0.6 and "model.roc_auc" in metrics  # chance is 1/3
    report = _registered(root, floor_vs_baselines=False)
    assert report["gate"]["metric"] == "accuracy" and report["decision"] == "champion"
    assert report["gate"]["accuracy"] == pytest.approx(metrics["model.accuracy"], abs=1e-6)
    macro = _registered(root, floor_vs_baselines=False, metric="macro_f1")  # the other single_label metric
    assert macro["gate"]["metric"] == "macro_f1" and macro["gate"]["champion_accuracy"] is not None


@pytest.mark.slow
def test_pair_pipeline_ingest_to_register_and_predict(tmp_path_factory, tmp_path, monkeypatch, capsys):
    """ingest -> validate -> tokenize -> pretrain -> finetune -> evaluate -> register on the tiny
    pair project (synthetic paraphrase pairs); the pyfunc and `predict` read text + text_pair."""
    import mlflow
    import pandas as pd

    from components.model.classifier import TextClassifier
    from components.registry.predict import predict_file

    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory, task="pair"), tmp_path / "p")
    monkeypatch.chdir(root)
    assert json.loads((root / "data/prepared/labels.json").read_text()) == {"labels": ["different", "duplicate"],
                                                                           "task": "pair"}
    assert json.loads((root / "reports/validation.json").read_text())["critical_failures"] == 0
    clf = TextClassifier.from_folder(root / "models/finetuned")
    assert clf.pair and clf.net.backbone.cfg.segments == 2
    finetune = json.loads((root / "reports/finetune.json").read_text())
    assert finetune["task"] == "pair" and finetune["segment_embedding"] is True
    metrics = json.loads((root / "reports/metrics.json").read_text())
    for scorer in ("model", "baseline.tfidf_lr", "baseline.majority"):
        assert {f"{scorer}.{k}" for k in ("accuracy", "macro_f1", "precision.duplicate")} <= set(metrics)
    assert metrics["baseline.tfidf_lr.accuracy"] > 0.9  # word overlap separates the synthetic pairs
    assert not any(k.startswith("behaviour.") for k in metrics)
    from components.core.config import load_params
    from components.stages import teacher  # enabled, but single_label only: one line, the no-op outputs

    teacher.run(load_params(root / "params.yaml", ["teacher.enabled=true"]), Paths.at(root))
    assert "teacher: not fine-tuned: the teacher is single_label only and the data is pair" in capsys.readouterr().out
    assert "pair" in json.loads((root / "models/teacher/DISABLED.json").read_text())["reason"]

    report = tiny_pipeline.register(root, floor_vs_baselines=False)
    assert report["gate"]["metric"] == "accuracy" and report["version"] == "1"
    assert report["gate"]["accuracy"] == pytest.approx(metrics["model.accuracy"], abs=1e-6)  # same rows, same model

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/encoderflow/1")
    pairs = [("the film was good", "good was the film"), ("a dull plot", "superb acting and music")]
    frame = pd.DataFrame({"text": [a for a, _ in pairs], "text_pair": [b for _, b in pairs]})
    out = model.predict(frame)
    assert list(out.columns) == ["label", "label_id", "prob_different", "prob_duplicate"]
    assert list(out["label"]) == clf.predict(pairs)
    assert model.predict(frame, params={"output": "embedding"}).shape == (2, 32)
    with pytest.raises(Exception, match="text_pair"):
        model.predict(pd.DataFrame({"text": ["only one side"]}))
    frame.rename(columns={"text_pair": "second"}).to_csv(root / "in.csv", index=False)
    assert predict_file(model, root / "in.csv", root / "out.csv", progress=False, pair_column="second") == 2
    scored = pd.read_csv(root / "out.csv")
    assert list(scored["label"]) == list(out["label"]) and "second" in scored.columns
    with pytest.raises(DataError, match=r"in.csv: column 'text_pair' not found \(columns: text, second\)"):
        predict_file(model, root / "in.csv", root / "out2.csv", progress=False)
    assert not (root / "out2.csv").exists()


@pytest.mark.slow
def test_pair_pyfunc_served(tmp_path_factory, tmp_path):
    from builders.serving import post, serving

    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory, task="pair"), tmp_path / "p")
    tiny_pipeline.register(root, floor_vs_baselines=False)
    with serving(root, "models:/encoderflow/1", tmp_path / "serve.log") as port:
        code, body = post(port, {"dataframe_records": [{"text": "a good film", "text_pair": "film good a"},
                                                       {"text": "a dull plot", "text_pair": "great music"}]})
        bad, _ = post(port, {"dataframe_records": [{"text": "no pair column"}]})
    assert code == 200, body
    preds = body["predictions"]
    assert set(preds[0]) == {"label", "label_id", "prob_different", "prob_duplicate"}
    assert all(abs(p["prob_different"] + p["prob_duplicate"] - 1) < 1e-5 for p in preds)
    assert bad >= 400


@pytest.mark.slow
def test_bi_encoder_pipeline_ingest_to_register_and_embed(tmp_path_factory, tmp_path, monkeypatch):
    """The tiny pair project with finetune.bi_encoder on: real training, evaluate's retrieval rows,
    the gate on recall_at_10 (twice: the second run meets a champion), one vector per text."""
    import mlflow
    import pandas as pd

    from components.model.classifier import TextClassifier
    from components.registry.load import load_model
    from components.registry.predict import embed_file

    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory, task="pair", overrides=BI),
                               tmp_path / "p")
    monkeypatch.chdir(root)
    clf = TextClassifier.from_folder(root / "models/finetuned")
    assert clf.pair and clf.biencoder is not None and clf.biencoder.positive == "duplicate"
    assert json.loads((root / "models/finetuned/config.json").read_text())["bi_encoder"] == {
        "folder": "biencoder", "positive": "duplicate"}
    report = json.loads((root / "reports/finetune.json").read_text())["bi_encoder"]
    assert report["train_pairs"] > 50 and report["steps"] > 0 and report["best_val_mrr"] is not None

    metrics = json.loads((root / "reports/metrics.json").read_text())
    for scorer in ("model", "baseline.tfidf_cosine"):
        assert {f"{scorer}.{m}" for m in ("recall_at_1", "recall_at_5", "recall_at_10", "mrr")} <= set(metrics)
    candidates = metrics["retrieval.candidates"]
    assert candidates >= 20
    chance = 10 / candidates  # recall@10 of a random ranking (one partner per query)
    assert metrics["model.recall_at_10"] > chance + 0.2, (metrics["model.recall_at_10"], chance)
    assert metrics["model.mrr"] > 3 * sum(1 / r for r in range(1, int(candidates) + 1)) / candidates
    assert metrics["model.accuracy"] > 0  # the cross-encoder is still scored as before

    first = tiny_pipeline.register(root, metric="recall_at_10", floor_vs_baselines=False)
    assert first["gate"]["metric"] == "recall_at_10" and first["decision"] == "champion"
    assert first["gate"]["accuracy"] == pytest.approx(metrics["model.recall_at_10"], abs=1e-6)
    assert first["gate"]["n_test"] == metrics["retrieval.queries"]
    second = tiny_pipeline.register(root, metric="recall_at_10", floor_vs_baselines=False)
    assert second["gate"]["champion_version"] == "1" and second["gate"]["gain"] == 0.0
    assert second["decision"] == "challenger"  # the same model: no gain, CI not above zero

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/encoderflow/1")
    texts = ["the film was good", "good was the film", "a dull plot"]
    vecs = model.predict(pd.DataFrame({"text": texts}), params={"output": "embedding"})
    assert vecs.shape == (3, 32) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vecs, clf.biencoder.embed(texts), atol=1e-5)
    labelled = model.predict(pd.DataFrame({"text": texts[:1], "text_pair": texts[1:2]}))
    assert list(labelled.columns) == ["label", "label_id", "prob_different", "prob_duplicate"]
    with pytest.raises(Exception, match="text_pair"):  # labels still need both sides
        model.predict(pd.DataFrame({"text": texts}))
    pd.DataFrame({"text": texts}).to_csv(root / "in.csv", index=False)
    assert embed_file(model, root / "in.csv", root / "out.npy", progress=False) == (3, 32)
    assert embed_file(load_model("models/finetuned"), root / "in.csv", root / "out2.npy", progress=False) == (3, 32)
    assert np.allclose(np.load(root / "out.npy"), np.load(root / "out2.npy"), atol=1e-6)
