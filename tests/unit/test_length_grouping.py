"""cls_data.LengthGroupedBatches: the training batches of fine-tuning."""

from __future__ import annotations

import numpy as np
import torch

from components.model import cls_data


def _padding(batches, lengths):
    """Share of a padded batch that is padding, over all batches."""
    cells = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / cells


def test_every_row_once_per_epoch_and_less_padding_than_a_plain_shuffle():
    lengths = np.random.default_rng(0).integers(3, 120, size=1000).tolist()
    s = cls_data.LengthGroupedBatches(lengths, batch_size=32, seed=7, window=10)
    first, second = list(s), list(s)
    for batches in (first, second):
        assert sorted(i for b in batches for i in b) == list(range(1000))
        assert len(batches) == len(s) == 32  # ceil(1000 / 32), like a plain loader
    assert first != second  # a new order every epoch
    plain = torch.randperm(1000, generator=torch.Generator().manual_seed(7)).tolist()
    plain_batches = [plain[i:i + 32] for i in range(0, 1000, 32)]
    assert _padding(first, lengths) < 0.5 * _padding(plain_batches, lengths)


def test_same_seed_same_batches_other_seed_other_batches():
    lengths = list(range(1, 200))
    a = cls_data.LengthGroupedBatches(lengths, 8, seed=1)
    b = cls_data.LengthGroupedBatches(lengths, 8, seed=1)
    c = cls_data.LengthGroupedBatches(lengths, 8, seed=2)
    assert list(a) == list(b) and a.peek(0) != c.peek(0)
    assert list(a) == b.peek(1)  # epoch e is peek(e)


def test_the_training_loader_uses_it_and_validation_keeps_row_order():
    seqs = [[2] + [5] * n + [3] for n in (9, 1, 7, 2, 8, 3)]
    data = cls_data.LabelledSeqs(seqs, np.zeros(6, dtype=np.int64), max_length=6)
    train = cls_data.loader(data, 2, 0, True, 0)
    assert isinstance(train.batch_sampler, cls_data.LengthGroupedBatches)
    assert train.batch_sampler.lengths == [6, 3, 6, 4, 6, 5]  # truncated lengths
    widths = [b["input_ids"].shape[1] for b in train]
    assert sum(widths) <= 6 + 6 + 5  # similar lengths share a batch
    val = cls_data.loader(data, 4, 0, False, 0)
    assert [b["input_ids"].shape[0] for b in val] == [4, 2]
    assert torch.equal(next(iter(val))["input_ids"][1, :3], torch.tensor([2, 5, 3]))
