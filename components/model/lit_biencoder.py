"""The pair task's bi-encoder (finetune.bi_encoder) in training: loss, collators, LightningModule.

Rows: the POSITIVE pairs of train (label == finetune.bi_encoder.positive), each side
tokenized alone ("[CLS] text [SEP]", truncated to max_length). A batch of B positive pairs
(a_i, b_i) is its own set of negatives: b_i must be a_i's nearest among all b_j of the
batch, and a_i b_i's among all a_j (`contrastive_loss`, symmetric InfoNCE over cosine /
temperature). Both sides go through the same encoder (model/biencoder.BiEncoderNet).

Validation: MRR of retrieving each val positive's partner among all val positives'
partners (data/pairs.retrieval_set), with torchmetrics' RetrievalMRR (the retrieval function
evaluate scores test with, evaluation/retrieval.py), logged as val_mrr, which ModelCheckpoint
/ EarlyStopping monitor. Optimiser and schedule as classification fine-tuning: AdamW groups
with layer-wise lr decay (optim.param_groups), linear warmup then linear decay
(optim.lr_lambda), finetune's lr / epochs / batch size. training/fit_biencoder.py trains it.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.retrieval import RetrievalMRR, RetrievalRecall

from components.model.batching import pad_batch
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


def _mean64(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """The mean over queries in float64 (torchmetrics' "mean" sums in float32), as
    evaluation/retrieval.py's numpy mean: val_mrr keeps the value that scoring gives."""
    return values.double().mean() if dim is None else values.double().mean(dim=dim)


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
        self.val_mrr = RetrievalMRR(aggregation=_mean64)
        self.val_recall_at_10 = RetrievalRecall(top_k=10, aggregation=_mean64)

    def training_step(self, batch, batch_idx):
        a = self.net(batch["a_ids"], batch["a_mask"])  # [B, H]
        b = self.net(batch["b_ids"], batch["b_mask"])  # [B, H]
        loss = contrastive_loss(a, b, self.temperature)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(a))
        return loss

    def validation_step(self, batch, batch_idx):
        self._val.append(self.net(batch["ids"], batch["mask"]).float().cpu())  # [b, H]

    def on_validation_epoch_end(self):
        vecs = torch.cat(self._val).numpy()  # [Q + C, H] unit rows
        self._val = []
        sim = torch.as_tensor(vecs[: self.val_queries] @ vecs[self.val_queries:].T, dtype=torch.float64)  # [Q, C]
        # torchmetrics counts a candidate as retrieved only when its score is > 0; a cosine may be
        # <= 0, so each row is shifted to >= 1 first (the order, all these metrics use, is kept).
        sim = sim - sim.min(dim=1, keepdim=True).values + 1.0
        # The values are evaluation/retrieval.per_query's (what evaluate reports on test), except where
        # two candidates of a query tie exactly: RetrievalMetric.compute groups rows with an unstable
        # sort, so tied candidates may swap places (a rank off by one for a partner in the tie).
        relevant = torch.as_tensor(self.val_relevant)  # [Q, C] bool
        query = torch.arange(len(sim)).repeat_interleave(sim.shape[1])  # [Q * C]: each score's query
        for name, metric in (("val_mrr", self.val_mrr), ("val_recall_at_10", self.val_recall_at_10)):
            metric.update(sim.flatten(), relevant.flatten(), indexes=query)
            self.log(name, float(metric.compute()), prog_bar=name == "val_mrr")
            metric.reset()

    def configure_optimizers(self):
        backbone = self.net.backbone
        layers = list(backbone.layer_groups())
        layers[-1] = nn.ModuleList([layers[-1], backbone])  # params in no group train with the top one
        groups = param_groups([self.net], self.weight_decay, lr=self.lr, layers=layers,
                              layer_decay=self.layer_lr_decay)
        opt = torch.optim.AdamW(groups, lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(self.total_steps, self.warmup_fraction))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
