"""LightningModule for classification fine-tuning: loss, metrics, optimizer, schedule.

The model itself (ClassifierNet) is a plain nn.Module; this module only owns
training concerns:
- cross-entropy (optionally class-weighted), or, when batches carry teacher
  soft targets, the distillation loss of `distill_loss` (below),
- val accuracy / macro-F1 with torchmetrics (logged as val_acc / val_f1,
  which EarlyStopping and ModelCheckpoint monitor),
- multi_label: one logit per label, BCE-with-logits (pos_weight from class weights);
  val_f1 is the labels' macro-F1 at threshold 0.5 and val_acc the subset accuracy
  (per-label thresholds are tuned afterwards, model/thresholds.py),
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

# Teacher probabilities are floored before the log: a float32 softmax can round to
# exactly 0, and log(0) would make the target -inf. The floor caps a teacher logit
# gap at ln(1e6) ~ 13.8, far beyond any gap that still moves a softmax.
PROB_FLOOR = 1e-6


def teacher_log_probs(soft: torch.Tensor) -> torch.Tensor:
    """log p of the teacher, floored: [B, C] -> [B, C]. Equals the teacher's logits up to a
    per-row constant (log softmax(z) = z - logsumexp(z))."""
    return soft.float().clamp_min(PROB_FLOOR).log()


def soft_term(logits: torch.Tensor, soft: torch.Tensor, temperature: float, kind: str) -> torch.Tensor:
    """Per-row distillation term [B] between student logits [B, C] and teacher probabilities [B, C].

    kind "kl": T^2 * KL(teacher_T || student_T), where student_T = softmax(z_s / T) and
    teacher_T = softmax(log p / T) (= softmax(z_t / T): the per-row constant cancels).
    The T^2 keeps its gradients on the scale of the CE term (Hinton et al. 2015).

    kind "mse": logit matching (Tang et al. 2019): mean over classes of
    (center(z_s) - center(log p))^2, where center subtracts the row mean. The teacher's
    logits are known only up to a per-row constant; centering both sides removes it
    (softmax ignores it too). The temperature does not enter: for zero-mean logits
    T^2 * KL tends to 1/2 of this as T grows (Hinton et al. 2015, sec. 2.1).

    >>> z = torch.tensor([[2.0, 0.0, -1.0]])
    >>> round(soft_term(z, torch.softmax(z, -1), 3.0, "kl").item(), 6)
    0.0
    >>> round(soft_term(z + 5, torch.softmax(z, -1), 1.0, "mse").item(), 6)  # shift-invariant
    0.0
    """
    z = logits.float()  # [B, C]
    log_t = teacher_log_probs(soft)  # [B, C]
    if kind == "mse":
        diff = (z - z.mean(-1, keepdim=True)) - (log_t - log_t.mean(-1, keepdim=True))  # [B, C]
        return diff.pow(2).mean(-1)  # [B]
    student = F.log_softmax(z / temperature, -1)  # [B, C] log student_T
    teacher = F.log_softmax(log_t / temperature, -1)  # [B, C] log teacher_T
    kl = F.kl_div(student, teacher, reduction="none", log_target=True).sum(-1)  # [B]
    return temperature ** 2 * kl


def distill_loss(logits: torch.Tensor, soft: torch.Tensor, labels: torch.Tensor, has_gold: torch.Tensor, *,
                 alpha: float, temperature: float, kind: str = "kl",
                 class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the B rows of: alpha*CE(gold) + (1-alpha)*S on gold rows, S alone on the others.

    logits [B, C], soft [B, C] teacher probabilities, labels [B] (any value where has_gold
    is False), has_gold [B] bool; S = soft_term(...). The CE part is F.cross_entropy over the
    gold rows (class-weighted when given: its weighted mean), scaled by their share of the
    batch, so an all-gold batch with alpha=1 gives exactly F.cross_entropy.

    >>> z = torch.tensor([[2.0, 0.0], [0.0, 1.0]]); y = torch.tensor([0, 1])
    >>> p = torch.tensor([[0.5, 0.5], [0.5, 0.5]]); g = torch.tensor([True, True])
    >>> bool(torch.isclose(distill_loss(z, p, y, g, alpha=1.0, temperature=2.0), F.cross_entropy(z, y)))
    True
    """
    per_row = soft_term(logits, soft, temperature, kind)  # [B]
    gold = has_gold.float()  # [B] 1.0 on gold rows
    coef = 1.0 - alpha * gold  # [B]: gold rows share their weight with the CE
    y = labels.clamp_min(0)  # [B] any valid id where there is no gold; masked out below
    ce_rows = F.cross_entropy(logits.float(), y, weight=class_weights, reduction="none")  # [B] w_y * CE
    w_rows = class_weights[y] if class_weights is not None else torch.ones_like(gold)  # [B]
    # F.cross_entropy's (weighted) mean over the gold rows, without indexing (no host sync)
    ce = (ce_rows * gold).sum() / (w_rows * gold).sum().clamp_min(1e-12)
    return (coef * per_row).mean() + alpha * ce * gold.mean()


def vector_term(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Sentence-vector distillation: mean over rows of 1 - cos(student_b, teacher_b).

    student [B, D]: the student's pooled vector through the training-only linear map;
    teacher [B, D]: the teacher's pooled sentence vector (transfer set `vector`). Cosine, not
    MSE, so the teacher's vector norm (which mean pooling leaves arbitrary) does not matter;
    the map learns any rotation and scale. Works across tokenizers: it compares one vector
    per text.

    >>> v = torch.tensor([[1.0, 2.0], [0.0, -3.0]])
    >>> round(vector_term(2 * v, v).item(), 6), round(vector_term(-v, v).item(), 6)
    (0.0, 2.0)
    """
    return (1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()


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
                 class_weights: torch.Tensor | None = None, distill: dict | None = None,
                 multi_label: bool = False):
        """`distill`: {"alpha", "temperature", "loss"} for batches with teacher soft targets
        ("soft" [B, C], "has_gold" [B]); batches without them train on plain CE. With
        "vector_weight" > 0 and "vector_dim" D, a training-only nn.Linear(H, D) (`vector_head`,
        not part of `net`, so not saved with the model) maps the student's pooled vector onto
        the teacher's, and batches' "vector" [B, D] add vector_weight * vector_term.
        `multi_label`: labels are [B, C] 0/1 targets, the loss is BCE-with-logits and
        `class_weights` is its pos_weight [C]."""
        super().__init__()
        self.net = net
        self.multi_label = multi_label
        self.distill = dict(distill) if distill else None
        self.vector_head = None
        if self.distill and self.distill.get("vector_weight", 0) > 0:
            self.vector_head = nn.Linear(net.backbone.output_size, int(self.distill["vector_dim"]))
        self.lr, self.weight_decay, self.layer_lr_decay = lr, weight_decay, layer_lr_decay
        self.warmup_fraction, self.total_steps = warmup_fraction, total_steps
        self.register_buffer("class_weights", class_weights, persistent=False)
        if multi_label:
            self.val_acc = torchmetrics.ExactMatch(task="multilabel", num_labels=num_classes)
            self.val_f1 = torchmetrics.F1Score(task="multilabel", num_labels=num_classes, average="macro")
        else:
            self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes, average="micro")
            self.val_f1 = torchmetrics.F1Score(task="multiclass", num_classes=num_classes, average="macro")

    def _bce(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """multi_label loss: mean BCE-with-logits over rows and labels; logits, targets [B, C]."""
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=self.class_weights)

    def forward(self, input_ids, attention_mask):
        return self.net(input_ids, attention_mask)  # [B, C]

    def training_step(self, batch, batch_idx):
        logits, pooled = self.net.logits_and_pooled(batch["input_ids"], batch["attention_mask"])  # [B, C], [B, H]
        if "soft" in batch:
            if self.distill is None:
                raise ValueError("a batch with soft targets, but no distill settings were given")
            d = self.distill
            loss = distill_loss(logits, batch["soft"], batch["labels"], batch["has_gold"], alpha=d["alpha"],
                                temperature=d["temperature"], kind=d["loss"], class_weights=self.class_weights)
            if self.vector_head is not None:
                vec = vector_term(self.vector_head(pooled), batch["vector"])
                self.log("train_vector_loss", vec, on_step=True, on_epoch=True, batch_size=len(batch["labels"]))
                loss = loss + d["vector_weight"] * vec
        elif self.multi_label:
            loss = self._bce(logits, batch["labels"])
        else:
            loss = F.cross_entropy(logits.float(), batch["labels"], weight=self.class_weights)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"]).float()
        if self.multi_label:  # torchmetrics applies the sigmoid to logits; targets as ints
            self.log("val_loss", self._bce(logits, batch["labels"]), on_epoch=True,
                     batch_size=len(batch["labels"]))
            self.val_acc.update(logits, batch["labels"].long())
            self.val_f1.update(logits, batch["labels"].long())
            return
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
        heads = [self.vector_head] if self.vector_head is not None else []
        groups = param_groups([self.net, *heads], self.weight_decay, lr=self.lr, layers=layers,
                              layer_decay=self.layer_lr_decay)
        opt = torch.optim.AdamW(groups, lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(self.total_steps, self.warmup_fraction))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
