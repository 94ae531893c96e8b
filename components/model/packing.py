"""Packed MLM blocks as a view over the memory-mapped token stream of data/tokenized.

The [CLS] .. [SEP] documents of the chosen splits, in order (train, unlabeled, then the
corpus when there is one), are one token stream cut into seq_len blocks: no position is
padding except in the final block, which is padded ONCE (never dropped: no token is lost).

Nothing is copied to build it. Each Arrow shard of a split (the `save_to_disk` layout that
`datasets.load_from_disk` reads: dataset_dict.json, <split>/state.json, IPC stream files) is
memory-mapped with MADV_RANDOM, and each record batch's input_ids values are a zero-copy
int32 numpy view into that map (`parts`). Block i is stream[i * T:(i + 1) * T], gathered
from the one or two parts it spans when it is indexed. So the blocks of a corpus bigger
than RAM cost no memory up front, and indexing a batch of rows reads just the pages of those
rows (MADV_RANDOM: no read-around; the pages are page cache the kernel may drop, shared by
the DDP ranks of one machine).

    blocks = PackedBlocks.from_tokenized(Path("data/tokenized"), ("train", "unlabeled"), 128, pad_id=0)
    blocks.ids[rows], blocks.attn[rows]   # int64 [R, 128], bool [R, 128] numpy arrays

`ids` / `attn` are array-likes as MLMBatches needs them (len, x[rows] for an int array of
rows, x[i], x[a:b], np.asarray(x)); their values equal the old in-memory packing
(`tests/test_corpus.py` checks that on random streams).
"""

from __future__ import annotations

import bisect
import json
import mmap
from pathlib import Path
from typing import Sequence

import numpy as np


# Each gathered row maps about 64-128 KiB of token file (the kernel's fault-around maps the
# cached pages next to the one read, even under MADV_RANDOM): releasing every 256 rows (8
# micro-batches of 32) keeps that part of the RSS near 30 MiB, whatever the corpus size.
RELEASE_EVERY_ROWS = 256


class PackedBlocks:
    """[N, seq_len] blocks over `parts` (1-D integer arrays, concatenated in order)."""

    def __init__(self, parts: Sequence[np.ndarray], seq_len: int, pad_id: int, keep=None):
        self.parts = [p for p in parts if len(p)]
        self.seq_len, self.pad_id = seq_len, pad_id
        lengths = [len(p) for p in self.parts]
        self.starts = [0, *np.cumsum(lengths, dtype=np.int64).tolist()]  # part k = stream[starts[k]:starts[k+1]]
        self.n_tokens = self.starts[-1]
        self.n_blocks = -(-self.n_tokens // seq_len)  # ceil
        self.ids, self.attn = _View(self, "ids"), _View(self, "attn")
        self.maps = keep or []  # the memory maps the parts point into (kept open)
        self._gathered = 0  # rows gathered since the maps' pages were last released

    @classmethod
    def from_tokenized(cls, tokenized_dir: Path, splits: Sequence[str], seq_len: int, pad_id: int
                       ) -> "PackedBlocks":
        """The input_ids of `splits` (missing or empty ones are skipped) of a tokenized DatasetDict."""
        import pyarrow as pa

        tokenized_dir = Path(tokenized_dir)
        if not (tokenized_dir / "dataset_dict.json").is_file():
            from components.core.errors import DataError

            raise DataError(f"{tokenized_dir}: not a tokenized dataset (no dataset_dict.json; run the "
                            "tokenize stage first)", stage="pretrain")
        present = json.loads((tokenized_dir / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        maps, parts = [], []
        for split in (s for s in splits if s in present):
            state = json.loads((tokenized_dir / split / "state.json").read_text(encoding="utf-8"))
            for entry in state["_data_files"]:
                mm = _map(tokenized_dir / split / entry["filename"])
                maps.append(mm)
                for batch in pa.ipc.open_stream(pa.py_buffer(mm)):  # reads message headers only
                    parts.append(batch.column("input_ids").flatten().to_numpy(zero_copy_only=True))
        blocks = cls(parts, seq_len, pad_id, keep=maps)
        blocks.release()  # the pages of the headers just read: one fault-around per record batch
        return blocks

    def __len__(self) -> int:
        return self.n_blocks

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """ids [R, seq_len] int64 of blocks `rows` [R] (values < 0 count from the end)."""
        t = self.seq_len
        rows = self._check(rows)
        out = np.full((len(rows), t), self.pad_id, dtype=np.int64)
        for i, r in enumerate(rows.tolist()):
            pos, end = r * t, min(r * t + t, self.n_tokens)
            k = bisect.bisect_right(self.starts, pos) - 1  # the part holding stream[pos]
            while pos < end:
                stop = min(end, self.starts[k + 1])
                out[i, pos - r * t:stop - r * t] = self.parts[k][pos - self.starts[k]:stop - self.starts[k]]
                pos, k = stop, k + 1
        self._gathered += len(rows)
        if self._gathered >= RELEASE_EVERY_ROWS:
            self.release()
        return out

    def release(self) -> None:
        """Unmap the pages of the token files that gathering touched (MADV_DONTNEED).

        The values were copied out, and the pages stay in the page cache, so a later read
        maps them again without touching the disk. Without this, the process's RSS grows by
        every page that random rows touched (up to the size of the token files), although
        that is page cache the kernel may reclaim, not memory the process holds."""
        self._gathered = 0
        for mm in self.maps:
            if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                mm.madvise(mmap.MADV_DONTNEED)

    def mask(self, rows: np.ndarray) -> np.ndarray:
        """Real-token mask [R, seq_len] of blocks `rows`: False only on the final block's padding."""
        rows = self._check(rows)
        pos = rows[:, None] * self.seq_len + np.arange(self.seq_len)  # [R, T] stream positions
        return pos < self.n_tokens

    def _check(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        rows = np.where(rows < 0, rows + self.n_blocks, rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_blocks):
            raise IndexError(f"block index out of range for {self.n_blocks} blocks")
        return rows


def _map(path: Path) -> mmap.mmap:
    """`path` memory-mapped read-only, advised for random access (no read-around)."""
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):  # Linux, macOS
        mm.madvise(mmap.MADV_RANDOM)
    return mm


class _View:
    """`ids` or `attn` of a PackedBlocks, indexed like a [N, seq_len] numpy array by rows."""

    def __init__(self, blocks: PackedBlocks, kind: str):
        self.blocks, self.kind = blocks, kind
        self.dtype = np.dtype(np.int64 if kind == "ids" else bool)
        self.shape = (blocks.n_blocks, blocks.seq_len)
        self.ndim = 2

    def __len__(self) -> int:
        return self.blocks.n_blocks

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            rows = np.arange(self.blocks.n_blocks)[key]
        elif isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        else:
            rows = np.asarray(key)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False)
        return self.blocks.rows(rows) if self.kind == "ids" else self.blocks.mask(rows)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every block at once (small data, tests); training indexes rows instead."""
        out = self[:]
        return out if dtype is None else out.astype(dtype)
