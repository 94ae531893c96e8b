"""pretrain stage: masked-language-model pretraining of the encoder with Lightning.

reads  data/tokenized (train + unlabeled for training, val for the MLM val loss only),
       models/tokenizer/tokenizer.json, and with pretrain.vector_weight > 0
       data/teacher/base.parquet (the teacher's base sentence vector of every transfer text:
       the vector term of general distillation, model/lit_mlm.py)
writes models/pretrained/ (save_encoder), reports/pretrain.json, reports/pretrain_curve.csv

The run is step-bound (pretrain.max_steps; early stopping on the val loss may end it
sooner, deterministically). pretrain.max_minutes is an optional wall-clock cap, off (0)
by default: a run stopped by it depends on the machine's speed, so it is not
reproducible step for step; it says so in one warning line and in
reports/pretrain.json (`stopped_by: "max_minutes"`).

Resuming: checkpoints live in checkpoints/pretrain/<key>, where <key> hashes every param
that changes the result (model, pretrain except checkpoint_every, project.seed), the
tokenizer and tokenized data bytes, and the stage's code (the files dvc.yaml lists as its
code deps). If <key>/last.ckpt exists the stage resumes from it (weights, optimizer,
scheduler, step, data position, time used) and logs into the same MLflow run (its id is
kept in <key>/mlflow_run_id). A run that finishes deletes <key>/: a checkpoint only ever
resumes an interrupted run of the same code, config and data, so `dvc repro -f` (or
`encoderflow run --force`) always retrains from scratch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from components.core.config import Params
from components.core.errors import ConfigError, DataError, first_line
from components.core.paths import Paths
from components.model.precision import resolve_precision
from components.stages import table

STAGE = "pretrain"
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
FINAL_LOSS_WINDOW = 20  # final train loss = mean over the last steps (one step is noisy)


def file_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(f"{path.parent.name}/{path.name}".encode())  # split folder + file, not the project path
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def code_digest() -> str:
    """Hash of the code this stage runs: the files dvc.yaml lists as its code deps."""
    from components.stages import dvcgraph

    return file_digest([dvcgraph.ROOT / f for f in dvcgraph.code_deps(table.get(STAGE))])


def run_key(cfg: Params, paths: Paths) -> str:
    """Checkpoint folder name: 16 hex of a hash of what determines the result."""
    pre = dataclasses.asdict(cfg.pretrain)
    pre.pop("checkpoint_every")
    data = sorted(p for p in paths.tokenized.rglob("*") if p.is_file() and p.name != "state.json")
    if cfg.pretrain.vector_weight > 0 and paths.teacher_base.is_file():
        data.append(paths.teacher_base)
    blob = json.dumps({"model": dataclasses.asdict(cfg.model), "pretrain": pre, "seed": cfg.project.seed,
                       "tokenizer": file_digest([paths.tokenizer]), "data": file_digest(data),
                       "code": code_digest()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def verify_checkpoint(path: Path) -> int:
    """Load `path` safely (weights_only) and return its global step; one-line DataError if broken."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
            raise KeyError("no state_dict")
        return int(ckpt["global_step"])
    except Exception as e:  # truncated zip, unpickling error, missing keys
        raise DataError(f"{path}: corrupt or truncated checkpoint ({first_line(e, 160)}); delete {path.parent} "
                        "to start pretraining over", stage=STAGE) from None


def _atomic_checkpoint_io():
    """Lightning's TorchCheckpointIO, but a kill mid-write never leaves a truncated file:
    write `.<name>.tmp`, then rename over the target."""
    import os

    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            path = Path(path)
            tmp = path.with_name(f".{path.name}.tmp")
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)

    return AtomicCheckpointIO()


def load_data(cfg: Params, paths: Paths):
    """(tokenizer info, packed train blocks, packed val blocks).

    Train blocks are (ids, attn) views over the memory-mapped token stream of train +
    unlabeled (+ corpus, with ingest.unlabeled_source) (model/packing.py): nothing is read
    until rows are indexed, so the corpus may be bigger than RAM. Val blocks (at most
    pretrain.val_sequences, a seeded subsample) are numpy arrays in memory.
    """
    import numpy as np

    from components.core.paths import CORPUS
    from components.model.io import tokenizer_vocab_size
    from components.model.packing import PackedBlocks

    for need in (paths.tokenizer, paths.tokenized):
        if not need.exists():
            raise DataError(f"{need}: not found (run the tokenize stage first)", stage=STAGE)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(paths.tokenizer))
    ids = {name: tok.token_to_id(name) for name in SPECIAL}
    if None in ids.values():
        missing = ", ".join(k for k, v in ids.items() if v is None)
        raise DataError(f"{paths.tokenizer}: special tokens missing: {missing}", stage=STAGE)
    specials = sorted(set(ids.values()) | {i for i, t in tok.get_added_tokens_decoder().items() if t.special})
    p = cfg.pretrain
    blocks = PackedBlocks.from_tokenized(paths.tokenized, ("train", "unlabeled", CORPUS), p.seq_len, ids["[PAD]"])
    if len(blocks) == 0:
        raise DataError(f"{paths.tokenized}: train + unlabeled splits hold no tokens", stage=STAGE)
    train = (blocks.ids, blocks.attn)
    val_blocks = PackedBlocks.from_tokenized(paths.tokenized, ("val",), p.seq_len, ids["[PAD]"])
    keep = np.sort(np.random.default_rng(cfg.project.seed).permutation(len(val_blocks))[:p.val_sequences])
    val = (val_blocks.ids[keep], val_blocks.attn[keep])
    info = {"vocab_size": tokenizer_vocab_size(paths.tokenizer), "pad_id": ids["[PAD]"],
            "mask_id": ids["[MASK]"], "special_ids": specials}
    return info, train, val


def load_texts(cfg: Params, paths: Paths, tok_file: Path, pad_id: int):
    """data.TextStream of the teacher's base vectors (pretrain.vector_weight > 0), or None.

    The texts are tokenized here with our tokenizer ([CLS] .. [SEP], cut to pretrain.seq_len
    keeping the final [SEP]), so the stream sees the ids finetune will see."""
    p = cfg.pretrain
    if p.vector_weight <= 0:
        return None
    import numpy as np
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer

    from components.model.tokens import truncate
    from components.model.data import TextStream

    where = paths.teacher_base.relative_to(paths.root) if paths.root in paths.teacher_base.parents \
        else paths.teacher_base
    if not paths.teacher_base.is_file():
        raise DataError(f"{where}: not found: pretrain.vector_weight is {p.vector_weight:g} but there are no "
                        "teacher vectors (run the teacher stage with teacher.base: true, or set "
                        "pretrain.vector_weight: 0)", stage=STAGE)
    table = pq.read_table(paths.teacher_base)
    if table.num_rows == 0:
        raise DataError(f"{where}: 0 rows: pretrain.vector_weight is {p.vector_weight:g} but the teacher wrote no "
                        "base vectors (teacher.base: false?); set pretrain.vector_weight: 0", stage=STAGE)
    vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)  # [N, D]
    if not np.isfinite(vectors).all():
        raise DataError(f"{where}: non-finite values in the vector column", stage=STAGE)
    tok = Tokenizer.from_file(str(tok_file))
    tok.no_padding()
    tok.no_truncation()
    texts = table.column("text").to_pylist()
    seqs = [np.asarray(truncate(e.ids, p.seq_len), dtype=np.int64) for e in tok.encode_batch_fast(texts)]
    return TextStream(seqs, vectors, p.vector_batch_size, cfg.project.seed, pad_id)


def run(cfg: Params, paths: Paths) -> dict:
    return train(cfg, paths)


def train(cfg: Params, paths: Paths, callbacks: tuple = (), trainer_overrides: dict | None = None) -> dict:
    """The stage. `callbacks` / `trainer_overrides` (e.g. fast_dev_run) are for tests;
    with overrides the run is a dev run: no checkpoints are kept and nothing resumes.

    Several processes (pretrain.devices x num_nodes > 1, strategy ddp; model/distributed.py):
    every rank runs this function, trains on its own shard of each step (model/data.py) and
    reads the same last.ckpt on resume; rank 0 alone opens the MLflow run, writes the
    checkpoints (Lightning) and the outputs. The other ranks return {}."""
    from datetime import timedelta

    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
    from pytorch_lightning.loggers import MLFlowLogger

    from components.core import tracking
    from components.model import distributed
    from components.model.data import make_datamodule
    from components.model.encoder import EncoderConfig
    from components.model.lit_mlm import LitMLM

    p, dev = cfg.pretrain, bool(trainer_overrides)
    if cfg.model.family == "transformer" and p.seq_len > cfg.model.max_length:
        raise ConfigError(f"pretrain.seq_len: expected <= model.max_length ({cfg.model.max_length}), got {p.seq_len}")
    info, train_blocks, val_blocks = load_data(cfg, paths)
    texts = load_texts(cfg, paths, paths.tokenizer, info["pad_id"])
    precision = resolve_precision(p.precision, p.accelerator)
    enc_cfg = EncoderConfig.from_params(cfg.model, info["vocab_size"], info["pad_id"], dropout=p.dropout)
    masking = {"rate": p.mask_rate, "mask_id": info["mask_id"], "special_ids": info["special_ids"],
               "vocab_size": info["vocab_size"]}
    ckpt_dir = paths.checkpoints / STAGE / run_key(cfg, paths)
    last = ckpt_dir / "last.ckpt"
    resume_step = verify_checkpoint(last) if last.is_file() and not dev else None

    pl.seed_everything(cfg.project.seed, workers=True, verbose=False)
    model = LitMLM(enc_cfg, lr=p.lr, beta2=p.beta2, weight_decay=p.weight_decay, max_steps=p.max_steps,
                   warmup_fraction=p.warmup_fraction, schedule=p.schedule, seed=cfg.project.seed,
                   vector_weight=p.vector_weight if texts is not None else 0.0,
                   vector_dim=texts.vectors.shape[1] if texts is not None else 0)
    if p.embeddings == "model2vec":
        _start_from_model2vec(model.encoder, paths)
    n_params = sum(t.numel() for t in model.encoder.parameters())
    dm = make_datamodule(train_blocks, val_blocks, p.batch_size, cfg.project.seed, masking, p.grad_accum, texts)
    has_val = len(val_blocks[0]) > 0
    cbs = list(callbacks) + ([] if dev else [ModelCheckpoint(
        dirpath=ckpt_dir, every_n_train_steps=p.checkpoint_every, save_last=True, save_top_k=0,
        enable_version_counter=False)])
    early = EarlyStopping("val/loss", patience=p.patience, mode="min") if has_val else None
    cbs += [early] if early else []
    kwargs = dict(
        max_steps=p.max_steps, max_time=timedelta(minutes=p.max_minutes) if p.max_minutes else None,
        accelerator=p.accelerator, devices=p.devices, num_nodes=p.num_nodes, strategy=p.strategy,
        precision=precision, accumulate_grad_batches=p.grad_accum,
        gradient_clip_val=p.grad_clip or None, val_check_interval=p.val_every * p.grad_accum,
        check_val_every_n_epoch=None, limit_val_batches=1.0 if has_val else 0, num_sanity_val_steps=0,
        # the MLflow logger joins on rank 0 once its run is open (below); every rank validates on
        # all val batches (no DistributedSampler), so val/loss is the single-process value
        logger=False, use_distributed_sampler=False, callbacks=cbs, deterministic="warn", log_every_n_steps=1,
        enable_progress_bar=True, enable_model_summary=False, default_root_dir=str(ckpt_dir),
        plugins=[_atomic_checkpoint_io()])
    kwargs.update(trainer_overrides or {})
    # Built before anything is written: Lightning's refusals and ours are one-line errors.
    trainer = distributed.build_trainer(kwargs)
    distributed.check_launch(trainer, p.batch_size, p.grad_accum, len(train_blocks[0]), str(paths.tokenized))
    ckpt_path = str(last) if resume_step is not None else None
    if trainer.global_rank != 0:  # another rank of a multi-process run: train, write nothing
        _fit(trainer, model, dm, ckpt_path)
        return {}

    run_id = _stored_run_id(cfg, paths, ckpt_dir) if resume_step is not None else None
    with tracking.stage_run(cfg, STAGE, paths.root, table.get(STAGE).params, run_id=run_id) as run:
        if not dev:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            (ckpt_dir / "mlflow_run_id").write_text(run.info.run_id)
        t0 = time.perf_counter()
        if resume_step is not None:
            print(f"pretrain: resuming from {last} at step {resume_step}")
        if kwargs["logger"] is False and not trainer.fast_dev_run:  # (as Lightning: dev runs log nothing)
            trainer.logger = MLFlowLogger(experiment_name=cfg.project.experiment, run_id=run.info.run_id,
                                          tracking_uri=tracking.tracking_uri(cfg.project, paths.root),
                                          log_model=False)
        fit_s = _fit(trainer, model, dm, ckpt_path)  # the compute time the overhead benchmark compares against
        stopped_by = stop_reason(trainer.global_step, p.max_steps, early, p.max_minutes)
        if stopped_by == "max_minutes":
            print(f"warning: pretrain: stopped by pretrain.max_minutes={p.max_minutes:g} at step "
                  f"{trainer.global_step} of {p.max_steps}: this run depends on the machine's speed, "
                  "so `dvc repro -f` will not reproduce it step for step", file=sys.stderr, flush=True)
        wall = time.perf_counter() - t0
        summary = _finish(cfg, paths, model, val_blocks, masking, precision, n_params, run.info.run_id,
                          wall, model.tokens_seen - model.tokens_at_start, stopped_by, fit_s,
                          val_batch_size=p.batch_size * trainer.world_size)  # as in training (data.py)
        if not dev:  # finished: the checkpoints only ever resume an interrupted run
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    return summary


def _start_from_model2vec(encoder, paths: Paths) -> None:
    """pretrain.embeddings: model2vec: our token embeddings start from the teacher's model2vec
    table (model/teacher_base.transfer_embeddings); tokens it does not match keep their init."""
    import torch
    from tokenizers import Tokenizer

    from components.model.teacher_base import transfer_embeddings

    if not (paths.model2vec / "model.safetensors").is_file():
        raise DataError(f"{paths.model2vec}: no model2vec table for pretrain.embeddings: model2vec (run the "
                        "teacher stage with teacher.base: true)", stage=STAGE)
    table, matched = transfer_embeddings(paths.model2vec, Tokenizer.from_file(str(paths.tokenizer)),
                                         encoder.cfg.hidden_size)
    weight = encoder.input_embedding.weight  # [V, H]
    with torch.no_grad():
        keep = torch.from_numpy(matched)
        weight[keep] = torch.from_numpy(table[matched]).to(weight.dtype)
    print(f"pretrain: {int(matched.sum())} of {len(matched)} token embeddings start from models/model2vec",
          flush=True)


def _fit(trainer, model, dm, ckpt_path: str | None) -> float:
    """trainer.fit (resuming from `ckpt_path` when given); returns its seconds."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|IterableDataset"
                                "|isinstance\\(treespec, LeafSpec\\)).*")
        t_fit = time.perf_counter()
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
        return time.perf_counter() - t_fit


def stop_reason(step: int, max_steps: int, early, max_minutes: float) -> str:
    """Why training ended: "max_steps" | "early_stopping" | "max_minutes".

    >>> stop_reason(10, 10, None, 0.0)
    'max_steps'
    """
    if step >= max_steps:
        return "max_steps"
    if early is not None and early.wait_count >= early.patience:
        return "early_stopping"
    return "max_minutes" if max_minutes else "interrupted"


def _stored_run_id(cfg: Params, paths: Paths, ckpt_dir: Path) -> str | None:
    """The MLflow run of an earlier attempt with the same key, if the store still has it."""
    path = ckpt_dir / "mlflow_run_id"
    if not path.is_file():
        return None
    import mlflow

    from components.core import tracking

    try:
        mlflow.set_tracking_uri(tracking.tracking_uri(cfg.project, paths.root))
        return mlflow.get_run(path.read_text().strip()).info.run_id
    except Exception:  # deleted run or a different store: start a fresh run
        return None


def _load_weights(model, path: Path) -> None:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["state_dict"])
    model.on_load_checkpoint(ckpt)


def _val_loss(model, val_blocks, masking, batch_size: int, seed: int) -> float | None:
    import torch

    from components.model.data import val_batches

    batches = val_batches(*val_blocks, batch_size, seed, masking)
    if not batches:
        return None
    model.cpu().eval()
    with torch.no_grad():
        losses = [float(model.mlm_loss(b)) for b in batches]
    return sum(losses) / len(losses)


def _finish(cfg, paths, model, val_blocks, masking, precision, n_params, run_id, wall, tokens, stopped_by,
            fit_s: float = 0.0, val_batch_size: int | None = None) -> dict:
    """Export the encoder and write reports/pretrain.json + reports/pretrain_curve.csv."""
    import mlflow

    from components.core.atomic import atomic_dir, write_json, write_text
    from components.model.io import save_encoder

    t0 = time.perf_counter()  # time.compute_s = fit + final val loss + export + reports
    curve = model.curve
    tail = [row[1] for row in curve[-FINAL_LOSS_WINDOW:]]
    summary = {
        "steps": int(curve[-1][0]) if curve else 0,
        "tokens_seen": int(model.tokens_seen),
        "final_train_loss": round(sum(tail) / len(tail), 5) if tail else None,
        "final_val_loss": _round(_val_loss(model, val_blocks, masking, val_batch_size or cfg.pretrain.batch_size,
                                              cfg.project.seed)),
        "tokens_per_s": round(tokens / wall, 1) if tokens and wall > 0 else None,
        "wall_seconds": round(wall, 2),
        "precision": precision,
        "params": int(n_params),
        "mlflow_run_id": run_id,
        "stopped_by": stopped_by,
        "vector_weight": float(model.vector_weight),  # 0: MLM alone (the vector term is off or has no input)
    }
    with atomic_dir(paths.pretrained) as tmp:
        save_encoder(model.encoder, tmp, paths.tokenizer,
                     extra={"pretrain": {k: summary[k] for k in ("steps", "tokens_seen", "final_val_loss")}})
    write_json(paths.report(STAGE), summary)
    csv = "step,loss,lr\n" + "".join(f"{int(s)},{loss:.6f},{lr:.8g}\n" for s, loss, lr in curve)
    write_text(paths.reports / "pretrain_curve.csv", csv)
    compute_s = fit_s + time.perf_counter() - t0
    mlflow.log_metrics({**{k: float(summary[k]) for k in ("final_train_loss", "final_val_loss", "tokens_per_s")
                           if summary[k] is not None}, "time.compute_s": compute_s})
    mlflow.set_tags({"encoderflow.precision": precision, "encoderflow.encoder_params": str(n_params)})
    return summary


def _round(x):
    return None if x is None else round(x, 5)
