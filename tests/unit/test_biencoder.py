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
    from components.data.pairs import positive_id

    assert positive_id(["different", "duplicate"], "duplicate", Paths.at(project)) == 1
    for bad in ("dup", ""):
        with pytest.raises(ConfigError) as e:
            positive_id(["different", "duplicate"], bad, Paths.at(project))
        assert str(e.value) == (f"finetune.bi_encoder.positive: expected the label of matching pairs, one of "
                                f"different, duplicate (the labels in data/prepared/labels.json), got {bad!r}")


def test_retrieval_metrics_on_hand_made_similarities():
    from components.data.pairs import retrieval_set
    from components.evaluation.retrieval import retrieval_metrics

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
def test_val_mrr_of_training_is_evaluates_mrr():
    """LitBiEncoder logs val MRR / recall@10 with torchmetrics' RetrievalMRR / RetrievalRecall; the
    values are evaluation/retrieval.per_query's means (what evaluate reports on test), to the bit,
    as long as no two candidates of a query score exactly the same (see lit_biencoder)."""
    from components.evaluation.retrieval import per_query
    from components.model.lit_biencoder import LitBiEncoder

    gen = torch.Generator().manual_seed(0)
    q, c = 37, 53
    vecs = torch.nn.functional.normalize(torch.randn(q + c, 8, generator=gen), dim=-1)
    relevant = np.zeros((q, c), dtype=bool)
    relevant[np.arange(q), np.arange(q) % c] = True
    relevant[3, 1] = relevant[5, 40] = True  # queries with two partners
    module = LitBiEncoder(torch.nn.Identity(), temperature=0.05, lr=1e-3, weight_decay=0.0, layer_lr_decay=1.0,
                          warmup_fraction=0.0, total_steps=1, val_queries=q, val_relevant=relevant)
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)
    for _ in range(2):  # twice: the metrics reset between epochs
        module._val = [vecs[:50], vecs[50:]]
        module.on_validation_epoch_end()
        sim = vecs[:q].numpy() @ vecs[q:].numpy().T  # [Q, C]
        assert logged["val_mrr"] == float(per_query(sim, relevant, "mrr").mean())
        assert logged["val_recall_at_10"] == float(per_query(sim, relevant, "recall_at_10").mean())
        assert 0 < logged["val_mrr"] < 1 and module._val == []


