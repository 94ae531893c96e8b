"""LightningModule for classification fine-tuning: loss, metrics, optimizer, schedule.

The model itself (ClassifierNet) is a plain nn.Module; this module only owns
training concerns:
- cross-entropy (optionally class-weighted),
- val accuracy / macro-F1 with torchmetrics (logged as val_acc / val_f1,
  which EarlyStopping and ModelCheckpoint monitor),
- AdamW with layer-wise LR decay over `backbone.layer_groups()` (top group
  gets lr * decay, the one below lr * decay^2, ...; the head gets lr), the
  weight-decay rule of optim.py (none on biases, norms, embeddings), and
  frozen bottom groups left out of the optimizer,
- linear warmup then linear decay to 0 (optim.lr_lambda), stepped every
  optimizer step.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from components.model.optim import lr_lambda, param_groups


def freeze_groups(groups: list[nn.Module], k: int) -> int:
    """Freeze the bottom `k` groups (requires_grad False); returns the frozen param count."""
    frozen = 0
    for g in groups[:k]:
        for p in g.parameters():
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


class LitClassifier(pl.LightningModule):
    def __init__(self, net: nn.Module, num_classes: int, *, lr: float, weight_decay: float,
                 layer_lr_decay: float, warmup_fraction: float, total_steps: int,
                 class_weights: torch.Tensor | None = None):
        super().__init__()
        self.net = net
        self.lr, self.weight_decay, self.layer_lr_decay = lr, weight_decay, layer_lr_decay
        self.warmup_fraction, self.total_steps = warmup_fraction, total_steps
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
        backbone = self.net.backbone
        layers = list(backbone.layer_groups())
        # backbone params in no layer group (e.g. a HF pooler) train with the top group
        layers[-1] = nn.ModuleList([layers[-1], backbone])
        groups = param_groups([self.net], self.weight_decay, lr=self.lr, layers=layers,
                              layer_decay=self.layer_lr_decay)
        opt = torch.optim.AdamW(groups, lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(self.total_steps, self.warmup_fraction))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
