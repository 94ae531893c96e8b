"""MLM data: pack token streams into fixed-length blocks, mask them per batch, resumably.

- Packing: the [CLS] .. [SEP] documents of a split are concatenated into one stream and
  cut into seq_len blocks, so no position is padding except in the final block, which is
  padded ONCE (never dropped: no token is lost).
- Batches: micro-batch number b (global, counted from the start of training) is a pure
  function of (seed, b): its rows come from a seeded per-epoch permutation and its masking
  from a generator seeded with (seed, b). Resuming at optimizer step s therefore restarts
  exactly at micro-batch s * grad_accum, with the same rows and masks as an uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

IGNORE = -100  # label at positions that carry no loss (unmasked, special, padding)


def pack(stream: np.ndarray, seq_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a 1-D token stream into blocks [N, seq_len] plus a real-token mask [N, seq_len].

    >>> ids, mask = pack(np.arange(1, 8), 3, pad_id=0)
    >>> ids.tolist(), int(mask.sum())
    ([[1, 2, 3], [4, 5, 6], [7, 0, 0]], 7)
    """
    n = len(stream)
    blocks = -(-n // seq_len)  # ceil
    ids = np.full(blocks * seq_len, pad_id, dtype=np.int64)
    ids[:n] = stream
    mask = np.zeros(blocks * seq_len, dtype=bool)
    mask[:n] = True
    return ids.reshape(blocks, seq_len), mask.reshape(blocks, seq_len)


def token_stream(tokenized_dir: Path, splits: Sequence[str]) -> np.ndarray:
    """All input_ids of `splits` (in order) concatenated into one int64 array."""
    import datasets

    dd = datasets.load_from_disk(str(tokenized_dir))
    parts = []
    for split in splits:
        if split not in dd or len(dd[split]) == 0:
            continue
        col = dd[split].with_format("arrow")[:]["input_ids"].combine_chunks()  # ListArray
        parts.append(col.flatten().to_numpy(zero_copy_only=False).astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


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


class MLMBatches(torch.utils.data.IterableDataset):
    """Endless masked micro-batches; yields dicts input_ids / attention_mask / labels [B, T].

    `start()` (called when iteration begins, i.e. after a checkpoint was restored) gives
    how many micro-batches this rank already consumed. With `world` ranks, rank r takes
    global micro-batches k * world + r.
    """

    def __init__(self, ids: np.ndarray, attn: np.ndarray, batch_size: int, seed: int, masking: dict,
                 start: Callable[[], int] = lambda: 0, rank: int = 0, world: int = 1):
        self.ids, self.attn = torch.from_numpy(ids), torch.from_numpy(attn)
        self.batch_size, self.seed, self.masking = batch_size, seed, masking
        self.start, self.rank, self.world = start, rank, world
        self.per_epoch = max(1, len(ids) // batch_size)  # full batches per pass over the blocks

    def batch(self, b: int) -> dict:
        """Global micro-batch number b: a pure function of (seed, b)."""
        epoch, j = divmod(b, self.per_epoch)
        perm = torch.randperm(len(self.ids), generator=_gen(self.seed, 1, epoch))
        rows = perm[j * self.batch_size:(j + 1) * self.batch_size]
        ids, attn = self.ids[rows], self.attn[rows]  # [B, T]
        inputs, labels = mask_tokens(ids, attn, _gen(self.seed, 2, b), **self.masking)
        return {"input_ids": inputs, "attention_mask": attn, "labels": labels}

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
                    batch_size: int, seed: int, masking: dict, accum: int):
    """A LightningDataModule over packed blocks. The train loader resumes at
    trainer.global_step * accum micro-batches (read when iteration starts)."""
    import pytorch_lightning as pl

    class _MLMDataModule(pl.LightningDataModule):
        def train_dataloader(self):
            trainer = self.trainer
            ds = MLMBatches(*train, batch_size, seed, masking,
                            start=lambda: trainer.global_step * accum,
                            rank=trainer.global_rank, world=trainer.world_size)
            return torch.utils.data.DataLoader(ds, batch_size=None)

        def val_dataloader(self):
            return torch.utils.data.DataLoader(val_batches(*val, batch_size, seed, masking), batch_size=None)

    return _MLMDataModule()
