"""Token-length statistics of a tokenized split from a histogram, so no step keeps one number
per text: `hist[k]` = number of texts with k ids (incl. [CLS]/[SEP]).

`hist_stats` gives the same numbers as computing them on the array of lengths
(`np.mean`, `np.percentile(..., 95)` with numpy's default linear interpolation, ...):
tests/test_corpus.py checks that on random lengths.
"""

from __future__ import annotations

import math

import numpy as np

SPECIALS_PER_TEXT = 2  # [CLS] + [SEP], added to every text by the post-processor


def list_stats(col, unk_id: int) -> tuple[np.ndarray, int]:
    """(length histogram, number of `unk_id` ids) of one Arrow ListArray<int32> chunk."""
    if len(col) == 0:
        return np.zeros(0, dtype=np.int64), 0
    offsets = col.offsets.to_numpy()  # [N+1] (offsets[0] > 0 when the chunk is a slice)
    flat = col.values.to_numpy()[offsets[0]:offsets[-1]]  # [sum(lengths)]
    return np.bincount(np.diff(offsets)).astype(np.int64), int((flat == unk_id).sum())


def add_hist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b for histograms of different lengths.

    >>> add_hist(np.array([1, 2]), np.array([0, 0, 5])).tolist()
    [1, 2, 5]
    """
    out = np.zeros(max(len(a), len(b)), dtype=np.int64)
    out[:len(a)] += a
    out[:len(b)] += b
    return out


def _order_stat(cum: np.ndarray, i: int) -> int:
    """The i-th smallest length (0-based) given the cumulative histogram."""
    return int(np.searchsorted(cum, i, side="right"))


def percentile(hist: np.ndarray, q: float) -> float:
    """np.percentile(lengths, q) (method "linear") from the histogram of `lengths`.

    >>> percentile(np.bincount([4, 5, 13]), 95)  # 5 + 0.9 * (13 - 5)
    12.2
    """
    n = int(hist.sum())
    cum = np.cumsum(hist)
    virtual = (n - 1) * (q / 100)
    lo = math.floor(virtual)
    hi = min(lo + 1, n - 1)
    gamma = virtual - lo
    a, b = float(_order_stat(cum, lo)), float(_order_stat(cum, hi))
    diff = b - a  # numpy's _lerp: a + diff * t, or b - diff * (1 - t) when t >= 0.5
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def hist_stats(hist: np.ndarray, unk: int, max_length: int) -> dict:
    """Report numbers for one split; lengths include [CLS] and [SEP].

    >>> hist_stats(np.bincount([4, 6]), 1, max_length=5)["truncation_rate"]
    0.5
    """
    hist = np.asarray(hist, dtype=np.int64)
    n = int(hist.sum())
    k = np.arange(len(hist), dtype=np.int64)
    total = int((k * hist).sum())
    truncated = int(hist[max_length + 1:].sum())
    content = total - SPECIALS_PER_TEXT * n
    return {
        "texts": n,
        "tokens": content,
        "unk_tokens": unk,
        "unk_rate": unk / content if content else None,
        "mean_tokens": round(total / n, 4) if n else None,
        "p95_tokens": round(percentile(hist, 95), 4) if n else None,
        "max_tokens": int(np.flatnonzero(hist)[-1]) if n else None,
        "truncated": truncated,
        "truncation_rate": truncated / n if n else None,
    }
