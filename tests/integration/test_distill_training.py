"""Knowledge distillation in finetune, for real on the tiny tokenized project (`tiny`,
builders/cls_project.py) with a hand-written transfer set: every student family, random
and Hugging Face inits, teacher vectors, the gold-label fallbacks, and the transfer set's
one-line data errors. The loss and the transfer contract alone are tests/unit/test_distill.py."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from components.core.config import DistillConfig, parse_params
from components.core.errors import DataError
from components.data.splits import text_split, tokenized_split
from components.model import cls_data
from components.training import train_set
from components.training.fit_classifier import fit_classifier
from components.model.classifier import TextClassifier
from components.stages import finetune

from builders import cls_project as cp
from builders.teacher_model import tiny_bert


def _vectors(n, d=6, seed=0):  # as in tests/unit/test_distill.py
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


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
    val_ids, val_y = tokenized_split(tiny.tokenized, "val", 2)
    assert val_ds.seqs == val_ids and np.array_equal(val_ds.labels, val_y)
    # transfer texts go through the tokenizer the tokenize stage used: same ids for train texts
    train_ids, _ = tokenized_split(tiny.tokenized, "train", 2)
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
    res = fit_classifier(cfg, tiny, progress=False)
    assert res.info["init_kind"] == "random" and res.info["distill"]["used"]
    assert res.info["distill"]["loss"] == kind and res.steps == math.ceil(n / 8)
    assert math.isfinite(res.history[0]["train_loss"])


def test_distill_with_teacher_vectors(tiny):
    """vector_weight > 0 trains with the transfer set's teacher vectors; the exported model is
    the plain classifier (the map stays behind) and predicts like any other."""
    n = write_transfer(tiny)
    write_transfer(tiny, vectors=_vectors(n))
    cfg = _cfg(tiny, "cnn", init="random")
    cfg = replace(cfg, finetune=replace(cfg.finetune, distill=DistillConfig(enabled=True, vector_weight=1.0)))
    res = fit_classifier(cfg, tiny, progress=False)
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
        fit_classifier(cfg, tiny, progress=False)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("task", ["pair", "multi_label"])
def test_distill_with_another_task_trains_on_gold(tiny, task, capsys):
    """The shipped params distil; a pair or multi_label project with them still runs: the teacher
    stage writes its disabled outputs, and finetune says so in one line and uses the gold rows."""
    from tokenizers import Tokenizer

    write_transfer(tiny)  # would be read if distillation went ahead
    cfg = _cfg(tiny, "cnn", init="random")
    cfg = replace(cfg, ingest=replace(cfg.ingest, task=task))
    gold = tokenized_split(tiny.tokenized, "train", 2)
    ds, info = train_set.build(cfg, tiny, Tokenizer.from_file(str(tiny.tokenizer)), 2, 32, gold)
    assert isinstance(ds, cls_data.LabelledSeqs) and ds.seqs == gold[0]
    assert info["distill"]["enabled"] and not info["distill"]["used"]
    assert f"distillation is single_label only; training on the gold labels (ingest.task: {task})" \
        in capsys.readouterr().out


def test_distill_from_a_hugging_face_folder(tiny):
    n = write_transfer(tiny)
    tiny_bert(tiny.root / "hf_tiny")
    res = fit_classifier(_cfg(tiny, init="hf_tiny"), tiny, progress=False)
    assert res.info["init_kind"] == "hf" and res.info["train_rows"] == n
    assert res.classifier.encode(["a great film"])[0][0] == 2  # the HF tokenizer's [CLS]


def test_empty_transfer_set_trains_on_gold(tiny, capsys):
    write_transfer(tiny, [], [], [], np.zeros((0, 2), np.float32))
    res = fit_classifier(_cfg(tiny, "cnn", init="random"), tiny, progress=False)
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
    res = fit_classifier(cfg, tiny, progress=False)
    train_ds = made[0]
    assert isinstance(train_ds, cls_data.LabelledSeqs)
    added, dropped = res.info["augmented_rows"], res.info["augmented_dropped_held_out"]
    assert added + dropped == 128 and len(train_ds) == 64 + added == res.info["train_rows"]
    # each copy carries its source text's gold label (augment orders copies by source, then copy)
    texts, y = text_split(tiny.split("train"), 2)
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
        fit_classifier(_cfg(tiny, "cnn", init="random"), tiny, progress=False)


def test_mask_token_follows_the_tokenizer(tiny):
    from tokenizers import Tokenizer

    assert train_set.mask_token(Tokenizer.from_file(str(tiny.tokenizer))) == "[MASK]"
