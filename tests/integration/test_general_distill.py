"""General distillation in pretraining: the whole-text stream, the vector term, its errors.

The stream is a pure function of (seed, micro-batch), like the MLM blocks; the LitMLM loss
adds vector_weight * (1 - cos) on it; the pretrain stage reads data/teacher/base.parquet and
refuses, in one line, a vector weight with no vectors to distil. Real Lightning runs (tiny).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.core.errors import DataError
from components.model.data import MLMBatches, TextStream
from components.model.lit_mlm import vector_loss


def _stream(n=10, dim=4, batch=3, seed=0):
    rng = np.random.default_rng(0)
    seqs = [np.arange(2, 2 + rng.integers(1, 6)) for _ in range(n)]
    return TextStream(seqs, rng.normal(size=(n, dim)).astype(np.float32), batch, seed, pad_id=0)


def test_text_stream_is_a_pure_function_of_seed_and_batch_number():
    a, b = _stream(), _stream()
    for k in (0, 1, 5, 9, 3):  # any order: resuming mid-epoch draws the same rows
        x, y = a.batch(k), b.batch(k)
        assert all(torch.equal(x[key], y[key]) for key in x)
    assert not torch.equal(_stream(seed=1).batch(0)["text_vector"], a.batch(0)["text_vector"])


def test_text_stream_covers_every_row_once_per_epoch_and_pads_right():
    s = _stream(n=9, batch=3)
    rows = [tuple(map(tuple, s.batch(k)["text_vector"].tolist())) for k in range(3)]
    seen = {r for batch in rows for r in batch}
    assert len(seen) == 9  # 3 batches of 3 = one epoch, no row twice
    b = s.batch(0)
    lengths = b["text_mask"].sum(1)
    for ids, mask, n in zip(b["text_ids"], b["text_mask"], lengths):
        assert mask[:n].all() and not mask[n:].any() and (ids[n:] == 0).all()


def test_mlm_batches_carry_the_text_stream_by_global_batch_number():
    ids = np.arange(4 * 8 * 6).reshape(24, 8) % 50 + 5
    attn = np.ones_like(ids, dtype=bool)
    masking = {"rate": 0.2, "mask_id": 4, "special_ids": [0, 1, 2, 3, 4], "vocab_size": 60}
    texts = _stream()
    batches = MLMBatches(ids, attn, 4, 0, masking, texts=texts)
    b = batches.batch(2)
    assert set(b) >= {"input_ids", "labels", "text_ids", "text_mask", "text_vector"}
    assert torch.equal(b["text_vector"], texts.batch(2)["text_vector"])


def test_vector_loss_is_direction_only():
    v = torch.tensor([[1.0, 2.0], [0.0, -3.0]])
    assert vector_loss(3 * v, v).item() == pytest.approx(0.0, abs=1e-6)
    assert vector_loss(-v, v).item() == pytest.approx(2.0, abs=1e-6)


def _base(paths, texts, dim=6):
    from components.data.transfer_write import write_vectors

    paths.teacher_base.parent.mkdir(parents=True, exist_ok=True)
    vecs = np.random.default_rng(0).normal(size=(len(texts), dim)).astype(np.float32)
    write_vectors(paths.teacher_base, texts, vecs)


def test_pretrain_learns_the_vector_term_and_exports_no_vector_head(tiny_project):
    from builders.mlm_project import WORDS, tiny_cfg

    from components.model.io import load_encoder
    from components.stages import pretrain

    rng = np.random.default_rng(1)
    _base(tiny_project, [" ".join(rng.choice(WORDS, 6)) for _ in range(40)])
    logged = []

    import pytorch_lightning as pl

    class Spy(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            logged.append(float(trainer.callback_metrics["train/vector_loss"]))

    cfg = tiny_cfg(vector_weight=1.0, vector_batch_size=8, max_steps=12, lr=5e-3)
    pretrain.train(cfg, tiny_project, callbacks=(Spy(),))
    assert len(logged) == 12 and np.mean(logged[-3:]) < np.mean(logged[:3])  # it learns to point the same way
    enc = load_encoder(tiny_project.pretrained)  # strict load: no vector head in the export
    assert not any("vector" in k for k in enc.state_dict())


def test_pretrain_refuses_a_vector_weight_without_vectors(tiny_project):
    from builders.mlm_project import tiny_cfg

    from components.stages import pretrain

    with pytest.raises(DataError, match=r"base.parquet: not found: pretrain.vector_weight is 1 .*vector_weight: 0"):
        pretrain.train(tiny_cfg(vector_weight=1.0), tiny_project)
    _base(tiny_project, [])
    with pytest.raises(DataError, match=r"base.parquet: 0 rows: pretrain.vector_weight is 1"):
        pretrain.train(tiny_cfg(vector_weight=1.0), tiny_project)
    assert not tiny_project.pretrained.exists()  # nothing written


@pytest.fixture
def tiny_project(project, tmp_path_factory):
    import shutil

    from builders.mlm_project import write_tiny_project

    from components.core.paths import Paths

    src = write_tiny_project(tmp_path_factory.mktemp("tiny_vec"))
    for sub in ("models", "data"):
        shutil.copytree(src.root / sub, project / sub)
    return Paths.at(project)
