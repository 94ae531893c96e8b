"""MLM data: mask packed blocks per batch, resumably.

- Packing (model/packing.py): the [CLS] .. [SEP] documents of the pretraining splits are one
  token stream cut into seq_len blocks, viewed over the memory-mapped data/tokenized, so no
  position is padding except in the final block, which is padded ONCE (no token is lost).
- Batches: micro-batch number b (global, counted from the start of training) is a pure
  function of (seed, b): its rows come from a seeded per-epoch permutation and its masking
  from a generator seeded with (seed, b). Resuming at optimizer step s therefore restarts
  exactly at micro-batch s * grad_accum, with the same rows and masks as an uninterrupted run.
- Whole texts (pretrain.vector_weight > 0, `TextStream`): each micro-batch also carries
  `text_ids` / `text_mask` [B2, T2] and `text_vector` [B2, D]: B2 whole texts (not packed)
  and the teacher's base sentence vector of each, drawn like the blocks: a pure function
  of (seed, b), so resuming and DDP see the same rows as one unbroken process.
- Several processes (DDP, world = devices * num_nodes): optimizer step s is made of the
  world * grad_accum global micro-batches [s * G, (s + 1) * G), G = world * grad_accum;
  rank r takes numbers k * world + r. An epoch then holds whole steps only, so the blocks
  of one step come from one permutation and no block is seen twice in a step
  (`micro_per_epoch`). With devices 2 x batch b a step sees exactly the blocks that
  devices 1 x batch 2b sees (grad_accum 1); only the masks differ.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

IGNORE = -100  # label at positions that carry no loss (unmasked, special, padding)


def mask_tokens(ids: torch.Tensor, attn: torch.Tensor, gen: torch.Generator, rate: float,
                mask_id: int, special_ids: Sequence[int], vocab_size: int):
    """BERT masking: choose `rate` of the real, non-special tokens; of those 80% -> [MASK],
    10% -> a random non-special token, 10% unchanged. Returns (inputs, labels) [B, T];
    labels are IGNORE except at chosen positions. At least one position is chosen.
    """
    special = torch.tensor(list(special_ids), dtype=ids.dtype)
    eligible = attn & ~torch.isin(ids, special)  # [B, T]
    chosen = (torch.rand(ids.shape, generator=gen) < rate) & eligible
    if not chosen.any() and eligible.any():  # keep the loss defined on tiny batches
        flat = eligible.flatten().nonzero().squeeze(1)
        chosen.view(-1)[flat[torch.randint(len(flat), (1,), generator=gen)]] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    r = torch.rand(ids.shape, generator=gen)
    to_mask = chosen & (r < 0.8)
    to_random = chosen & (r >= 0.8) & (r < 0.9)
    normal = torch.arange(vocab_size, dtype=ids.dtype)
    normal = normal[~torch.isin(normal, special)]  # ids a random replacement may take
    random_tokens = normal[torch.randint(len(normal), ids.shape, generator=gen)]
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_tokens, inputs)
    return inputs, labels


def _gen(*keys: int) -> torch.Generator:
    """A torch generator seeded from a tuple of ints (well mixed, stable across runs)."""
    hi, lo = np.random.SeedSequence(list(keys)).generate_state(2, dtype=np.uint32)
    g = torch.Generator()
    g.manual_seed((int(hi) << 31) | int(lo))  # < 2**63
    return g


def micro_per_epoch(n_blocks: int, batch_size: int, world: int = 1, accum: int = 1) -> int:
    """Global micro-batches per pass over the blocks (one permutation).

    One process: every full batch (at least 1; the single-device schedule, kept as it was).
    Several: whole optimizer steps only (world * accum micro-batches each), so the
    micro-batches of a step never straddle two permutations and never share a block;
    0 when the blocks do not fill one global batch.

    >>> micro_per_epoch(100, 8), micro_per_epoch(100, 8, world=2), micro_per_epoch(100, 8, 2, accum=4)
    (12, 12, 8)
    >>> micro_per_epoch(10, 8, world=2)
    0
    """
    if world == 1:
        return max(1, n_blocks // batch_size)
    group = world * accum
    return n_blocks // (batch_size * group) * group


class TextStream:
    """Whole texts with a target vector each, for the vector term of pretraining.

    seqs: token ids per text ([CLS] .. [SEP], truncated to seq_len, at least one token);
    vectors [N, D] float32. `batch(b)` is micro-batch b's rows: slice b % per_epoch of a seeded
    per-epoch permutation, right-padded to their longest row.

    >>> s = TextStream([[2, 5, 3], [2, 3]], np.ones((2, 4), np.float32), batch_size=2, seed=0, pad_id=0)
    >>> b = s.batch(0); b["text_ids"].shape, b["text_mask"].sum().item(), b["text_vector"].shape
    (torch.Size([2, 3]), 5, torch.Size([2, 4]))
    """

    def __init__(self, seqs: list, vectors: np.ndarray, batch_size: int, seed: int, pad_id: int):
        if len(seqs) != len(vectors) or not len(seqs):
            raise ValueError(f"TextStream: {len(seqs)} texts and {len(vectors)} vectors (need the same, > 0)")
        self.seqs, self.vectors = seqs, np.asarray(vectors, dtype=np.float32)
        self.batch_size, self.seed, self.pad_id = min(batch_size, len(seqs)), seed, pad_id
        self.per_epoch = len(seqs) // self.batch_size
        self._perm: tuple[int | None, np.ndarray | None] = (None, None)

    def batch(self, b: int) -> dict:
        epoch, j = divmod(b, self.per_epoch)
        if self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(len(self.seqs), generator=_gen(self.seed, 4, epoch)).numpy())
        rows = self._perm[1][j * self.batch_size:(j + 1) * self.batch_size]
        width = max(len(self.seqs[r]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)  # [B2, T2]
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, :len(self.seqs[r])] = torch.as_tensor(self.seqs[r], dtype=torch.long)
            mask[i, :len(self.seqs[r])] = True
        return {"text_ids": ids, "text_mask": mask, "text_vector": torch.from_numpy(self.vectors[rows])}


class MLMBatches(torch.utils.data.IterableDataset):
    """Endless masked micro-batches; yields dicts input_ids / attention_mask / labels [B, T].

    `start()` (called when iteration begins, i.e. after a checkpoint was restored) gives
    how many micro-batches this rank already consumed. With `world` ranks, rank r takes
    global micro-batches k * world + r; `accum` (grad_accum) sizes an epoch in whole
    optimizer steps then (`micro_per_epoch`). `ids` / `attn` may be numpy arrays or any
    array-like that `x[rows]` indexes with an int64 numpy array of rows (row order kept).
    """

    def __init__(self, ids, attn, batch_size: int, seed: int, masking: dict,
                 start: Callable[[], int] = lambda: 0, rank: int = 0, world: int = 1, accum: int = 1,
                 texts: TextStream | None = None):
        self.ids, self.attn, self.texts = ids, attn, texts
        self.batch_size, self.seed, self.masking = batch_size, seed, masking
        self.start, self.rank, self.world = start, rank, world
        self.per_epoch = micro_per_epoch(len(ids), batch_size, world, accum)
        self._perm: tuple[int | None, np.ndarray | None] = (None, None)  # (epoch, its permutation)
        if self.per_epoch == 0:
            raise ValueError(f"{len(ids)} blocks do not fill one global batch of "
                             f"{batch_size * world * accum} (batch_size x world x accum)")

    def rows(self, b: int) -> np.ndarray:
        """The block numbers of global micro-batch b [B]: a pure function of (seed, b)."""
        epoch, j = divmod(b, self.per_epoch)
        if self._perm[0] != epoch:  # drawn once per epoch: O(blocks), 46 ms at 3.3M blocks
            self._perm = (epoch, torch.randperm(len(self.ids), generator=_gen(self.seed, 1, epoch)).numpy())
        return self._perm[1][j * self.batch_size:(j + 1) * self.batch_size]

    def batch(self, b: int) -> dict:
        """Global micro-batch number b: a pure function of (seed, b)."""
        rows = self.rows(b)
        ids, attn = torch.as_tensor(self.ids[rows]), torch.as_tensor(self.attn[rows])  # [B, T]
        inputs, labels = mask_tokens(ids, attn, _gen(self.seed, 2, b), **self.masking)
        out = {"input_ids": inputs, "attention_mask": attn, "labels": labels}
        return out if self.texts is None else {**out, **self.texts.batch(b)}

    def __iter__(self):
        k = self.start()
        while True:
            yield self.batch(k * self.world + self.rank)
            k += 1


def val_batches(ids: np.ndarray, attn: np.ndarray, batch_size: int, seed: int, masking: dict) -> list[dict]:
    """Fixed validation batches (same masks at every validation, so losses compare)."""
    out = []
    for b, i in enumerate(range(0, len(ids), batch_size)):
        x, a = torch.from_numpy(ids[i:i + batch_size]), torch.from_numpy(attn[i:i + batch_size])
        inputs, labels = mask_tokens(x, a, _gen(seed, 3, b), **masking)
        out.append({"input_ids": inputs, "attention_mask": a, "labels": labels})
    return out


def make_datamodule(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                    batch_size: int, seed: int, masking: dict, accum: int, texts: TextStream | None = None):
    """A LightningDataModule over packed blocks. The train loader resumes at
    trainer.global_step * accum micro-batches (read when iteration starts)."""
    import pytorch_lightning as pl

    class _MLMDataModule(pl.LightningDataModule):
        def train_dataloader(self):
            trainer = self.trainer
            ds = MLMBatches(*train, batch_size, seed, masking,
                            start=lambda: trainer.global_step * accum,
                            rank=trainer.global_rank, world=trainer.world_size, accum=accum, texts=texts)
            return torch.utils.data.DataLoader(ds, batch_size=None)

        def val_dataloader(self):
            # Several ranks: each validates on all of val (no DistributedSampler) in batches of the
            # global micro-batch, so val/loss is what one process at that batch size reports.
            size = batch_size * self.trainer.world_size
            return torch.utils.data.DataLoader(val_batches(*val, size, seed, masking), batch_size=None)

    return _MLMDataModule()
