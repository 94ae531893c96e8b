"""Training of the pair task's bi-encoder (finetune.bi_encoder): loss, LightningModule, fit.

Rows: the POSITIVE pairs of train (label == finetune.bi_encoder.positive), each side
tokenized alone ("[CLS] text [SEP]", truncated to max_length). A batch of B positive pairs
(a_i, b_i) is its own set of negatives: b_i must be a_i's nearest among all b_j of the
batch, and a_i b_i's among all a_j (`contrastive_loss`, symmetric InfoNCE over cosine /
temperature). Both sides go through the same encoder (model/biencoder.BiEncoderNet).

Validation: MRR of retrieving each val positive's partner among all val positives'
partners (evaluation/retrieval.py, the same scoring evaluate uses on test), logged as
val_mrr, which ModelCheckpoint / EarlyStopping monitor. Optimiser and schedule as
classification fine-tuning: AdamW groups with layer-wise lr decay (optim.param_groups),
linear warmup then linear decay (optim.lr_lambda), finetune's lr / epochs / batch size.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from components.model.classifier import pad_batch, truncate
from components.model.optim import lr_lambda, param_groups


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric in-batch InfoNCE of B positive pairs: a, b [B, H] unit vectors -> scalar.

    >>> a = torch.eye(3)  # each text's partner is itself, the rest orthogonal
    >>> round(contrastive_loss(a, a, 0.05).item(), 6), round(contrastive_loss(a, a.flip(0), 0.05).item(), 2)
    (0.0, 13.33)
    """
    logits = a.float() @ b.float().T / temperature  # [B, B]; the diagonal holds the positive pairs
    target = torch.arange(len(a), device=a.device)  # [B]
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class PairCollate:
    """[(a ids, b ids)] -> {"a_ids", "a_mask", "b_ids", "b_mask"} ([B, T] each side)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items):
        a_ids, a_mask = pad_batch([a for a, _ in items], self.pad_id)
        b_ids, b_mask = pad_batch([b for _, b in items], self.pad_id)
        return {"a_ids": a_ids, "a_mask": a_mask, "b_ids": b_ids, "b_mask": b_mask}


class TextCollate:
    """[ids] -> {"ids", "mask"} ([B, T]): the single texts of validation."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items):
        ids, mask = pad_batch(items, self.pad_id)
        return {"ids": ids, "mask": mask}


class LitBiEncoder(pl.LightningModule):
    def __init__(self, net: nn.Module, *, temperature: float, lr: float, weight_decay: float,
                 layer_lr_decay: float, warmup_fraction: float, total_steps: int,
                 val_queries: int = 0, val_relevant: np.ndarray | None = None):
        """Validation batches are single texts: the val_queries query texts, then the candidates;
        val_relevant [Q, C] bool marks each query's partners."""
        super().__init__()
        self.net = net
        self.temperature, self.lr, self.weight_decay = temperature, lr, weight_decay
        self.layer_lr_decay, self.warmup_fraction, self.total_steps = layer_lr_decay, warmup_fraction, total_steps
        self.val_queries, self.val_relevant = val_queries, val_relevant
        self._val: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        a = self.net(batch["a_ids"], batch["a_mask"])  # [B, H]
        b = self.net(batch["b_ids"], batch["b_mask"])  # [B, H]
        loss = contrastive_loss(a, b, self.temperature)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(a))
        return loss

    def validation_step(self, batch, batch_idx):
        self._val.append(self.net(batch["ids"], batch["mask"]).float().cpu())  # [b, H]

    def on_validation_epoch_end(self):
        from components.evaluation.retrieval import per_query

        vecs = torch.cat(self._val).numpy()  # [Q + C, H] unit rows
        self._val = []
        sim = vecs[: self.val_queries] @ vecs[self.val_queries:].T  # [Q, C] cosines
        self.log("val_mrr", float(per_query(sim, self.val_relevant, "mrr").mean()), prog_bar=True)
        self.log("val_recall_at_10", float(per_query(sim, self.val_relevant, "recall_at_10").mean()))

    def configure_optimizers(self):
        backbone = self.net.backbone
        layers = list(backbone.layer_groups())
        layers[-1] = nn.ModuleList([layers[-1], backbone])  # params in no group train with the top one
        groups = param_groups([self.net], self.weight_decay, lr=self.lr, layers=layers,
                              layer_decay=self.layer_lr_decay)
        opt = torch.optim.AdamW(groups, lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(self.total_steps, self.warmup_fraction))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@dataclass
class BiEncoderFit:
    biencoder: object  # model/biencoder.BiEncoder
    report: dict = field(default_factory=dict)  # reports/finetune.json's "bi_encoder" block


def fit_biencoder(cfg, paths, start, labels: list[str], *, run_id: str | None = None,
                  progress: bool = True) -> BiEncoderFit:
    """Train the bi-encoder from `start` = (backbone, tokenizer, pad_id, max_length, kind), a fresh
    starting point as finetune._start returns it, on data/prepared's train / val positive pairs;
    the best epoch by val MRR (the last one without val positives)."""
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from components.core.errors import DataError
    from components.evaluation.retrieval import positives, retrieval_set
    from components.model.biencoder import BiEncoder, BiEncoderNet
    from components.model.cls_data import text_split
    from components.model.precision import resolve_precision

    ft, bi = cfg.finetune, cfg.finetune.bi_encoder
    pos_id = positive_id(labels, bi.positive, paths)
    backbone, tok, pad_id, max_len, _ = start
    tok.no_padding()
    pl.seed_everything(cfg.project.seed, workers=True, verbose=False)
    train = positives(*text_split(paths.split("train"), len(labels)), pos_id)
    val = positives(*text_split(paths.split("val"), len(labels)), pos_id)
    if len(train) < 2:
        raise DataError(f"{paths.split('train')}: {len(train)} pairs labelled {bi.positive!r}; the bi-encoder "
                        "needs at least 2 (in-batch negatives)", stage="finetune")
    enc = lambda texts: [truncate(e.ids, max_len) for e in tok.encode_batch(list(texts))]  # noqa: E731
    rows = list(zip(enc(a for a, _ in train), enc(b for _, b in train)))
    queries, candidates, relevant = retrieval_set(val)
    gen = torch.Generator().manual_seed(cfg.project.seed)
    # drop_last: a last batch of 1 pair has no negative, and its loss would be 0
    train_dl = DataLoader(rows, batch_size=ft.batch_size, shuffle=True, generator=gen,
                          collate_fn=PairCollate(pad_id), drop_last=len(rows) % ft.batch_size == 1)
    val_dl = DataLoader(enc(queries + candidates), batch_size=ft.batch_size, collate_fn=TextCollate(pad_id)) \
        if val else None
    steps = len(train_dl) * ft.max_epochs
    net = BiEncoderNet(backbone).train()
    module = LitBiEncoder(net, temperature=bi.temperature, lr=ft.lr, weight_decay=ft.weight_decay,
                          layer_lr_decay=ft.layer_lr_decay, warmup_fraction=ft.warmup_fraction,
                          total_steps=steps, val_queries=len(queries), val_relevant=relevant)
    ckpt_dir = paths.checkpoints / "bi_encoder"
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    ckpt, callbacks = None, []
    if val_dl is not None:
        ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_mrr", mode="max", save_top_k=1,
                               save_weights_only=True, enable_version_counter=False)
        callbacks = [ckpt, EarlyStopping(monitor="val_mrr", mode="max", patience=ft.patience)]
    logger = False
    if run_id:
        from pytorch_lightning.loggers import MLFlowLogger

        from components.core.tracking import tracking_uri

        logger = MLFlowLogger(experiment_name=cfg.project.experiment, run_id=run_id,
                              tracking_uri=tracking_uri(cfg.project, paths.root), prefix="bi_encoder")
    trainer = pl.Trainer(max_epochs=ft.max_epochs, accelerator=ft.accelerator, devices=1,
                         precision=resolve_precision(ft.precision, ft.accelerator), logger=logger,
                         callbacks=callbacks, gradient_clip_val=ft.grad_clip or None, num_sanity_val_steps=0,
                         enable_progress_bar=progress, enable_model_summary=False, default_root_dir=str(ckpt_dir),
                         log_every_n_steps=max(1, min(50, len(train_dl))))
    t0 = time.perf_counter()
    trainer.fit(module, train_dl, val_dl)
    wall = time.perf_counter() - t0
    if trainer.interrupted:
        from components.core.errors import EncoderflowError

        raise EncoderflowError("bi-encoder training was interrupted; nothing was exported", stage="finetune")
    best = None
    if ckpt is not None and ckpt.best_model_path:
        module.load_state_dict(torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"])
        best = float(ckpt.best_model_score) if ckpt.best_model_score is not None else None
    net = module.net.cpu().float().eval()
    meta = {"positive": bi.positive, "temperature": bi.temperature}
    report = {"positive": bi.positive, "temperature": bi.temperature, "train_pairs": len(rows),
              "val_queries": len(queries), "best_val_mrr": best, "epochs": trainer.current_epoch,
              "steps": trainer.global_step, "wall_s": round(wall, 2)}
    return BiEncoderFit(BiEncoder(net, tok, max_len, pad_id, meta), report)


def positive_id(labels: list[str], positive: str, paths=None) -> int:
    """The id of finetune.bi_encoder.positive in labels.json's labels (one-line ConfigError if absent).

    >>> positive_id(["different", "duplicate"], "duplicate")
    1
    """
    from components.core.errors import ConfigError

    if positive not in labels:
        where = paths.labels.relative_to(paths.root) if paths is not None else "labels.json"
        raise ConfigError(f"finetune.bi_encoder.positive: expected the label of matching pairs, one of "
                          f"{', '.join(labels)} (the labels in {where}), got {positive!r}")
    return labels.index(positive)
