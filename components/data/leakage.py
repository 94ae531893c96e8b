"""Which texts (or text pairs) two splits share: the sets the leakage checks test.

Each set becomes the value_set of a GX not-in-set expectation
(components/data/expectations.py), so a leak is a real GX result with one
unexpected row per shared text. Pure pandas / Python: no GX here.
"""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd


def overlap(a: Iterable[Any], b: Iterable[Any]) -> list[str]:
    """Sorted non-null texts present in both `a` and `b` (the leakage set).

    >>> overlap(["x", "y", None], ["y", "z", None])
    ['y']
    """
    return sorted({t for t in a if isinstance(t, str)} & {t for t in b if isinstance(t, str)})


def pair_key(a, b) -> tuple:
    """The unordered pair: (a, b) and (b, a) are the same pair for leakage."""
    return tuple(sorted((str(a), str(b))))


def pair_sets(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, list[str]]]:
    """pair: per labelled split, {"self": ids of self-pairs, X: ids of rows whose unordered pair
    is also in the earlier split X} (val against train; test against train and val)."""
    keys = {s: {pair_key(a, b) for a, b in zip(df["text"], df["text_pair"])}
            for s, df in frames.items() if df is not None and {"text", "text_pair"} <= set(df.columns)}
    earlier = {"train": (), "val": ("train",), "test": ("train", "val")}
    out: dict[str, dict[str, list[str]]] = {}
    for split, others in earlier.items():
        if split not in keys:
            continue
        df = frames[split]
        rows = list(zip(df["id"], df["text"], df["text_pair"]))
        out[split] = {"self": sorted(str(i) for i, a, b in rows if a == b)}
        for o in others:
            if o in keys:
                out[split][o] = sorted(str(i) for i, a, b in rows if pair_key(a, b) in keys[o])
    return out


def leak_sets(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, list[str]]]:
    """Per split, the texts it shares with earlier splits.

    val is checked against train; test against train and val; val and test
    against unlabeled (a warning: pretraining would see evaluation text).
    Each pair is checked once, on the later split.
    """
    pairs = {"val": ("train", "unlabeled"), "test": ("train", "val", "unlabeled")}
    out: dict[str, dict[str, list[str]]] = {}
    for split, others in pairs.items():
        df = frames.get(split)
        if df is None or "text" not in df:
            continue
        out[split] = {o: overlap(df["text"], frames[o]["text"]) for o in others
                      if frames.get(o) is not None and "text" in frames[o]}
    return out
