"""Knowledge distillation in finetune: the loss, the transfer set contract, real tiny runs."""

from __future__ import annotations

import doctest
import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from components.core.config import DistillConfig, parse_params
from components.core.errors import ConfigError, DataError
from components.data import transfer
from components.model import cls_data, lit_cls, train_set
from components.model.classifier import TextClassifier
from components.model.lit_cls import distill_loss, soft_term
from components.stages import finetune

import cls_project as cp


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


# ---------------------------------------------------------- tiny real runs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return cp.make_project(tmp_path_factory.mktemp("distill"))


def _cfg(paths, family="transformer", distill=True, **ft):
    ft.setdefault("max_epochs", 1)
    return cp.tiny_params(family, tmp_uri=f"sqlite:///{paths.root}/mlflow.db",
                          distill=DistillConfig(enabled=distill, alpha=0.5, temperature=2.0, vector_weight=0.0), **ft)


EXTRA = ["the film was fine", "a story", "great [MASK] film", "the movie was [MASK]", "dull acting"]
EXTRA_SOURCES = ["unlabeled", "unlabeled", "augmented", "augmented", "augmented"]


def write_transfer(paths, texts=None, sources=None, labels=None, probs=None, vectors=None):
    """A hand-written transfer set: every train text (teacher 0.8 on the gold class) + EXTRA;
    with `vectors` [N, D] also the teacher-vector column."""
    if texts is None:
        train = pd.read_parquet(paths.split("train"))
        texts = train["text"].tolist() + EXTRA
        sources = ["train"] * len(train) + EXTRA_SOURCES
        labels = train["label"].tolist() + [None] * len(EXTRA)
        gold = np.eye(2, dtype=np.float32)[train["label"].to_numpy()]  # [N, 2]
        probs = np.concatenate([0.2 + 0.6 * gold, np.full((len(EXTRA), 2), 0.5, np.float32)])
        probs[len(train) + 2] = [0.1, 0.9]
    paths.teacher_transfer.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"text": texts, "probabilities": [list(map(float, p)) for p in probs], "source": sources,
                       "label": pd.array(labels, dtype="Int64")})
    if vectors is not None:
        df["vector"] = [list(map(float, v)) for v in vectors]
    df.to_parquet(paths.teacher_transfer)
    return len(texts)


@pytest.mark.parametrize("family", ["transformer", "lstm", "cnn"])
def test_distill_from_pretrained_every_family(tiny, family, monkeypatch):
    n = write_transfer(tiny)
    cfg = _cfg(tiny, family)
    cp.save_pretrained(cfg, tiny)
    made = []
    real_loader = cls_data.loader
    monkeypatch.setattr(cls_data, "loader", lambda data, *a: made.append(data) or real_loader(data, *a))
    summary = finetune.run(cfg, tiny)
    assert summary["init"] == "pretrained"

    train_ds, val_ds = made
    assert isinstance(train_ds, cls_data.SoftSeqs) and len(train_ds) == n
    assert int((train_ds.labels >= 0).sum()) == 64  # gold only on the train rows
    # validation is the gold val split only, never a transfer row
    assert isinstance(val_ds, cls_data.LabelledSeqs)
    val_ids, val_y = cls_data.tokenized_split(tiny.tokenized, "val", 2)
    assert val_ds.seqs == val_ids and np.array_equal(val_ds.labels, val_y)
    # transfer texts go through the tokenizer the tokenize stage used: same ids for train texts
    train_ids, _ = cls_data.tokenized_split(tiny.tokenized, "train", 2)
    assert train_ds.seqs[:64] == train_ids

    report = json.loads(tiny.report("finetune").read_text())
    assert report["distill"] == {"enabled": True, "used": True, "alpha": 0.5, "temperature": 2.0, "loss": "kl",
                                 "vector_weight": 0.0, "vector_dim": None,
                                 "transfer_rows": {"train": 64, "unlabeled": 2, "augmented": 3}}
    assert report["train_rows"] == n and report["steps"] == math.ceil(n / 8)
    clf = TextClassifier.from_folder(tiny.finetuned)
    assert clf.meta["distill"] == report["distill"]  # the model folder says how it was trained
    probs = clf.predict_proba(EXTRA)
    assert probs.shape == (len(EXTRA), 2) and np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_distill_from_random_init(tiny, kind):
    n = write_transfer(tiny)
    cfg = _cfg(tiny, "cnn", init="random", class_weights=True)
    cfg = replace(cfg, finetune=replace(cfg.finetune, distill=DistillConfig(enabled=True, loss=kind, alpha=0.3, vector_weight=0.0)))
    res = finetune.fit_classifier(cfg, tiny, progress=False)
    assert res.info["init_kind"] == "random" and res.info["distill"]["used"]
    assert res.info["distill"]["loss"] == kind and res.steps == math.ceil(n / 8)
    assert math.isfinite(res.history[0]["train_loss"])


def _vectors(n, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_distill_with_teacher_vectors(tiny):
    """vector_weight > 0 trains with the transfer set's teacher vectors; the exported model is
    the plain classifier (the map stays behind) and predicts like any other."""
    n = write_transfer(tiny)
    write_transfer(tiny, vectors=_vectors(n))
    cfg = _cfg(tiny, "cnn", init="random")
    cfg = replace(cfg, finetune=replace(cfg.finetune, distill=DistillConfig(enabled=True, vector_weight=1.0)))
    res = finetune.fit_classifier(cfg, tiny, progress=False)
    assert res.info["distill"]["used"] and res.info["distill"]["vector_dim"] == 6
    assert res.info["distill"]["vector_weight"] == 1.0
    assert math.isfinite(res.history[0]["train_loss"])
    res.classifier.save(tiny.root / "vec_model")
    probs = TextClassifier.from_folder(tiny.root / "vec_model").predict_proba(EXTRA)
    assert probs.shape == (len(EXTRA), 2)


def test_vector_weight_without_teacher_vectors_is_a_data_error(tiny):
    write_transfer(tiny)  # no vector column
    cfg = _cfg(tiny, "cnn", init="random")
    cfg = replace(cfg, finetune=replace(cfg.finetune, distill=DistillConfig(enabled=True, vector_weight=0.5)))
    with pytest.raises(DataError, match="vector_weight is 0.5 but the transfer set has no teacher vectors") as e:
        finetune.fit_classifier(cfg, tiny, progress=False)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("task", ["pair", "multi_label"])
def test_distill_with_another_task_trains_on_gold(tiny, task, capsys):
    """The shipped params distil; a pair or multi_label project with them still runs: the teacher
    stage writes its disabled outputs, and finetune says so in one line and uses the gold rows."""
    from tokenizers import Tokenizer

    write_transfer(tiny)  # would be read if distillation went ahead
    cfg = _cfg(tiny, "cnn", init="random")
    cfg = replace(cfg, ingest=replace(cfg.ingest, task=task))
    gold = cls_data.tokenized_split(tiny.tokenized, "train", 2)
    ds, info = train_set.build(cfg, tiny, Tokenizer.from_file(str(tiny.tokenizer)), 2, 32, gold)
    assert isinstance(ds, cls_data.LabelledSeqs) and ds.seqs == gold[0]
    assert info["distill"]["enabled"] and not info["distill"]["used"]
    assert f"distillation is single_label only; training on the gold labels (ingest.task: {task})" \
        in capsys.readouterr().out


def test_distill_from_a_hugging_face_folder(tiny):
    n = write_transfer(tiny)
    cp.make_hf_folder(tiny.root / "hf_tiny")
    res = finetune.fit_classifier(_cfg(tiny, init="hf_tiny"), tiny, progress=False)
    assert res.info["init_kind"] == "hf" and res.info["train_rows"] == n
    assert res.classifier.encode(["a great film"])[0][0] == 2  # the HF tokenizer's [CLS]


def test_empty_transfer_set_trains_on_gold(tiny, capsys):
    write_transfer(tiny, [], [], [], np.zeros((0, 2), np.float32))
    res = finetune.fit_classifier(_cfg(tiny, "cnn", init="random"), tiny, progress=False)
    assert res.info["distill"]["used"] is False and res.info["train_rows"] == 64
    assert res.info["distill"]["transfer_rows"] == {"train": 0, "unlabeled": 0, "augmented": 0}
    assert "has 0 rows" in capsys.readouterr().out


def test_augment_copies_without_a_teacher(tiny, monkeypatch):
    made = []
    real_loader = cls_data.loader
    monkeypatch.setattr(cls_data, "loader", lambda data, *a: made.append(data) or real_loader(data, *a))
    tiny.teacher_transfer.unlink(missing_ok=True)  # without a teacher the file is never read
    raw = {"teacher": {"enabled": False}, "finetune": {"distill": {"enabled": False}, "augment_copies": 2}}
    assert parse_params(raw).finetune.augment_copies == 2
    cfg = _cfg(tiny, "cnn", distill=False, init="random", augment_copies=2)
    res = finetune.fit_classifier(cfg, tiny, progress=False)
    train_ds = made[0]
    assert isinstance(train_ds, cls_data.LabelledSeqs)
    added, dropped = res.info["augmented_rows"], res.info["augmented_dropped_held_out"]
    assert added + dropped == 128 and len(train_ds) == 64 + added == res.info["train_rows"]
    # each copy carries its source text's gold label (augment orders copies by source, then copy)
    texts, y = cls_data.text_split(tiny.split("train"), 2)
    if dropped == 0:
        assert np.array_equal(train_ds.labels[64:], np.repeat(y, 2))
    assert res.steps == math.ceil(len(train_ds) / 8)


def _nothing_written(paths):
    return not paths.finetuned.exists() and not paths.report("finetune").exists()


def _clear(paths):
    import shutil

    shutil.rmtree(paths.finetuned, ignore_errors=True)
    paths.report("finetune").unlink(missing_ok=True)


@pytest.mark.parametrize("split", ["test", "val"])
def test_transfer_set_with_a_held_out_text_is_a_data_error(tiny, split):
    held = pd.read_parquet(tiny.split(split))["text"].tolist()[3]
    write_transfer(tiny, ["a fine film", held], ["unlabeled", "augmented"], [None, None],
                   np.array([[0.3, 0.7], [0.6, 0.4]], np.float32))
    _clear(tiny)
    with pytest.raises(DataError, match=f"data/teacher/transfer.parquet: row 1 is a {split} text") as e:
        finetune.run(_cfg(tiny, "cnn", init="random"), tiny)
    assert "\n" not in str(e.value) and _nothing_written(tiny)


def test_class_count_mismatch_names_both_counts(tiny):
    write_transfer(tiny, ["a fine film"], ["unlabeled"], [None], np.array([[0.2, 0.3, 0.5]], np.float32))
    _clear(tiny)
    with pytest.raises(DataError, match="has 3 class probabilities .* labels.json has 2 classes"):
        finetune.run(_cfg(tiny, "cnn", init="random"), tiny)
    assert _nothing_written(tiny)


def test_missing_transfer_set_is_a_data_error(tiny):
    tiny.teacher_transfer.unlink(missing_ok=True)
    with pytest.raises(DataError, match="transfer.parquet: not found .run the teacher stage first"):
        finetune.fit_classifier(_cfg(tiny, "cnn", init="random"), tiny, progress=False)


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


def test_mask_token_follows_the_tokenizer(tiny):
    from tokenizers import Tokenizer

    assert train_set.mask_token(Tokenizer.from_file(str(tiny.tokenizer))) == "[MASK]"
