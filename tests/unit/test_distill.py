"""Knowledge distillation in finetune: the loss and the transfer set contract. The real tiny runs
are tests/integration/test_distill_training.py."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from components.core.config import DistillConfig, parse_params
from components.core.errors import ConfigError, DataError
from components.data import transfer
from components.model import cls_data, lit_cls
from components.model.lit_cls import distill_loss, soft_term


def test_doctests():
    for mod in (transfer, lit_cls, cls_data):
        assert doctest.testmod(mod).failed == 0, mod.__name__


# ---------------------------------------------------------------- the loss


def _batch(seed=0, b=6, c=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, generator=g)  # [B, C]
    soft = torch.softmax(2 * torch.randn(b, c, generator=g), -1)  # [B, C]
    labels = torch.randint(0, c, (b,), generator=g)  # [B]
    return logits, soft, labels


def _kl_by_hand(logits, soft, t):
    """T^2 * sum_c p_T (log p_T - log s_T), row by row, from the definitions."""
    p_t = soft ** (1 / t) / (soft ** (1 / t)).sum(-1, keepdim=True)  # softmax(log p / T)
    s_t = torch.softmax(logits / t, -1)
    return t * t * (p_t * (p_t.log() - s_t.log())).sum(-1)  # [B]


@pytest.mark.parametrize("weights", [None, torch.tensor([0.5, 2.0, 1.0])])
def test_alpha_one_on_gold_rows_is_plain_cross_entropy(weights):
    logits, soft, labels = _batch()
    gold = torch.ones(len(labels), dtype=torch.bool)
    loss = distill_loss(logits, soft, labels, gold, alpha=1.0, temperature=3.0, class_weights=weights)
    assert torch.allclose(loss, F.cross_entropy(logits, labels, weight=weights))


@pytest.mark.parametrize("t", [1.0, 2.0, 4.0])
def test_alpha_zero_is_t_squared_kl(t):
    logits, soft, labels = _batch(1)
    gold = torch.ones(len(labels), dtype=torch.bool)
    loss = distill_loss(logits, soft, labels, gold, alpha=0.0, temperature=t)
    assert torch.allclose(loss, _kl_by_hand(logits, soft, t).mean(), atol=1e-6)
    assert torch.allclose(F.kl_div(torch.log_softmax(logits / t, -1), torch.softmax(soft.log() / t, -1),
                                   reduction="batchmean") * t * t, loss, atol=1e-6)


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_identical_distributions_give_zero(kind):
    logits, _, labels = _batch(2)
    same = torch.softmax(logits, -1)  # the teacher is the student
    assert torch.allclose(soft_term(logits, same, 2.0, kind), torch.zeros(len(labels)), atol=1e-6)
    none = torch.zeros(len(labels), dtype=torch.bool)
    assert distill_loss(logits, same, labels, none, alpha=0.5, temperature=2.0, kind=kind).abs() < 1e-6


def test_rows_without_gold_use_only_the_distill_term():
    logits, soft, labels = _batch(3)
    none = torch.zeros(len(labels), dtype=torch.bool)
    kl = _kl_by_hand(logits, soft, 2.0)  # [B]
    for alpha in (0.0, 0.3, 1.0):  # alpha weighs gold rows only
        loss = distill_loss(logits, soft, torch.full_like(labels, -1), none, alpha=alpha, temperature=2.0)
        assert torch.allclose(loss, kl.mean(), atol=1e-6)
    # a mixed batch is the mean of its rows: gold rows alpha*CE + (1-alpha)*KL, the others KL
    gold = torch.tensor([True, False, True, False, False, True])
    ce = F.cross_entropy(logits, labels, reduction="none")  # [B]
    rows = torch.where(gold, 0.3 * ce + 0.7 * kl, kl)
    assert torch.allclose(distill_loss(logits, soft, labels, gold, alpha=0.3, temperature=2.0), rows.mean(), atol=1e-6)


def test_mse_is_centred_logit_matching():
    logits, soft, labels = _batch(4)
    z_t = soft.log() + 7.0  # teacher logits: log p up to a per-row constant
    centre = lambda z: z - z.mean(-1, keepdim=True)  # noqa: E731
    expect = ((centre(logits) - centre(z_t)) ** 2).mean(-1)  # [B]
    assert torch.allclose(soft_term(logits, soft, 5.0, "mse"), expect, atol=1e-5)  # T does not enter
    gold = torch.ones(len(labels), dtype=torch.bool)
    loss = distill_loss(logits, soft, labels, gold, alpha=0.25, temperature=2.0, kind="mse")
    assert torch.allclose(loss, 0.25 * F.cross_entropy(logits, labels) + 0.75 * expect.mean(), atol=1e-5)


def test_zero_teacher_probabilities_stay_finite():
    logits = torch.tensor([[1.0, -1.0]])
    hard = torch.tensor([[1.0, 0.0]])  # a float32 softmax can round to exactly 0
    for kind in ("kl", "mse"):
        assert torch.isfinite(soft_term(logits, hard, 2.0, kind)).all()


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_gradient_reaches_every_row(kind):
    logits, soft, labels = _batch(5)
    logits.requires_grad_(True)
    gold = torch.tensor([True, False, True, False, True, False])
    distill_loss(logits, soft, labels, gold, alpha=0.5, temperature=2.0, kind=kind).backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad.abs().sum(-1) > 0).all()  # gold and unlabeled rows both get a gradient


def test_training_step_uses_the_distill_loss_on_soft_batches():
    from components.model.classifier import ClassifierNet
    from components.model.encoder import EncoderConfig, build_encoder

    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig("cnn", 30, 0, 8, 1, 1, 16, True, "learned", 16, "mean", (3,)))
    net = ClassifierNet(enc, 2, dropout=0.0)
    d = {"alpha": 0.4, "temperature": 2.0, "loss": "kl"}
    lit = lit_cls.LitClassifier(net, 2, lr=1e-3, weight_decay=0.0, layer_lr_decay=1.0, warmup_fraction=0.0,
                                total_steps=1, distill=d)
    lit.log = lambda *a, **k: None  # no trainer attached
    batch = cls_data.SoftCollate(0)([([2, 5, 7, 3], torch.tensor([0.9, 0.1]), 0, None),
                                     ([2, 6, 3], torch.tensor([0.3, 0.7]), -1, None)])
    logits = net(batch["input_ids"], batch["attention_mask"])
    expect = distill_loss(logits, batch["soft"], batch["labels"], batch["has_gold"], alpha=0.4, temperature=2.0)
    assert torch.allclose(lit.training_step(batch, 0), expect)
    assert lit.vector_head is None


def test_training_step_adds_the_weighted_vector_term():
    """vector_weight > 0: a training-only map from the student's pooled vector to the teacher's
    vector space, and the loss gains vector_weight * (1 - cos) averaged over rows."""
    from components.model.classifier import ClassifierNet
    from components.model.encoder import EncoderConfig, build_encoder

    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig("cnn", 30, 0, 8, 1, 1, 16, True, "learned", 16, "mean", (3,)))
    net = ClassifierNet(enc, 2, dropout=0.0)
    d = {"alpha": 0.4, "temperature": 2.0, "loss": "kl", "vector_weight": 0.5, "vector_dim": 5}
    lit = lit_cls.LitClassifier(net, 2, lr=1e-3, weight_decay=0.0, layer_lr_decay=1.0, warmup_fraction=0.0,
                                total_steps=1, distill=d)
    lit.log = lambda *a, **k: None
    assert lit.vector_head.in_features == enc.output_size and lit.vector_head.out_features == 5
    vecs = torch.randn(2, 5)
    batch = cls_data.SoftCollate(0)([([2, 5, 7, 3], torch.tensor([0.9, 0.1]), 0, vecs[0]),
                                     ([2, 6, 3], torch.tensor([0.3, 0.7]), -1, vecs[1])])
    assert torch.equal(batch["vector"], vecs)
    logits = net(batch["input_ids"], batch["attention_mask"])
    pooled = net.embed(batch["input_ids"], batch["attention_mask"])
    cos = F.cosine_similarity(lit.vector_head(pooled), vecs, dim=-1)  # [2]
    expect = distill_loss(logits, batch["soft"], batch["labels"], batch["has_gold"], alpha=0.4,
                          temperature=2.0) + 0.5 * (1 - cos).mean()
    loss = lit.training_step(batch, 0)
    assert torch.allclose(loss, expect)
    loss.backward()  # the map and the encoder both get a gradient from the vector term
    assert lit.vector_head.weight.grad.abs().sum() > 0
    opt = lit.configure_optimizers()["optimizer"]  # the map is trained
    assert any(p is lit.vector_head.weight for g in opt.param_groups for p in g["params"])
    # the map is not part of the exported network
    assert not any(k.startswith("vector_head") for k in net.state_dict())


# ------------------------------------------------------------ config errors


def test_distill_without_a_teacher_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^params.yaml: finetune.distill.enabled: expected false while "
                                          r"teacher.enabled is false") as e:
        parse_params({"teacher": {"enabled": False}, "finetune": {"distill": {"enabled": True}}})
    assert "\n" not in str(e.value)
    cfg = parse_params({"teacher": {"enabled": False}, "finetune": {"distill": {"enabled": False}}})
    assert cfg.finetune.distill == DistillConfig(enabled=False)


@pytest.mark.parametrize("raw, message", [
    ({"distill": {"alpha": 1.5}}, "finetune.distill.alpha: expected a float >= 0 and <= 1, got 1.5"),
    ({"distill": {"temperature": 0}}, "finetune.distill.temperature: expected a float > 0, got 0"),
    ({"distill": {"loss": "ce"}}, "finetune.distill.loss: expected one of 'kl', 'mse', got 'ce'"),
    ({"distill": {"vector_weight": -1}}, "finetune.distill.vector_weight: expected a float >= 0, got -1"),
    ({"distill": {"nope": 1}}, "finetune.distill.nope: unknown key"),
    ({"augment_copies": -1}, "finetune.augment_copies: expected an integer >= 0"),
    ({"augment_copies": 2, "distill": {"enabled": True}},
     "finetune.augment_copies: expected 0 while finetune.distill.enabled is true"),
])
def test_bad_distill_keys_name_the_key(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_params({"finetune": raw})
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------- the transfer set contract


def _vectors(n, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("texts, sources, labels, probs, message", [
    (["a"], ["unlabeled"], [1], [[0.5, 0.5]], r"row 0 \(unlabeled\) has label 1, expected null"),
    (["a"], ["train"], [None], [[0.5, 0.5]], r"row 0 \(train\) has label .*expected 0..1"),
    (["a"], ["train"], [2], [[0.5, 0.5]], r"row 0 \(train\) has label 2, expected 0..1"),
    (["a"], ["web"], [None], [[0.5, 0.5]], "row 0 has source 'web', expected one of train, unlabeled"),
    (["a"], ["unlabeled"], [None], [[0.5, 0.6]], "row 0 has probabilities .* that sum to 1"),
    (["a"], ["unlabeled"], [None], [[float("nan"), 1.0]], "row 0 has probabilities"),
])
def test_transfer_contract_errors(tmp_path, texts, sources, labels, probs, message):
    path = tmp_path / "transfer.parquet"
    pd.DataFrame({"text": texts, "probabilities": probs, "source": sources,
                  "label": pd.array(labels, dtype="Int64")}).to_parquet(path)
    with pytest.raises(DataError, match=message) as e:
        transfer.read_transfer(path, 2)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("vectors, message", [
    ([[1.0, 2.0], [1.0]], "row 1 has vector 1 values, expected 2 values like row 0"),
    ([[1.0, 2.0], None], "row 1 has vector null, expected 2"),
    ([[1.0, 2.0], [float("inf"), 0.0]], "row 1 has a non-finite vector value"),
])
def test_transfer_vector_errors(tmp_path, vectors, message):
    path = tmp_path / "transfer.parquet"
    pd.DataFrame({"text": ["a", "b"], "probabilities": [[0.5, 0.5]] * 2, "source": ["unlabeled"] * 2,
                  "label": pd.array([None, None], dtype="Int64"), "vector": vectors}).to_parquet(path)
    with pytest.raises(DataError, match=message) as e:
        transfer.read_transfer(path, 2)
    assert "\n" not in str(e.value)


def test_reads_what_the_teacher_stage_writes(tmp_path):
    """The teacher's writer (data/transfer_write.py) and this reader agree on the contract."""
    tw = pytest.importorskip("components.data.transfer_write")
    rows = tw.build(["good film", "bad film"], [1, 0], ["so so"], 1, 0, "[MASK]", held_out=set())
    probs = np.tile(np.array([[0.25, 0.75]], np.float32), (len(rows), 1))
    tw.write(tmp_path / "t.parquet", rows, probs)
    got = transfer.read_transfer(tmp_path / "t.parquet", 2)
    assert got.texts == rows.texts and got.sources == rows.sources
    assert got.labels.tolist() == [1, 0] + [-1] * (len(rows) - 2)
    assert np.array_equal(got.probs, probs) and got.vectors is None  # written without vectors
    vecs = _vectors(len(rows), 4)
    tw.write(tmp_path / "v.parquet", rows, probs, vecs)
    assert np.array_equal(transfer.read_transfer(tmp_path / "v.parquet", 2).vectors, vecs)
    tw.write(tmp_path / "empty.parquet", None)
    assert len(transfer.read_transfer(tmp_path / "empty.parquet", 2)) == 0
