"""Labelled token sequences -> padded batches for classification fine-tuning.

Batches are padded to their own longest row (dynamic padding). Training batches
group rows of similar length (LengthGroupedBatches), so little of a batch is
padding; the order comes from a seeded generator, so the same seed gives the
same batches.

Distillation rows (SoftSeqs) also carry the teacher's probabilities and a gold
mask; they are shuffled as one stream, so a batch mixes gold rows with
unlabeled / augmented ones in their proportion in the transfer set.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from components.model.batching import pad_batch
from components.model.tokens import truncate


class LabelledSeqs(Dataset):
    """(token ids, label) pairs; ids are truncated to `max_length` on access.

    labels [N] int64 class ids, or [N, C] 0/1 multi-hot (multi_label: float32 rows)."""

    def __init__(self, seqs: list[list[int]], labels: np.ndarray, max_length: int):
        assert len(seqs) == len(labels)
        labels = np.asarray(labels)
        self.multi = labels.ndim == 2
        self.labels = labels.astype(np.float32) if self.multi else labels.astype(np.int64)
        self.seqs, self.max_length = seqs, max_length

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int):
        y = torch.from_numpy(self.labels[i]) if self.multi else int(self.labels[i])
        return truncate(self.seqs[i], self.max_length), y


class Collate:
    """[(ids, label)] -> {"input_ids" [B, T], "attention_mask" [B, T] bool, "labels" [B]}
    ("labels" [B, C] float32 multi-hot for multi_label rows)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items):
        ids, mask = pad_batch([s for s, _ in items], self.pad_id)
        ys = [y for _, y in items]
        labels = torch.stack(ys) if ys and isinstance(ys[0], torch.Tensor) else torch.tensor(ys, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class SoftSeqs(Dataset):
    """(token ids, teacher probabilities [C], gold label or -1, teacher vector [D] or None)
    rows for distillation."""

    def __init__(self, seqs: list[list[int]], soft: np.ndarray, labels: np.ndarray, max_length: int,
                 vectors: np.ndarray | None = None):
        assert len(seqs) == len(soft) == len(labels)
        assert vectors is None or len(vectors) == len(seqs)
        self.seqs, self.max_length = seqs, max_length
        self.soft = torch.as_tensor(np.asarray(soft, dtype=np.float32))  # [N, C]
        self.labels = np.asarray(labels, dtype=np.int64)  # [N], -1 = no gold label
        self.vectors = None if vectors is None else torch.as_tensor(np.asarray(vectors, dtype=np.float32))  # [N, D]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int):
        vec = None if self.vectors is None else self.vectors[i]
        return truncate(self.seqs[i], self.max_length), self.soft[i], int(self.labels[i]), vec


class SoftCollate:
    """[(ids, soft, label, vector)] -> Collate's keys + "soft" [B, C] float32, "has_gold" [B]
    bool and, when the rows carry teacher vectors, "vector" [B, D] float32.

    "labels" keeps -1 on rows without gold; the loss reads them only where has_gold.

    >>> b = SoftCollate(0)([([2, 5, 3], torch.tensor([0.9, 0.1]), 0, None),
    ...                     ([2, 3], torch.tensor([0.2, 0.8]), -1, None)])
    >>> b["soft"].shape, b["has_gold"].tolist(), b["labels"].tolist(), "vector" in b
    (torch.Size([2, 2]), [True, False], [0, -1], False)
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items):
        ids, mask = pad_batch([s for s, _, _, _ in items], self.pad_id)
        labels = torch.tensor([y for _, _, y, _ in items], dtype=torch.long)  # [B]
        out = {"input_ids": ids, "attention_mask": mask, "labels": labels,
               "soft": torch.stack([p for _, p, _, _ in items]),  # [B, C]
               "has_gold": labels >= 0}
        if items and items[0][3] is not None:
            out["vector"] = torch.stack([v for _, _, _, v in items])  # [B, D]
        return out


class LengthGroupedBatches(Sampler):
    """Shuffled batches of rows of similar length, so a padded batch is mostly tokens.

    Each epoch: a seeded permutation of the rows is cut into windows of `window` batches,
    each window is sorted by length (stable) and cut into batches, and the batch order is
    shuffled. Rows stay random across windows, so a batch is a random draw of similar-length
    rows. The batch count equals ceil(N / batch_size), like a plain shuffled loader. Epoch e
    uses seed + e: the same seed gives the same batches, and every epoch a new order.

    >>> s = LengthGroupedBatches([5, 1, 9, 2, 8, 3], batch_size=2, seed=0, window=3)
    >>> batches = list(s)
    >>> len(s), sorted(i for b in batches for i in b)  # every row once per epoch
    (3, [0, 1, 2, 3, 4, 5])
    >>> s.peek(0) == batches, s.peek(1) == batches  # seeded per epoch: same seed, same batches
    (True, False)
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, window: int = 50):
        self.lengths, self.batch_size, self.seed, self.window = list(lengths), batch_size, seed, window
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def peek(self, epoch: int) -> list[list[int]]:
        """The batches of `epoch` (row indices), without advancing."""
        g = torch.Generator().manual_seed(self.seed + epoch)
        perm = torch.randperm(len(self.lengths), generator=g).tolist()
        span, bs = self.batch_size * self.window, self.batch_size
        batches = []
        for start in range(0, len(perm), span):
            chunk = sorted(perm[start:start + span], key=self.lengths.__getitem__)
            batches += [chunk[i:i + bs] for i in range(0, len(chunk), bs)]
        return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]

    def __iter__(self):
        batches = self.peek(self.epoch)
        self.epoch += 1
        return iter(batches)


def loader(data: LabelledSeqs | SoftSeqs, batch_size: int, pad_id: int, shuffle: bool, seed: int) -> DataLoader:
    """Training (shuffle): length-grouped shuffled batches; otherwise the rows in order."""
    collate = SoftCollate(pad_id) if isinstance(data, SoftSeqs) else Collate(pad_id)
    if shuffle:
        lengths = [min(len(s), data.max_length) for s in data.seqs]
        return DataLoader(data, batch_sampler=LengthGroupedBatches(lengths, batch_size, seed),
                          collate_fn=collate, num_workers=0)
    return DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=0)


def pos_weights(targets: np.ndarray) -> torch.Tensor:
    """multi_label's finetune.class_weights: BCE pos_weight (negatives / positives) per label.

    >>> pos_weights(np.array([[1, 0], [0, 0], [0, 1], [0, 1]])).tolist()
    [3.0, 1.0]
    """
    pos = np.asarray(targets, dtype=np.float64).sum(axis=0)  # [C]
    return torch.tensor((len(targets) - pos) / np.maximum(pos, 1.0), dtype=torch.float32)


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights N / (C * count_c), so a balanced set gets all ones.

    >>> [round(w, 4) for w in class_weights(np.array([0, 0, 0, 1]), 2).tolist()]
    [0.6667, 2.0]
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = len(labels) / (n_classes * np.maximum(counts, 1.0))
    return torch.tensor(w, dtype=torch.float32)
