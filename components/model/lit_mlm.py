"""LightningModule for masked-language-model pretraining: loss, optimizer, schedule, logging.

The encoder stays a plain nn.Module (encoder.py); this module owns the MLM head, the
sparse loss, AdamW + warmup/decay (optim.py), and the per-step curve (step, loss, lr) that is kept
inside checkpoints so a resumed run still reports its whole history.

General distillation (`vector_weight` > 0, batches with text_ids / text_mask / text_vector from
data.TextStream): loss = MLM + vector_weight * (1 - cos(W pool(encoder(text)), t)), where t is
the teacher's base sentence vector of the whole text and W a training-only linear map
(`vector_head`, not exported with the encoder). The curve's loss column stays the MLM loss.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from components.model.data import IGNORE
from components.model.encoder import EncoderConfig, MLMHead, build_encoder
from components.model.optim import lr_lambda, param_groups


def vector_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over rows of 1 - cos(student_b, teacher_b); student, teacher [B, D].

    >>> v = torch.tensor([[1.0, 2.0], [0.0, -3.0]])
    >>> round(vector_loss(2 * v, v).item(), 6), round(vector_loss(-v, v).item(), 6)
    (0.0, 2.0)
    """
    return (1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()


class LitMLM(pl.LightningModule):
    def __init__(self, enc_cfg: EncoderConfig, lr: float, beta2: float, weight_decay: float,
                 max_steps: int, warmup_fraction: float, schedule: str, seed: int = 0,
                 vector_weight: float = 0.0, vector_dim: int = 0):
        super().__init__()
        self.encoder = build_encoder(enc_cfg)
        self.head = MLMHead(self.encoder)
        self.vector_weight = vector_weight
        self.vector_head = nn.Linear(self.encoder.output_size, vector_dim) if vector_weight > 0 else None
        self.opt = dict(lr=lr, beta2=beta2, weight_decay=weight_decay, max_steps=max_steps,
                        warmup_fraction=warmup_fraction, schedule=schedule)
        self.seed = seed
        self.tokens_seen = 0  # real (non-pad) tokens consumed; restored from checkpoints
        self.tokens_at_start = 0  # tokens_seen when this process started (resume point)
        self.curve: list[list[float]] = []  # [step, loss, lr] per optimizer step
        self._micro: list[float] = []
        self._tokens_since = 0
        self._t_last = None

    def mlm_loss(self, batch: dict) -> torch.Tensor:
        labels = batch["labels"]  # [B, T], IGNORE where no loss
        sel = labels != IGNORE  # [B, T]
        # sparse: only the N masked positions leave the last block and reach the vocab projection
        states = self.encoder.selected_states(batch["input_ids"], batch["attention_mask"], sel)  # [N, H]
        logits = self.head(states)  # [N, V]
        return F.cross_entropy(logits.float(), labels[sel])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # Reseed per global micro-batch so a resumed run draws the same dropout masks as an
        # unbroken one (Lightning does not checkpoint the torch RNG).
        accum = self.trainer.accumulate_grad_batches
        micro = (self.trainer.global_step * accum + batch_idx % accum) * self.trainer.world_size \
            + self.trainer.global_rank
        torch.manual_seed((self.seed * 1_000_003 + micro) % (2 ** 63))
        loss = self.mlm_loss(batch)
        tokens = int(batch["attention_mask"].sum())
        self.tokens_seen += tokens
        self._tokens_since += tokens
        self._micro.append(float(loss.detach()))
        self.log("train/loss", loss, on_step=True, prog_bar=True)
        if self.vector_head is not None:
            _, pooled = self.encoder(batch["text_ids"], batch["text_mask"])  # [B2, H]
            vec = vector_loss(self.vector_head(pooled), batch["text_vector"])
            self.log("train/vector_loss", vec, on_step=True, prog_bar=True)
            loss = loss + self.vector_weight * vec
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        # Runs once per optimizer step, after the last micro-batch's backward and before any
        # callback's on_train_batch_end (so a checkpoint saved at this step includes its row).
        step = self.trainer.global_step + 1
        f = lr_lambda(self.opt["max_steps"], self.opt["warmup_fraction"], self.opt["schedule"])
        lr = self.opt["lr"] * f(step - 1)  # the lr this step uses
        loss = sum(self._micro) / max(1, len(self._micro))
        if self.trainer.world_size > 1:  # DDP: the curve and token counts cover every rank
            loss, tokens = self._all_ranks(loss)
            self.tokens_seen += tokens - self._tokens_since  # own tokens were counted per micro-batch
            self._tokens_since = tokens
        self.curve.append([step, loss, lr])
        now = time.perf_counter()
        metrics = {"train/lr": lr, "train/tokens_seen": float(self.tokens_seen)}
        if self._t_last is not None:
            metrics["train/tokens_per_s"] = self._tokens_since / max(now - self._t_last, 1e-9)
        self.log_dict(metrics, on_step=True, on_epoch=False)
        self._t_last, self._tokens_since, self._micro = now, 0, []

    def _all_ranks(self, loss: float) -> tuple[float, int]:
        """(mean micro-batch loss, tokens of this step) over all ranks; every rank calls it
        once per optimizer step, so all ranks keep the same curve and tokens_seen."""
        local = torch.tensor([loss, float(self._tokens_since)], dtype=torch.float64, device=self.device)
        total = self.trainer.strategy.reduce(local, reduce_op="sum")  # [2]
        return float(total[0]) / self.trainer.world_size, int(round(float(total[1])))

    def on_train_epoch_start(self) -> None:
        self._t_last, self._tokens_since = None, 0

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss = self.mlm_loss(batch)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=int((batch["labels"] != IGNORE).sum()))

    def on_validation_epoch_end(self) -> None:
        self._t_last = None  # validation time does not count against training throughput

    def configure_optimizers(self):
        o = self.opt
        heads = [self.vector_head] if self.vector_head is not None else []
        groups = param_groups([self.encoder, self.head, *heads], o["weight_decay"])
        opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(0.9, o["beta2"]), eps=1e-8)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(o["max_steps"], o["warmup_fraction"], o["schedule"]))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mlm"] = {"tokens_seen": self.tokens_seen, "curve": self.curve}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("mlm", {})
        self.tokens_seen = self.tokens_at_start = int(state.get("tokens_seen", 0))
        self.curve = [list(row) for row in state.get("curve", [])]
