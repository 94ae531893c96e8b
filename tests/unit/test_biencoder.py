"""finetune.bi_encoder (issue #15): the pair task's optional bi-encoder.

Unit tests: the config errors (one line each), the retrieval metrics on hand-made
similarities, the contrastive loss. Slow test: a tiny pair project with the bi-encoder on goes
ingest -> register with register.metric: recall_at_10 (real training), beats chance, and the
registered pyfunc / `embed` return one vector per single text.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tiny_pipeline
from components.core.config import parse_params
from components.core.errors import ConfigError
from components.core.paths import Paths

BI = {"finetune": {"bi_encoder": {"enabled": True, "positive": "duplicate"}}}


def test_bi_encoder_config_errors_are_one_line():
    with pytest.raises(ConfigError, match=r"^params.yaml: finetune.bi_encoder.enabled: expected false while "
                                          r"ingest.task is single_label \(the bi-encoder is trained on pairs\), "
                                          r"got true$"):
        parse_params({"finetune": {"bi_encoder": {"enabled": True, "positive": "x"}}})
    with pytest.raises(ConfigError, match=r"^params.yaml: register.metric: recall_at_10 needs "
                                          r"finetune.bi_encoder.enabled: true \(it scores the bi-encoder\), "
                                          r"got 'recall_at_10'$"):
        parse_params({"ingest": {"task": "pair"}, "register": {"metric": "recall_at_10"}})
    with pytest.raises(ConfigError, match=r"^params.yaml: register.metric: expected one of accuracy, macro_f1 "
                                          r"for ingest.task single_label"):
        parse_params({"register": {"metric": "recall_at_10"}})
    with pytest.raises(ConfigError, match=r"^params.yaml: finetune.bi_encoder.temperature: expected a float > 0"):
        parse_params({"ingest": {"task": "pair"}, "finetune": {"bi_encoder": {"temperature": 0}}})
    cfg = parse_params({"ingest": {"task": "pair"}, "register": {"metric": "recall_at_10"}, **BI})
    assert cfg.gate_metric == "recall_at_10" and cfg.finetune.bi_encoder.temperature == 0.05


def test_bi_encoder_positive_must_be_a_label_of_the_data(project):
    from components.model.lit_biencoder import positive_id

    assert positive_id(["different", "duplicate"], "duplicate", Paths.at(project)) == 1
    for bad in ("dup", ""):
        with pytest.raises(ConfigError) as e:
            positive_id(["different", "duplicate"], bad, Paths.at(project))
        assert str(e.value) == (f"finetune.bi_encoder.positive: expected the label of matching pairs, one of "
                                f"different, duplicate (the labels in data/prepared/labels.json), got {bad!r}")


def test_retrieval_metrics_on_hand_made_similarities():
    from components.evaluation.retrieval import retrieval_metrics, retrieval_set

    eye = np.eye(20, dtype=bool)
    perfect = retrieval_metrics(np.eye(20), eye)
    assert perfect == {"recall_at_1": 1.0, "recall_at_5": 1.0, "recall_at_10": 1.0, "mrr": 1.0}
    worst = retrieval_metrics(-np.eye(20), eye)  # every partner ranked last (20th)
    assert worst["recall_at_10"] == 0.0 and worst["mrr"] == pytest.approx(1 / 20)
    # query i ranks candidate (2i + k) % 20 k-th, so its partner (candidate i) has rank (-i) % 20 + 1
    sim = np.array([[-((j - 2 * i) % 20) for j in range(20)] for i in range(20)], dtype=float)
    ranks = np.array([(-i) % 20 + 1 for i in range(20)])
    got = retrieval_metrics(sim, eye)
    assert got["recall_at_1"] == pytest.approx(np.mean(ranks <= 1)) == pytest.approx(1 / 20)
    assert got["recall_at_5"] == pytest.approx(np.mean(ranks <= 5))
    assert got["recall_at_10"] == pytest.approx(np.mean(ranks <= 10))
    assert got["mrr"] == pytest.approx(np.mean(1 / ranks))
    q, c, rel = retrieval_set([("a", "x"), ("a", "y"), ("b", "y")])  # a text with two partners
    assert (q, c) == (["a", "b"], ["x", "y"]) and rel.tolist() == [[True, True], [False, True]]
    two = retrieval_metrics(np.array([[1.0, 0.5], [0.9, 0.1]]), rel)
    assert two["recall_at_1"] == pytest.approx((0.5 + 0.0) / 2) and two["mrr"] == pytest.approx((1 + 0.5) / 2)


def test_contrastive_loss_prefers_matched_pairs():
    from components.model.lit_biencoder import contrastive_loss

    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    noisy = torch.nn.functional.normalize(a + 0.1 * torch.randn(8, 16), dim=-1)
    assert contrastive_loss(a, noisy, 0.05) < contrastive_loss(a, noisy.roll(1, 0), 0.05)
    assert contrastive_loss(a, noisy, 0.05) == pytest.approx(contrastive_loss(noisy, a, 0.05).item())  # symmetric


@pytest.mark.slow
def test_bi_encoder_pipeline_ingest_to_register_and_embed(tmp_path_factory, tmp_path, monkeypatch):
    """The tiny pair project with finetune.bi_encoder on: real training, evaluate's retrieval rows,
    the gate on recall_at_10 (twice: the second run meets a champion), one vector per text."""
    import mlflow
    import pandas as pd

    from components.model.classifier import TextClassifier
    from components.registry.predict import embed_file, load_model

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

    first = tiny_pipeline.register(root, metric="recall_at_10", floor_vs_tfidf=False)
    assert first["gate"]["metric"] == "recall_at_10" and first["decision"] == "champion"
    assert first["gate"]["accuracy"] == pytest.approx(metrics["model.recall_at_10"], abs=1e-6)
    assert first["gate"]["n_test"] == metrics["retrieval.queries"]
    second = tiny_pipeline.register(root, metric="recall_at_10", floor_vs_tfidf=False)
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
