"""The teacher's transfer set (data/teacher/transfer.parquet), read and checked for finetune.

Contract (written by the teacher stage): one row per text with
- `text` (string),
- `probabilities` (list<float32>): the teacher's class probabilities, one per class
  in data/prepared/labels.json order,
- `source`: "train" | "unlabeled" | "augmented",
- `label` (int64): the gold label id on "train" rows, null on the others,
- `vector` (list<float32>, optional): the teacher's pooled sentence vector, the same
  length on every row; null on every row (or no such column) when not written.
A disabled teacher writes the file with 0 rows.

Every broken promise is a one-line DataError naming the file and the first bad row.
`check_held_out` enforces the split rule: no training text may be a val or test text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.core.errors import DataError

SOURCES = ("train", "unlabeled", "augmented")
COLUMNS = ("text", "probabilities", "source", "label")
SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; parquet keeps them exact


@dataclass(frozen=True)
class Transfer:
    texts: list[str]
    probs: np.ndarray  # [N, C] float32, rows sum to 1
    labels: np.ndarray  # [N] int64 gold label id, -1 where there is none
    sources: list[str]
    vectors: np.ndarray | None = None  # [N, D] float32 teacher sentence vectors, or None

    def __len__(self) -> int:
        return len(self.texts)

    def rows_by_source(self) -> dict[str, int]:
        """{"train": n, "unlabeled": n, "augmented": n}, every source listed."""
        return {s: self.sources.count(s) for s in SOURCES}


def read_transfer(path: Path, n_classes: int, where: str | None = None) -> Transfer:
    """Read and check the transfer set against the `n_classes` of labels.json."""
    import pandas as pd
    import pyarrow as pa

    where = where or str(path)
    if not Path(path).is_file():
        raise DataError(f"{where}: not found (run the teacher stage first, or set "
                        "finetune.distill.enabled: false)")
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise DataError(f"{where}: unreadable parquet ({type(e).__name__})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{where}: column {missing[0]!r} not found (columns: {', '.join(map(str, df.columns))})")
    if len(df) == 0:
        return Transfer([], np.zeros((0, n_classes), np.float32), np.zeros(0, np.int64), [])
    texts = df["text"]
    bad = np.flatnonzero(~texts.map(lambda t: isinstance(t, str)).to_numpy())
    if bad.size:
        raise DataError(f"{where}: row {int(bad[0])} has text {texts.iloc[bad[0]]!r}, expected a string")
    probs = _probabilities(df["probabilities"], n_classes, where)
    sources = df["source"].tolist()
    bad = [i for i, s in enumerate(sources) if s not in SOURCES]
    if bad:
        raise DataError(f"{where}: row {bad[0]} has source {sources[bad[0]]!r}, expected one of "
                        f"{', '.join(SOURCES)}")
    labels = _labels(df["label"], sources, n_classes, where)
    vectors = _vectors(df["vector"], where) if "vector" in df.columns else None
    return Transfer(texts.tolist(), probs, labels, sources, vectors)


def _vectors(column, where: str) -> np.ndarray | None:
    """The `vector` column as [N, D] float32, or None when every row is null; a row that is
    null while others are not, a length that differs from row 0's, or a non-finite value
    is a DataError."""
    rows = column.tolist()
    if all(r is None for r in rows):
        return None
    dim = None if rows[0] is None else len(rows[0])
    for i, r in enumerate(rows):
        if r is None or len(r) != dim or dim == 0:
            got = "null" if r is None else f"{len(r)} values"
            raise DataError(f"{where}: row {i} has vector {got}, expected {dim or 'a non-empty list of'} "
                            "values like row 0 (the teacher's sentence vector)")
    vectors = np.asarray(np.stack([np.asarray(r, dtype=np.float32) for r in rows]), dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(vectors).all(1))
    if bad.size:
        raise DataError(f"{where}: row {int(bad[0])} has a non-finite vector value")
    return vectors


def _probabilities(column, n_classes: int, where: str) -> np.ndarray:
    """The list column as [N, C] float32; every row C finite, non-negative values summing to 1."""
    for i, row in enumerate(column):
        if row is None or len(row) != n_classes:
            got = "null" if row is None else len(row)
            raise DataError(f"{where}: the transfer set has {got} class probabilities (row {i}), "
                            f"labels.json has {n_classes} classes")
    probs = np.asarray(np.stack([np.asarray(r, dtype=np.float32) for r in column]), dtype=np.float32)  # [N, C]
    ok = np.isfinite(probs).all(1) & (probs >= 0).all(1) & (np.abs(probs.sum(1) - 1) <= SUM_TOLERANCE)
    bad = np.flatnonzero(~ok)
    if bad.size:
        raise DataError(f"{where}: row {int(bad[0])} has probabilities {probs[bad[0]].tolist()}, "
                        "expected finite values >= 0 that sum to 1")
    return probs


def _labels(column, sources: list[str], n_classes: int, where: str) -> np.ndarray:
    """Gold ids on "train" rows (required, in range), -1 elsewhere (must be null there)."""
    import pandas as pd

    out = np.full(len(sources), -1, dtype=np.int64)
    for i, (y, src) in enumerate(zip(column.tolist(), sources)):
        if src != "train":
            if not pd.isna(y):
                raise DataError(f"{where}: row {i} ({src}) has label {y!r}, expected null (only "
                                "train rows carry a gold label)")
            continue
        if pd.isna(y) or isinstance(y, bool) or float(y) != int(y) or not 0 <= int(y) < n_classes:
            raise DataError(f"{where}: row {i} (train) has label {y!r}, expected 0..{n_classes - 1} "
                            "(labels.json)")
        out[i] = int(y)
    return out


def check_held_out(texts: list[str], held_out: dict[str, list[str]], where: str) -> None:
    """DataError when a training text is also a text of a held-out split (val, test).

    >>> check_held_out(["a", "b"], {"val": ["c"], "test": ["d"]}, "transfer.parquet")
    >>> check_held_out(["a", "b"], {"val": ["c"], "test": ["b"]}, "transfer.parquet")
    Traceback (most recent call last):
    ...
    components.core.errors.DataError: transfer.parquet: row 1 is a test text ('b'); training on val or test text is not allowed
    """
    for split, split_texts in held_out.items():
        seen = set(split_texts)
        for i, t in enumerate(texts):
            if t in seen:
                shown = t if len(t) <= 60 else t[:57] + "..."
                raise DataError(f"{where}: row {i} is a {split} text ({shown!r}); training on val or "
                                "test text is not allowed")
