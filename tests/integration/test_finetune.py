"""finetune: real Lightning runs on a tiny project, every family and starting point."""

from __future__ import annotations

import csv
import doctest
import json

import numpy as np
import pytest
import torch

from components.core.errors import ConfigError
from components.model import classifier, cls_data, lit_cls, optim
from components.model.classifier import TextClassifier
from components.stages import finetune

import cls_project as cp

TEXTS = ["a great fun film with john", "boring and awful , 2 hours", "the story was dull", "superb"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tokenized project shared by the module's tests (they write only models/ and reports/)."""
    return cp.make_project(tmp_path_factory.mktemp("proj"))


def _cfg(paths, family="transformer", **ft):
    return cp.tiny_params(family, tmp_uri=f"sqlite:///{paths.root}/mlflow.db", **ft)


def test_doctests():
    for mod in (classifier, cls_data, lit_cls, optim):
        assert doctest.testmod(mod).failed == 0, mod.__name__


def _check_roundtrip(folder, expect_labels):
    clf = TextClassifier.from_folder(folder)
    assert clf.labels == expect_labels
    p1, p2 = clf.predict_proba(TEXTS), clf.predict_proba(TEXTS, batch_size=3)
    assert p1.shape == (len(TEXTS), 2) and p1.dtype == np.float32
    assert np.allclose(p1.sum(1), 1, atol=1e-5)
    assert np.array_equal(p1, clf.predict_proba(TEXTS))  # deterministic
    assert np.allclose(p1, p2, atol=1e-5)  # batching does not change the answer
    # inference pads each batch to a multiple of classifier.PAD_MULTIPLE: same answer as no padding
    lengths = [len(ids) for ids in clf.encode(TEXTS)]
    assert any(n % classifier.PAD_MULTIPLE for n in lengths), lengths  # some rows get padding
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
    assert [r["epoch"] for r in rows] == ["1", "2"] and set(rows[0]) == set(finetune.CURVE_COLUMNS)
    assert report["best_val_f1"] == pytest.approx(max(float(r["val_f1"]) for r in rows), abs=1e-6)

    clf = _check_roundtrip(tiny.finetuned, cp.LABELS)
    # The exported weights are the best epoch's: recompute val macro-F1 from the folder.
    from torchmetrics.functional.classification import multiclass_f1_score

    texts, labels = cls_data.text_split(tiny.split("val"), 2)
    pred = torch.as_tensor(clf.predict_proba(texts).argmax(1))
    f1 = multiclass_f1_score(pred, torch.as_tensor(labels), num_classes=2, average="macro").item()
    assert f1 == pytest.approx(report["best_val_f1"], abs=1e-4)


@pytest.mark.parametrize("family", ["transformer", "lstm", "cnn"])
def test_random_init_with_options(tiny, family):
    cfg = _cfg(tiny, family, init="random", max_epochs=1, freeze_layers=1, layer_lr_decay=0.5,
               class_weights=True)
    res = finetune.fit_classifier(cfg, tiny, progress=False)
    assert res.info["init_kind"] == "random" and res.info["frozen_params"] > 0
    assert res.steps == 8 and len(res.history) == 1
    probs = res.classifier.predict_proba(TEXTS)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def test_frozen_groups_do_not_move(tiny):
    from components.model.io import load_encoder

    cfg = _cfg(tiny, max_epochs=1, freeze_layers=2, lr=1e-2)
    cp.save_pretrained(cfg, tiny)
    before = load_encoder(tiny.pretrained)
    net = finetune.train_classifier(cfg, tiny, progress=False).net
    after = net.backbone
    b_groups, a_groups = before.layer_groups(), after.layer_groups()
    for g in range(2):  # frozen: embeddings + block 0
        for (name, p0), p1 in zip(b_groups[g].named_parameters(), a_groups[g].parameters()):
            assert torch.equal(p0, p1), name
    moved = [not torch.equal(p0, p1) for p0, p1 in zip(b_groups[2].parameters(), a_groups[2].parameters())]
    assert any(moved)  # the top group trained


def test_layerwise_lr_decay_groups():
    from components.model.encoder import EncoderConfig, build_encoder

    enc = build_encoder(EncoderConfig("transformer", 50, 0, 16, 2, 2, 32, True, "learned", 16, "mean", (3,)))
    net = classifier.ClassifierNet(enc, 2)
    lit = lit_cls.LitClassifier(net, 2, lr=1.0, weight_decay=0.1, layer_lr_decay=0.5, warmup_fraction=0.0,
                                total_steps=10)
    groups = lit.configure_optimizers()["optimizer"].param_groups
    for g in groups:
        g["lr"] = g["initial_lr"]  # the peak lr, before the schedule's multiplier
    lrs = sorted({g["lr"] for g in groups})
    assert lrs == [0.125, 0.25, 0.5, 1.0]  # embeddings, block 0, block 1 + final norm, head
    n_total = sum(p.numel() for p in net.parameters())
    assert sum(p.numel() for g in groups for p in g["params"]) == n_total  # every param exactly once
    assert all(g["weight_decay"] == 0.0 for g in groups if all(p.ndim == 1 for p in g["params"]))
    head = [g for g in groups if g["lr"] == 1.0 and g["weight_decay"] > 0]
    assert [p.shape for p in head[0]["params"]] == [net.head.weight.shape]


def test_one_weight_decay_rule_for_pretrain_and_finetune():
    from components.model.encoder import EncoderConfig, MLMHead, build_encoder

    enc = build_encoder(EncoderConfig("transformer", 50, 0, 16, 2, 2, 32, True, "learned", 16, "mean", (3,)))
    embeddings = {id(p) for p in enc.layer_groups()[0].parameters()}
    pretrain = optim.param_groups([enc, MLMHead(enc)], 0.1)
    finetune = optim.param_groups([classifier.ClassifierNet(enc, 2)], 0.1, lr=1.0, layers=enc.layer_groups(),
                                  layer_decay=0.5)
    for groups in (pretrain, finetune):
        decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
        assert decayed and not decayed & embeddings
        assert all(p.ndim >= 2 for g in groups if g["weight_decay"] > 0 for p in g["params"])
    assert [g["weight_decay"] for g in pretrain] == [0.1, 0.0]  # the layout pretrain checkpoints store


def test_from_a_hugging_face_folder(tiny):
    cp.make_hf_folder(tiny.root / "hf_tiny")
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
    clf = finetune.train_classifier(cfg, tiny, progress=False)
    long = " ".join(["great"] * 200)
    assert len(clf.encode([long])[0]) == cfg.model.max_length
    assert clf.predict_proba([long]).shape == (1, 2)


def test_bad_options_are_one_line_errors(tiny):
    with pytest.raises(ConfigError, match="finetune.init.*no_such_folder"):
        finetune.fit_classifier(_cfg(tiny, init="no_such_folder"), tiny, progress=False)
    with pytest.raises(ConfigError, match="finetune.freeze_layers: expected at most 3"):
        finetune.fit_classifier(_cfg(tiny, init="random", freeze_layers=4), tiny, progress=False)
