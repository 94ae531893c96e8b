"""The one Lightning Trainer of fine-tuning: checkpoint on a val metric, early stopping, MLflow.

Classifier fine-tuning (training/fit_classifier.py: finetune, the teacher, evaluate's
random-init baseline) and the pair task's bi-encoder (training/fit_biencoder.py) train the
same way, with finetune's accelerator / precision / epochs / patience / grad clip:

    trainer, ckpt = build_trainer(cfg, paths, cfg.finetune, tag="finetune", monitor="val_f1",
                                  has_val=True, steps_per_epoch=len(train_dl), run_id=run_id)
    wall_s = fit(trainer, module, train_dl, val_dl, "fine-tuning")
    best = restore_best(module, ckpt)   # the best epoch's weights back in `module`

- ModelCheckpoint keeps the best weights by `monitor` (max) in checkpoints/<tag>/ (cleared
  first); EarlyStopping stops after `patience` epochs without a gain. Without val rows there is
  nothing to select on: neither is added and the last epoch is kept (`ckpt` is None).
- MLFlowLogger logs into the stage's MLflow run `run_id` (none without one), with the metric
  prefix `prefix`.
- No sanity val steps, no model summary; logs every min(50, steps per epoch) steps.

Pretraining's trainer (stages/pretrain.py) differs (step budget, resumable checkpoints, DDP)
and stays its own.
"""

from __future__ import annotations

import shutil
import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from components.core.config import FinetuneConfig, Params
from components.core.errors import EncoderflowError
from components.core.paths import Paths
from components.model.precision import resolve_precision


def build_trainer(cfg: Params, paths: Paths, ft: FinetuneConfig, *, tag: str, monitor: str, has_val: bool,
                  steps_per_epoch: int, run_id: str | None = None, prefix: str = "", progress: bool = True,
                  min_steps: int = 0, callbacks: list | None = None) -> tuple[pl.Trainer, ModelCheckpoint | None]:
    """(trainer, its ModelCheckpoint or None without val rows); `callbacks` run before the
    checkpoint and early stopping. `min_steps`: early stopping does not stop before that many
    optimizer steps (0: no floor)."""
    ckpt_dir = paths.checkpoints / tag
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    callbacks = list(callbacks or [])
    ckpt = None
    if has_val:  # without val rows there is nothing to select on: keep the last epoch
        ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max",
                               save_top_k=1, save_weights_only=True, enable_version_counter=False)
        callbacks += [ckpt, EarlyStopping(monitor=monitor, mode="max", patience=ft.patience)]
    logger = False
    if run_id:
        from pytorch_lightning.loggers import MLFlowLogger

        from components.core.tracking import tracking_uri

        logger = MLFlowLogger(experiment_name=cfg.project.experiment, run_id=run_id,
                              tracking_uri=tracking_uri(cfg.project, paths.root), prefix=prefix)
    trainer = pl.Trainer(max_epochs=ft.max_epochs, min_steps=min_steps or None, accelerator=ft.accelerator,
                         devices=1, precision=resolve_precision(ft.precision, ft.accelerator), logger=logger,
                         callbacks=callbacks, gradient_clip_val=ft.grad_clip or None,
                         num_sanity_val_steps=0, enable_progress_bar=progress,
                         enable_model_summary=False, default_root_dir=str(ckpt_dir),
                         log_every_n_steps=max(1, min(50, steps_per_epoch)))
    return trainer, ckpt


def fit(trainer: pl.Trainer, module: pl.LightningModule, train_dl, val_dl, what: str) -> float:
    """trainer.fit; returns its wall seconds. Lightning swallows Ctrl-C: an interrupted fit is an
    error here (`what` names the training), so a half-trained model is never exported."""
    t0 = time.perf_counter()
    trainer.fit(module, train_dl, val_dl)
    wall = time.perf_counter() - t0
    if trainer.interrupted:
        raise EncoderflowError(f"{what} was interrupted; nothing was exported", stage="finetune")
    return wall


def restore_best(module: pl.LightningModule, ckpt: ModelCheckpoint | None) -> float | None:
    """Load the best checkpoint's weights into `module`; returns its monitored score (None when
    no checkpoint was kept: no val rows, or the module keeps its last epoch)."""
    if ckpt is None or not ckpt.best_model_path:
        return None
    state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    return float(ckpt.best_model_score) if ckpt.best_model_score is not None else None
