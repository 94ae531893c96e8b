"""finetune's optimizer: layer-wise LR decay groups and the one weight-decay rule it shares with
pretraining; the doctests of the classifier, its data and its LightningModule. Real tiny
fine-tuning runs: tests/integration/test_finetune.py."""

from __future__ import annotations

import doctest

from components.model import batching, classifier, cls_data, lit_cls, optim, tokens


def test_doctests():
    for mod in (classifier, cls_data, lit_cls, optim, tokens, batching):
        assert doctest.testmod(mod).failed == 0, mod.__name__


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
