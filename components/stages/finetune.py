"""finetune stage: encoder + classification head, trained on labelled train, early-stopped on val.

Starting point (`finetune.init`):
- "pretrained": models/pretrained (our encoder, MLM-pretrained), data/tokenized ids;
- "random": the same architecture from params.model, random weights (the ablation);
- a path to a local Hugging Face checkpoint folder (AutoModel + its fast tokenizer);
  train/val text from data/prepared is tokenized with that tokenizer.

Training rows (model/train_set.py): with finetune.distill.enabled, the teacher's
transfer set (data/teacher/transfer.parquet) with soft targets, loss
lit_cls.distill_loss; otherwise the gold train split plus finetune.augment_copies
augmented copies, plain CE. Validation is always the gold val split.

multi_label (data/prepared/labels.json "task"): one logit per label, BCE-with-logits,
checkpoint selection on val macro-F1 at threshold 0.5, then one threshold per label
tuned on val (model/thresholds.py), saved in the model folder's config.json.

pair: a cross-encoder; the ids are "[CLS] a [SEP] b [SEP]", truncated longest-first, and an
encoderflow transformer gets a zero-initialised segment embedding (encoder.add_segments);
softmax + CE as single_label. With finetune.bi_encoder.enabled, a bi-encoder is trained
next, from the same starting point, on the positive pairs (model/lit_biencoder.py), and
saved with the classifier (models/finetuned/biencoder/).

`fit_classifier` is the reusable training function (evaluate trains its
random-init baseline with it, same budget); `run` is the stage: it trains,
exports the best checkpoint (by val macro-F1) to models/finetuned/ and writes
reports/finetune.json + reports/finetune_curve.csv.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from components.core.config import Params
from components.core.errors import ConfigError, DataError, EncoderflowError
from components.core.paths import Paths
from components.stages import table

STAGE = "finetune"
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


def _check_same_tokenizer(paths: Paths, pretrained_tok) -> None:
    """data/tokenized holds ids of models/tokenizer; the pretrained encoder learned the ids of
    its own copy. After a re-tokenize without re-pretraining they differ, and a smaller new
    vocab would even train silently on the wrong embeddings: refuse."""
    from tokenizers import Tokenizer

    if not paths.tokenizer.is_file():
        return
    rel = lambda p: p.relative_to(paths.root).as_posix() if paths.root in p.parents else str(p)  # noqa: E731
    try:
        current = Tokenizer.from_file(str(paths.tokenizer))
    except Exception as e:  # tokenizers raises plain Exception subclasses
        raise DataError(f"{rel(paths.tokenizer)}: unreadable tokenizer ({e})", stage="finetune") from None
    if current.get_vocab() != pretrained_tok.get_vocab():
        raise DataError(f"{rel(paths.tokenizer)}: does not match the tokenizer of "
                        f"{rel(paths.pretrained)} (vocab size {current.get_vocab_size()} vs "
                        f"{pretrained_tok.get_vocab_size()}); re-run pretrain after tokenize",
                        stage="finetune")


def _start(cfg: Params, paths: Paths, init: str):
    """(backbone, tokenizers.Tokenizer, pad_id, max_length, kind) for a starting point."""
    from tokenizers import Tokenizer

    ft = cfg.finetune
    if init == "pretrained":
        from components.model.io import TOKENIZER, load_encoder

        enc = load_encoder(paths.pretrained, dropout=ft.dropout)
        tok = Tokenizer.from_file(str(paths.pretrained / TOKENIZER))
        _check_same_tokenizer(paths, tok)
        return enc, tok, enc.cfg.pad_id, enc.cfg.max_length, "pretrained"
    if init == "model2vec":  # a static student: model2vec's embeddings of the teacher checkpoint
        from components.model.teacher_base import static_encoder

        enc, tok = static_encoder(paths.model2vec, cfg.model.ffn_size, ft.dropout, cfg.model.max_length)
        return enc, tok, enc.cfg.pad_id, enc.cfg.max_length, "static"
    if init == "random":
        from components.model.encoder import EncoderConfig, build_encoder
        from components.model.io import tokenizer_vocab_size

        if not paths.tokenizer.is_file():
            raise DataError(f"{paths.tokenizer}: not found (run tokenize first)")
        tok = Tokenizer.from_file(str(paths.tokenizer))
        pad = tok.token_to_id("[PAD]")
        enc_cfg = EncoderConfig.from_params(cfg.model, tokenizer_vocab_size(paths.tokenizer),
                                            pad_id=0 if pad is None else pad, dropout=ft.dropout)
        return build_encoder(enc_cfg), tok, enc_cfg.pad_id, enc_cfg.max_length, "random"
    folder = Path(init).expanduser()
    folder = folder if folder.is_absolute() else paths.root / folder
    if not folder.is_dir():
        raise ConfigError(f"finetune.init: expected pretrained | random | a local Hugging Face "
                          f"checkpoint folder, got {init!r} (folder not found)")
    from components.model.hf_backbone import HFBackbone

    backbone, tok = HFBackbone.from_folder(folder, pooling=cfg.model.pooling)
    tok.no_padding()  # some shipped tokenizer.json files pad to a fixed length; we pad per batch
    max_len = min(cfg.model.max_length, backbone.max_positions)
    return backbone, tok, backbone.pad_id, max_len, "hf"


def _data(cfg: Params, paths: Paths, kind: str, tok, n_classes: int):
    """Gold (train, val) as (ids per row, labels [N]): data/tokenized ids, or HF-tokenized prepared text."""
    from components.model.cls_data import encode_texts, text_split, tokenized_split

    out = []
    for split in ("train", "val"):
        if kind in ("hf", "static"):  # tokenized here with the starting point's own tokenizer
            texts, labels = text_split(paths.split(split), n_classes)
            seqs = encode_texts(tok, texts)
        else:
            seqs, labels = tokenized_split(paths.tokenized, split, n_classes)
        out.append((seqs, labels))
    return out


def _curve_callback(history: list[dict]):
    import pytorch_lightning as pl

    class Curve(pl.Callback):
        """One row per epoch: epoch, global step, mean train loss, val F1 / accuracy."""

        def on_train_epoch_end(self, trainer, module):
            m = trainer.callback_metrics
            get = lambda k: float(m[k]) if k in m else ""  # noqa: E731
            history.append({"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                            "train_loss": get("train_loss_epoch"), "val_f1": get("val_f1"),
                            "val_acc": get("val_acc")})

    return Curve()


def fit_classifier(cfg: Params, paths: Paths, init: str | None = None, *, run_id: str | None = None,
                   tag: str = "finetune", progress: bool = True, min_steps: int = 0) -> FitResult:
    """Train a classifier from `init` (default: finetune.init) and return the best one by val macro-F1.

    Early stopping does not stop before `min_steps` optimizer steps (the teacher's teacher.min_steps).

    Logs to the MLflow run `run_id` when given (through Lightning's MLFlowLogger).
    Checkpoints go to checkpoints/<tag>/ (cleared first).
    """
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from components.data.labels import read_labels, read_task
    from components.model import train_set
    from components.model.classifier import ClassifierNet, TextClassifier
    from components.model.cls_data import LabelledSeqs, class_weights, loader, pos_weights
    from components.model.lit_cls import LitClassifier, freeze_groups
    from components.model.precision import resolve_precision

    ft = cfg.finetune
    init = init or ft.init
    if cfg.model.family == "static" and init == "pretrained":  # a static student is not MLM-pretrained
        init = "model2vec"
    labels = read_labels(paths.labels)
    task = read_task(paths.labels)
    multi = task == "multi_label"
    pl.seed_everything(cfg.project.seed, workers=True, verbose=False)
    backbone, tok, pad_id, max_len, kind = _start(cfg, paths, init)
    gold_train, (va_seqs, va_y) = _data(cfg, paths, kind, tok, len(labels))
    segments = False
    if task == "pair":  # a cross-encoder: "[CLS] a [SEP] b [SEP]", truncated longest-first
        from components.model.classifier import sep_token_id, truncate_pair
        from components.model.encoder import add_segments

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
        weights = pos_weights(tr_y) if multi else class_weights(tr_y, len(labels))
    module = LitClassifier(net, len(labels), lr=ft.lr, weight_decay=ft.weight_decay,
                           layer_lr_decay=ft.layer_lr_decay, warmup_fraction=ft.warmup_fraction,
                           total_steps=total, class_weights=weights,
                           distill={"alpha": ft.distill.alpha, "temperature": ft.distill.temperature,
                                    "loss": ft.distill.loss, "vector_weight": ft.distill.vector_weight,
                                    "vector_dim": rows_info["distill"].get("vector_dim")}
                           if rows_info["distill"]["used"] else None,
                           multi_label=multi)
    train_dl = loader(train_ds, ft.batch_size, pad_id, True, cfg.project.seed)
    has_val = len(va_seqs) > 0
    val_dl = loader(LabelledSeqs(va_seqs, va_y, max_len), ft.batch_size, pad_id, False, 0) if has_val else None

    ckpt_dir = paths.checkpoints / tag
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    history: list[dict] = []
    callbacks = [_curve_callback(history)]
    ckpt = None
    if has_val:  # without val rows there is nothing to select on: keep the last epoch
        ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_f1", mode="max",
                               save_top_k=1, save_weights_only=True, enable_version_counter=False)
        callbacks += [ckpt, EarlyStopping(monitor="val_f1", mode="max", patience=ft.patience)]
    logger = False
    if run_id:
        from pytorch_lightning.loggers import MLFlowLogger

        from components.core.tracking import tracking_uri

        logger = MLFlowLogger(experiment_name=cfg.project.experiment, run_id=run_id,
                              tracking_uri=tracking_uri(cfg.project, paths.root),
                              prefix="" if tag == "finetune" else tag)
    precision = resolve_precision(ft.precision, ft.accelerator)
    trainer = pl.Trainer(max_epochs=ft.max_epochs, min_steps=min_steps or None, accelerator=ft.accelerator,
                         devices=1, precision=precision, logger=logger, callbacks=callbacks,
                         gradient_clip_val=ft.grad_clip or None,
                         num_sanity_val_steps=0, enable_progress_bar=progress,
                         enable_model_summary=False, default_root_dir=str(ckpt_dir),
                         log_every_n_steps=max(1, min(50, steps_per_epoch)))
    t0 = time.perf_counter()
    trainer.fit(module, train_dl, val_dl)
    wall = time.perf_counter() - t0
    if trainer.interrupted:  # Lightning swallows Ctrl-C; never export a half-trained model
        raise EncoderflowError("fine-tuning was interrupted; nothing was exported", stage="finetune")

    best_f1 = best_acc = None
    if ckpt is not None and ckpt.best_model_path:
        state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        best = max((h for h in history if h["val_f1"] != ""), key=lambda h: h["val_f1"], default=None)
        best_f1 = float(ckpt.best_model_score) if ckpt.best_model_score is not None else None
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
                     precision, history, info)


def _sigmoid_probs(net, seqs: list[list[int]], max_len: int, pad_id: int, batch_size: int):
    """Per-label sigmoid probabilities [N, C] of `net` (eval mode) on token-id rows."""
    import numpy as np
    import torch

    from components.model.classifier import pad_batch, truncate

    out = []
    with torch.inference_mode():
        for i in range(0, len(seqs), batch_size):
            ids, mask = pad_batch([truncate(s, max_len) for s in seqs[i:i + batch_size]], pad_id)
            out.append(torch.sigmoid(net(ids, mask).float()).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.head.out_features), dtype=np.float32)


def train_classifier(cfg: Params, paths: Paths, init: str | None = None, **kwargs):
    """`fit_classifier(...).classifier`: a TextClassifier trained from `init`."""
    return fit_classifier(cfg, paths, init, **kwargs).classifier


DISABLED = "DISABLED.json"  # models/finetuned_static/ without a static student


def _static_off(cfg: Params) -> str:
    """Why there is no static student ("" when there is one)."""
    if not cfg.finetune.static.enabled:
        return "finetune.static.enabled: false"
    if cfg.model.family == "static":
        return "model.family is static: models/finetuned is the static student"
    return ""


def _fit_static(cfg: Params, paths: Paths, run_id: str) -> FitResult | None:
    """The static student (finetune.static), or None (with one line when it is skipped)."""
    reason = _static_off(cfg)
    if reason:
        if cfg.finetune.static.enabled:
            print(f"finetune: no separate static student ({reason})", flush=True)
        return None
    return fit_classifier(static_params(cfg), paths, "model2vec", run_id=run_id, tag="static")


def static_params(cfg: Params) -> Params:
    """The Params the static student (finetune.static) trains with: model.family static with an
    MLP of finetune.static.mlp_size, the static section's epochs, batch, lr and dropout, and
    everything else (distillation, patience, precision, ...) from finetune.

    >>> p = static_params(Params())
    >>> p.model.family, p.model.ffn_size, p.finetune.max_epochs, p.finetune.distill == Params().finetune.distill
    ('static', 512, 4, True)
    """
    import dataclasses

    st = cfg.finetune.static
    ft = dataclasses.replace(cfg.finetune, init="model2vec", max_epochs=st.max_epochs, batch_size=st.batch_size,
                             lr=st.lr, dropout=st.dropout, freeze_layers=0, layer_lr_decay=1.0)
    model = dataclasses.replace(cfg.model, family="static", ffn_size=st.mlp_size, pooling="mean", max_length=512)
    return dataclasses.replace(cfg, finetune=ft, model=model)


def curve_csv(history: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def run(cfg: Params, paths: Paths) -> dict:
    """The stage: train, export models/finetuned/, write the report and the curve."""
    from components.core.atomic import atomic_dir, write_json, write_text
    from components.core.tracking import stage_run

    with stage_run(cfg, STAGE, paths.root, table.get(STAGE).params) as mlrun:
        import mlflow

        bi = None
        if cfg.finetune.bi_encoder.enabled:  # a wrong label name fails before any training
            from components.data.labels import read_labels
            from components.model.lit_biencoder import fit_biencoder, positive_id

            positive_id(read_labels(paths.labels), cfg.finetune.bi_encoder.positive, paths)
        res = fit_classifier(cfg, paths, run_id=mlrun.info.run_id)
        static = _fit_static(cfg, paths, mlrun.info.run_id)
        if cfg.finetune.bi_encoder.enabled:
            bi = fit_biencoder(cfg, paths, _start(cfg, paths, res.info["init"]), res.classifier.labels,
                               run_id=mlrun.info.run_id)
            res.classifier.biencoder = bi.biencoder
        t0 = time.perf_counter()
        with atomic_dir(paths.finetuned) as tmp:
            res.classifier.save(tmp, extra={"seed": cfg.project.seed})
        with atomic_dir(paths.finetuned_static) as tmp:  # DISABLED.json when there is no static student
            if static is not None:
                static.classifier.save(tmp, extra={"seed": cfg.project.seed})
            else:
                write_json(tmp / DISABLED, {"enabled": False, "reason": _static_off(cfg)})
        compute_s = res.wall_s + time.perf_counter() - t0  # time.compute_s: trainer.fit(s) + export
        compute_s += (bi.report["wall_s"] if bi is not None else 0.0) + (static.wall_s if static else 0.0)
        report = {"init": res.info["init"], "init_kind": res.info["init_kind"],
                  "best_val_f1": res.best_val_f1, "best_val_acc": res.best_val_acc,
                  "epochs": res.epochs, "steps": res.steps, "wall_s": round(res.wall_s, 2),
                  "precision": res.precision, "frozen_params": res.info["frozen_params"],
                  "trainable_params": res.info["trainable_params"],
                  "train_rows": res.info["train_rows"], "distill": res.info["distill"],
                  "augment_copies": res.info["augment_copies"], "augmented_rows": res.info["augmented_rows"],
                  "augmented_dropped_held_out": res.info["augmented_dropped_held_out"],
                  "mlflow_run_id": mlrun.info.run_id}
        if res.info.get("task") == "pair":  # the default report keeps its keys
            report.update(task="pair", segment_embedding=res.info["segment_embedding"])
        if bi is not None:
            report["bi_encoder"] = bi.report
        if static is not None:
            report["static"] = {"best_val_f1": static.best_val_f1, "best_val_acc": static.best_val_acc,
                                "epochs": static.epochs, "steps": static.steps, "wall_s": round(static.wall_s, 2),
                                "trainable_params": static.info["trainable_params"]}
        if "thresholds" in res.info:  # multi_label only: the default report keeps its keys
            report.update(task="multi_label", thresholds=res.info["thresholds"],
                          val_f1_tuned=res.info["val_f1_tuned"])
        write_json(paths.report("finetune"), report)
        write_text(paths.reports / "finetune_curve.csv", curve_csv(res.history))
        mlflow.log_metrics({k: float(v) for k, v in (("best_val_f1", res.best_val_f1),
                            ("best_val_acc", res.best_val_acc), ("wall_s", res.wall_s),
                            ("time.compute_s", compute_s),
                            ("bi_encoder.best_val_mrr", bi and bi.report["best_val_mrr"])) if v is not None})
        mlflow.log_artifact(str(paths.reports / "finetune_curve.csv"))
    return {k: report[k] for k in ("init", "best_val_f1", "best_val_acc", "epochs", "wall_s")}
