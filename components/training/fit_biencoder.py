"""Training of the pair task's bi-encoder (finetune.bi_encoder), next to the cross-encoder.

    bi = fit_biencoder(cfg, paths, start(cfg, paths, init), labels, run_id=run_id)
    bi.biencoder.embed(["a fine film"])   # unit vectors; bi.report -> reports/finetune.json

Rows: the POSITIVE pairs of train (label == finetune.bi_encoder.positive), each side
tokenized alone ("[CLS] text [SEP]", truncated to max_length); a batch of B pairs is its own
set of negatives (model/lit_biencoder.py: the loss, the LightningModule and its val MRR).
Selected on val MRR by the shared trainer (training/trainer.py), with finetune's lr /
epochs / batch size / patience.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from components.core.config import Params
from components.core.errors import DataError
from components.core.paths import Paths
from components.training.trainer import build_trainer, fit, restore_best


@dataclass
class BiEncoderFit:
    biencoder: object  # model/biencoder.BiEncoder
    report: dict = field(default_factory=dict)  # reports/finetune.json's "bi_encoder" block


def fit_biencoder(cfg: Params, paths: Paths, start, labels: list[str], *, run_id: str | None = None,
                  progress: bool = True) -> BiEncoderFit:
    """Train the bi-encoder from `start` = (backbone, tokenizer, pad_id, max_length, kind), a fresh
    starting point as training/start.start returns it, on data/prepared's train / val positive
    pairs; the best epoch by val MRR (the last one without val positives)."""
    from components.data.pairs import positive_id, positives, retrieval_set
    from components.data.splits import text_split
    from components.model.biencoder import BiEncoder, BiEncoderNet
    from components.model.lit_biencoder import LitBiEncoder, PairCollate, TextCollate
    from components.model.tokens import encode

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
    rows = list(zip(encode(tok, [a for a, _ in train], max_len), encode(tok, [b for _, b in train], max_len)))
    queries, candidates, relevant = retrieval_set(val)
    gen = torch.Generator().manual_seed(cfg.project.seed)
    # drop_last: a last batch of 1 pair has no negative, and its loss would be 0
    train_dl = DataLoader(rows, batch_size=ft.batch_size, shuffle=True, generator=gen,
                          collate_fn=PairCollate(pad_id), drop_last=len(rows) % ft.batch_size == 1)
    val_dl = DataLoader(encode(tok, queries + candidates, max_len), batch_size=ft.batch_size,
                        collate_fn=TextCollate(pad_id)) if val else None
    steps = len(train_dl) * ft.max_epochs
    net = BiEncoderNet(backbone).train()
    module = LitBiEncoder(net, temperature=bi.temperature, lr=ft.lr, weight_decay=ft.weight_decay,
                          layer_lr_decay=ft.layer_lr_decay, warmup_fraction=ft.warmup_fraction,
                          total_steps=steps, val_queries=len(queries), val_relevant=relevant)
    trainer, ckpt = build_trainer(cfg, paths, ft, tag="bi_encoder", monitor="val_mrr", has_val=val_dl is not None,
                                  steps_per_epoch=len(train_dl), run_id=run_id, prefix="bi_encoder",
                                  progress=progress)
    wall = fit(trainer, module, train_dl, val_dl, "bi-encoder training")
    best = restore_best(module, ckpt)
    net = module.net.cpu().float().eval()
    meta = {"positive": bi.positive, "temperature": bi.temperature}
    report = {"positive": bi.positive, "temperature": bi.temperature, "train_pairs": len(rows),
              "val_queries": len(queries), "best_val_mrr": best, "epochs": trainer.current_epoch,
              "steps": trainer.global_step, "wall_s": round(wall, 2)}
    return BiEncoderFit(BiEncoder(net, tok, max_len, pad_id, meta), report)
