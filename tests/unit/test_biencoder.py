"""finetune.bi_encoder (issue #15): the pair task's optional bi-encoder.

Unit tests: the config errors (one line each), the retrieval metrics on hand-made
similarities, the contrastive loss. The tiny pair project with the bi-encoder on, ingest ->
register with register.metric: recall_at_10 (real training), is in
tests/integration/test_task_pipelines.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
