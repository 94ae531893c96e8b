"""Classifier fine-tuning: encoder + classification head, trained on train, early-stopped on val.

    res = fit_classifier(cfg, paths)               # from finetune.init (training/start.py)
    res.classifier.predict_proba(["a fine film"])  # the best epoch by val macro-F1
    res.history                                    # one row per epoch (the finetune curve)

Used by the finetune stage, the teacher stage (its checkpoint, under a finetune section built
from teacher.*) and evaluate's random-init baseline (same budget).

Training rows (training/train_set.py): with finetune.distill.enabled, the teacher's transfer
set (data/teacher/transfer.parquet) with soft targets, loss lit_cls.distill_loss; otherwise
the gold train split plus finetune.augment_copies augmented copies, plain CE. Validation is
always the gold val split.

multi_label (data/prepared/labels.json "task"): one logit per label, BCE-with-logits,
checkpoint selection on val macro-F1 at threshold 0.5, then one threshold per label tuned on
val (model/thresholds.py), saved in the model folder's config.json.

pair: a cross-encoder; the ids are "[CLS] a [SEP] b [SEP]", truncated longest-first, and an
encoderflow transformer gets a zero-initialised segment embedding (encoder.add_segments);
softmax + CE as single_label.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import pytorch_lightning as pl

from components.core.config import Params
from components.core.errors import ConfigError, DataError
from components.core.paths import Paths
from components.model import cls_data
from components.model.precision import resolve_precision
from components.training import train_set
from components.training.start import gold_splits, start
from components.training.trainer import build_trainer, fit, restore_best

CURVE_COLUMNS = ["epoch", "step", "train_loss", "val_f1", "val_acc"]


@dataclass
class FitResult:
    classifier: object  # TextClassifier
    best_val_f1: float | None
    best_val_acc: float | None
    epochs: int
    steps: int
    wall_s: float
    precision: str
    history: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)


class Curve(pl.Callback):
    """One row per epoch into `history`: epoch, global step, mean train loss, val F1 / accuracy."""

    def __init__(self, history: list[dict]):
        self.history = history

    def on_train_epoch_end(self, trainer, module):
        m = trainer.callback_metrics
        get = lambda k: float(m[k]) if k in m else ""  # noqa: E731
        self.history.append({"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                             "train_loss": get("train_loss_epoch"), "val_f1": get("val_f1"),
                             "val_acc": get("val_acc")})


def curve_csv(history: list[dict]) -> str:
    """reports/finetune_curve.csv's text: CURVE_COLUMNS, floats rounded to 6 decimals."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def fit_classifier(cfg: Params, paths: Paths, init: str | None = None, *, run_id: str | None = None,
                   tag: str = "finetune", progress: bool = True, min_steps: int = 0) -> FitResult:
    """Train a classifier from `init` (default: finetune.init) and return the best one by val macro-F1.

    Early stopping does not stop before `min_steps` optimizer steps (the teacher's teacher.min_steps).

    Logs to the MLflow run `run_id` when given (through Lightning's MLFlowLogger; metric prefix
    `tag`, none for "finetune"). Checkpoints go to checkpoints/<tag>/ (cleared first).
    """
    from components.data.labels import read_labels, read_task
    from components.model.classifier import ClassifierNet, TextClassifier
    from components.model.lit_cls import LitClassifier, freeze_groups

    ft = cfg.finetune
    init = init or ft.init
    if cfg.model.family == "static" and init == "pretrained":  # a static student is not MLM-pretrained
        init = "model2vec"
    labels = read_labels(paths.labels)
    task = read_task(paths.labels)
    multi = task == "multi_label"
    pl.seed_everything(cfg.project.seed, workers=True, verbose=False)
    backbone, tok, pad_id, max_len, kind = start(cfg, paths, init)
    gold_train, (va_seqs, va_y) = gold_splits(paths, kind, tok, len(labels))
    segments = False
    if task == "pair":  # a cross-encoder: "[CLS] a [SEP] b [SEP]", truncated longest-first
        from components.model.encoder import add_segments
        from components.model.tokens import sep_token_id, truncate_pair

        sep = sep_token_id(tok)
        gold_train = ([truncate_pair(s_, max_len, sep) for s_ in gold_train[0]], gold_train[1])
        va_seqs = [truncate_pair(s_, max_len, sep) for s_ in va_seqs]
        segments = kind not in ("hf", "static") and add_segments(backbone, sep)
    if not gold_train[0]:
        raise DataError(f"{paths.tokenized}: the train split is empty; nothing to fine-tune on")
    train_ds, rows_info = train_set.build(cfg, paths, tok, len(labels), max_len, gold_train)
    # [N_gold] gold labels (-1: a transfer row without one); multi_label: [N, C] multi-hot
    tr_y = train_ds.labels if multi else train_ds.labels[train_ds.labels >= 0]
    vocab = tok.get_vocab_size()
    top = max((max(s) for s in train_ds.seqs if s), default=0)
    if top >= vocab:
        raise DataError(f"{paths.tokenized}: token id {top} >= vocab size {vocab} of the {kind} "
                        "tokenizer (re-run tokenize and pretrain)")

    net = ClassifierNet(backbone, len(labels), ft.dropout).train()  # loaders return eval-mode modules;
    # Lightning keeps each module's mode, so dropout would silently stay off otherwise.
    groups = backbone.layer_groups()
    if ft.freeze_layers > len(groups):
        raise ConfigError(f"finetune.freeze_layers: expected at most {len(groups)} (layer groups "
                          f"of this encoder), got {ft.freeze_layers}")
    frozen = freeze_groups(groups, ft.freeze_layers)
    steps_per_epoch = math.ceil(len(train_ds) / ft.batch_size)
    total = steps_per_epoch * ft.max_epochs
    weights = None
    if ft.class_weights:
        weights = cls_data.pos_weights(tr_y) if multi else cls_data.class_weights(tr_y, len(labels))
    module = LitClassifier(net, len(labels), lr=ft.lr, weight_decay=ft.weight_decay,
                           layer_lr_decay=ft.layer_lr_decay, warmup_fraction=ft.warmup_fraction,
                           total_steps=total, class_weights=weights,
                           distill={"alpha": ft.distill.alpha, "temperature": ft.distill.temperature,
                                    "loss": ft.distill.loss, "vector_weight": ft.distill.vector_weight,
                                    "vector_dim": rows_info["distill"].get("vector_dim")}
                           if rows_info["distill"]["used"] else None,
                           multi_label=multi)
    train_dl = cls_data.loader(train_ds, ft.batch_size, pad_id, True, cfg.project.seed)
    has_val = len(va_seqs) > 0
    val_dl = cls_data.loader(cls_data.LabelledSeqs(va_seqs, va_y, max_len), ft.batch_size, pad_id, False, 0) \
        if has_val else None

    history: list[dict] = []
    trainer, ckpt = build_trainer(cfg, paths, ft, tag=tag, monitor="val_f1", has_val=has_val,
                                  steps_per_epoch=steps_per_epoch, run_id=run_id,
                                  prefix="" if tag == "finetune" else tag, progress=progress,
                                  min_steps=min_steps, callbacks=[Curve(history)])
    wall = fit(trainer, module, train_dl, val_dl, "fine-tuning")

    restored = ckpt is not None and bool(ckpt.best_model_path)
    best_f1 = restore_best(module, ckpt)
    best_acc = None
    if restored:
        best = max((h for h in history if h["val_f1"] != ""), key=lambda h: h["val_f1"], default=None)
        best_acc = best["val_acc"] if best else None
    net = module.net.cpu().float().eval()
    for p in net.parameters():
        p.requires_grad_(True)  # export plain weights; freezing was a training choice
    info = {"init": init, "init_kind": kind, "frozen_params": frozen,
            "trainable_params": sum(p.numel() for p in net.parameters()) - frozen, **rows_info}
    meta = {"init": init, "init_kind": kind, "distill": rows_info["distill"]}
    if task == "pair":
        meta["task"] = "pair"
        info.update(task="pair", segment_embedding=segments)
    if multi:  # per-label thresholds, tuned on val with the selected weights
        from components.model.thresholds import tune_thresholds

        probs = _sigmoid_probs(net, va_seqs, max_len, pad_id, ft.batch_size)
        thresholds, val_f1 = tune_thresholds(probs, va_y)
        meta.update(task="multi_label", thresholds=thresholds)
        info.update(thresholds=dict(zip(labels, thresholds)), val_f1_tuned=dict(zip(labels, val_f1)))
    clf = TextClassifier(net, tok, labels, max_len, pad_id, meta=meta)
    return FitResult(clf, best_f1, best_acc, trainer.current_epoch, trainer.global_step, wall,
                     resolve_precision(ft.precision, ft.accelerator), history, info)


def _sigmoid_probs(net, seqs: list[list[int]], max_len: int, pad_id: int, batch_size: int):
    """Per-label sigmoid probabilities [N, C] of `net` (eval mode) on token-id rows."""
    import numpy as np
    import torch

    from components.model.batching import pad_batch
    from components.model.tokens import truncate

    out = []
    with torch.inference_mode():
        for i in range(0, len(seqs), batch_size):
            ids, mask = pad_batch([truncate(s, max_len) for s in seqs[i:i + batch_size]], pad_id)
            out.append(torch.sigmoid(net(ids, mask).float()).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.head.out_features), dtype=np.float32)


def train_classifier(cfg: Params, paths: Paths, init: str | None = None, **kwargs):
    """`fit_classifier(...).classifier`: a TextClassifier trained from `init`."""
    return fit_classifier(cfg, paths, init, **kwargs).classifier
