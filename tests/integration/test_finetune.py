"""finetune: real Lightning runs on a tiny project, every family and starting point."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from components.core.errors import ConfigError
from components.data.splits import text_split
from components.model import tokens
from components.model.classifier import TextClassifier
from components.stages import finetune
from components.training.fit_classifier import CURVE_COLUMNS, fit_classifier, train_classifier

from builders import cls_project as cp
from builders.teacher_model import tiny_bert

TEXTS = ["a great fun film with john", "boring and awful , 2 hours", "the story was dull", "superb"]


def _cfg(paths, family="transformer", **ft):
    return cp.tiny_params(family, tmp_uri=f"sqlite:///{paths.root}/mlflow.db", **ft)


def _check_roundtrip(folder, expect_labels):
    clf = TextClassifier.from_folder(folder)
    assert clf.labels == expect_labels
    p1, p2 = clf.predict_proba(TEXTS), clf.predict_proba(TEXTS, batch_size=3)
    assert p1.shape == (len(TEXTS), 2) and p1.dtype == np.float32
    assert np.allclose(p1.sum(1), 1, atol=1e-5)
    assert np.array_equal(p1, clf.predict_proba(TEXTS))  # deterministic
    assert np.allclose(p1, p2, atol=1e-5)  # batching does not change the answer
    # inference pads each batch to a multiple of tokens.PAD_MULTIPLE: same answer as no padding
    lengths = [len(ids) for ids in clf.encode(TEXTS)]
    assert any(n % tokens.PAD_MULTIPLE for n in lengths), lengths  # some rows get padding
    for text, row in zip(TEXTS, p1):
        ids = torch.tensor([clf.encode([text])[0]])
        with torch.inference_mode():
            alone = torch.softmax(clf.net.eval()(ids, torch.ones_like(ids, dtype=torch.bool)), -1)
        assert np.allclose(alone[0].numpy(), row, atol=1e-5)
    assert clf.embed(TEXTS).shape == (len(TEXTS), clf.net.backbone.output_size)
    assert clf.predict_proba([]).shape == (0, 2)
    return clf


@pytest.mark.parametrize("family", ["transformer", "lstm", "cnn"])
def test_stage_from_pretrained_exports_the_best_checkpoint(tiny, family):
    cfg = _cfg(tiny, family)
    cp.save_pretrained(cfg, tiny)
    summary = finetune.run(cfg, tiny)
    assert summary["init"] == "pretrained"

    files = {p.name for p in tiny.finetuned.iterdir()}
    assert files == {"model.safetensors", "config.json", "tokenizer.json"}
    meta = json.loads((tiny.finetuned / "config.json").read_text())
    assert meta["backbone"]["encoder"]["family"] == family and meta["init"] == "pretrained"
    report = json.loads(tiny.report("finetune").read_text())
    assert report["epochs"] == 2 and report["steps"] == 16  # 64 rows / batch 8, 2 epochs
    assert report["mlflow_run_id"]
    with open(tiny.reports / "finetune_curve.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"] and set(rows[0]) == set(CURVE_COLUMNS)
    assert report["best_val_f1"] == pytest.approx(max(float(r["val_f1"]) for r in rows), abs=1e-6)

    clf = _check_roundtrip(tiny.finetuned, cp.LABELS)
    # The exported weights are the best epoch's: recompute val macro-F1 from the folder.
    from torchmetrics.functional.classification import multiclass_f1_score

    texts, labels = text_split(tiny.split("val"), 2)
    pred = torch.as_tensor(clf.predict_proba(texts).argmax(1))
    f1 = multiclass_f1_score(pred, torch.as_tensor(labels), num_classes=2, average="macro").item()
    assert f1 == pytest.approx(report["best_val_f1"], abs=1e-4)


@pytest.mark.parametrize("family", ["transformer", "lstm", "cnn"])
def test_random_init_with_options(tiny, family):
    cfg = _cfg(tiny, family, init="random", max_epochs=1, freeze_layers=1, layer_lr_decay=0.5,
               class_weights=True)
    res = fit_classifier(cfg, tiny, progress=False)
    assert res.info["init_kind"] == "random" and res.info["frozen_params"] > 0
    assert res.steps == 8 and len(res.history) == 1
    probs = res.classifier.predict_proba(TEXTS)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def test_frozen_groups_do_not_move(tiny):
    from components.model.io import load_encoder

    cfg = _cfg(tiny, max_epochs=1, freeze_layers=2, lr=1e-2)
    cp.save_pretrained(cfg, tiny)
    before = load_encoder(tiny.pretrained)
    net = train_classifier(cfg, tiny, progress=False).net
    after = net.backbone
    b_groups, a_groups = before.layer_groups(), after.layer_groups()
    for g in range(2):  # frozen: embeddings + block 0
        for (name, p0), p1 in zip(b_groups[g].named_parameters(), a_groups[g].parameters()):
            assert torch.equal(p0, p1), name
    moved = [not torch.equal(p0, p1) for p0, p1 in zip(b_groups[2].parameters(), a_groups[2].parameters())]
    assert any(moved)  # the top group trained


def test_from_a_hugging_face_folder(tiny):
    tiny_bert(tiny.root / "hf_tiny")
    cfg = _cfg(tiny, init="hf_tiny", max_epochs=1, layer_lr_decay=0.8, freeze_layers=1)
    finetune.run(cfg, tiny)
    meta = json.loads((tiny.finetuned / "config.json").read_text())
    assert meta["backbone"]["kind"] == "hf" and meta["backbone"]["config"]["model_type"] == "bert"
    assert meta["init_kind"] == "hf" and meta["pad_id"] == 0
    clf = _check_roundtrip(tiny.finetuned, cp.LABELS)
    ids = clf.encode(["a great film"])[0]
    assert ids[0] == 2 and ids[-1] == 3  # the HF tokenizer's [CLS] ... [SEP], not ours


def test_truncation_to_max_length(tiny):
    cfg = _cfg(tiny, init="random", max_epochs=1)
    clf = train_classifier(cfg, tiny, progress=False)
    long = " ".join(["great"] * 200)
    assert len(clf.encode([long])[0]) == cfg.model.max_length
    assert clf.predict_proba([long]).shape == (1, 2)


def test_bad_options_are_one_line_errors(tiny):
    with pytest.raises(ConfigError, match="finetune.init.*no_such_folder"):
        fit_classifier(_cfg(tiny, init="no_such_folder"), tiny, progress=False)
    with pytest.raises(ConfigError, match="finetune.freeze_layers: expected at most 3"):
        fit_classifier(_cfg(tiny, init="random", freeze_layers=4), tiny, progress=False)
