"""LightningModule for classification fine-tuning: loss, metrics, optimizer, schedule.

The model itself (ClassifierNet) is a plain nn.Module; this module only owns
training concerns:
- cross-entropy (optionally class-weighted),
- val accuracy / macro-F1 with torchmetrics (logged as val_acc / val_f1,
  which EarlyStopping and ModelCheckpoint monitor),
- AdamW with layer-wise LR decay over `backbone.layer_groups()` (top group
  gets lr * decay, the one below lr * decay^2, ...; the head gets lr), no
  weight decay on 1-D params (biases, norm scales), and frozen bottom groups
  left out of the optimizer,
- linear warmup then linear decay to 0, stepped every optimizer step.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn


def freeze_groups(groups: list[nn.Module], k: int) -> int:
    """Freeze the bottom `k` groups (requires_grad False); returns the frozen param count."""
    frozen = 0
    for g in groups[:k]:
        for p in g.parameters():
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def param_groups(net: nn.Module, lr: float, decay: float, weight_decay: float) -> list[dict]:
    """AdamW parameter groups with layer-wise LR decay.

    Backbone group i of n (0 = embeddings, bottom) gets lr * decay ** (n - i);
    backbone params in no group (e.g. a HF pooler) count as the top group; the
    head gets lr. 1-D params (biases, norm scales) get no weight decay.
    """
    groups = net.backbone.layer_groups()
    n = len(groups)
    scale: dict[int, float] = {}
    for i, g in enumerate(groups):
        for p in g.parameters():
            scale.setdefault(id(p), decay ** (n - i))
    for p in net.backbone.parameters():
        scale.setdefault(id(p), decay)  # leftovers: treat as top of the backbone
    for p in net.parameters():
        scale.setdefault(id(p), 1.0)  # the head
    buckets: dict[tuple[float, bool], list] = {}
    for p in net.parameters():
        if not p.requires_grad:
            continue
        buckets.setdefault((scale[id(p)], p.ndim >= 2), []).append(p)
    return [{"params": ps, "lr": lr * s, "weight_decay": weight_decay if wd else 0.0}
            for (s, wd), ps in sorted(buckets.items(), key=lambda kv: (kv[0][0], kv[0][1]))]


def warmup_linear(step: int, warmup: int, total: int) -> float:
    """LR multiplier: 0 -> 1 over `warmup` steps, then 1 -> 0 at `total`.

    >>> [round(warmup_linear(s, 2, 10), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


class LitClassifier(pl.LightningModule):
    def __init__(self, net: nn.Module, num_classes: int, *, lr: float, weight_decay: float,
                 layer_lr_decay: float, warmup_steps: int, total_steps: int,
                 class_weights: torch.Tensor | None = None):
        super().__init__()
        self.net = net
        self.lr, self.weight_decay, self.layer_lr_decay = lr, weight_decay, layer_lr_decay
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes, average="micro")
        self.val_f1 = torchmetrics.F1Score(task="multiclass", num_classes=num_classes, average="macro")

    def forward(self, input_ids, attention_mask):
        return self.net(input_ids, attention_mask)  # [B, C]

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])  # [B, C]
        loss = F.cross_entropy(logits.float(), batch["labels"], weight=self.class_weights)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"]).float()
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]), on_epoch=True,
                 batch_size=len(batch["labels"]))
        self.val_acc.update(logits, batch["labels"])
        self.val_f1.update(logits, batch["labels"])

    def on_validation_epoch_end(self):
        self.log("val_acc", self.val_acc.compute(), prog_bar=True)
        self.log("val_f1", self.val_f1.compute(), prog_bar=True)
        self.val_acc.reset()
        self.val_f1.reset()

    def configure_optimizers(self):
        groups = param_groups(self.net, self.lr, self.layer_lr_decay, self.weight_decay)
        opt = torch.optim.AdamW(groups, lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: warmup_linear(s, self.warmup_steps, self.total_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
