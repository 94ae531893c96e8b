"""A split as (rows, labels): data/prepared's texts or data/tokenized's token ids.

    texts, y = text_split(paths.split("val"), n_classes)            # data/prepared/val.parquet
    ids, y = tokenized_split(paths.tokenized, "train", n_classes)     # data/tokenized, split train

Labels are [N] int64 class ids, or [N, C] float32 multi-hot for multi_label data (a list of
label ids per row); an id outside 0..C-1 is a DataError naming the file and the row. pair
data's texts are (text, text_pair) tuples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.core.errors import DataError


def tokenized_split(folder: Path, split: str, n_classes: int) -> tuple[list[list[int]], np.ndarray]:
    """One split of data/tokenized as (ids per row, labels [N]); labels checked against n_classes."""
    import datasets

    if not (Path(folder) / "dataset_dict.json").is_file():
        raise DataError(f"{folder}: tokenized dataset not found (run tokenize first)")
    dd = datasets.load_from_disk(str(folder))
    if split not in dd:
        raise DataError(f"{folder}: split {split!r} not found (splits: {', '.join(dd)})")
    ds = dd[split]
    for col in ("input_ids", "label"):
        if col not in ds.column_names:
            raise DataError(f"{folder}/{split}: column {col!r} not found (columns: {', '.join(ds.column_names)})")
    seqs = [list(map(int, s)) for s in ds["input_ids"]]
    if isinstance(ds.features["label"], datasets.List):  # multi_label: ids per row -> multi-hot
        return seqs, multi_hot(ds["label"], n_classes, f"{folder}/{split}")
    labels = np.asarray(ds["label"], dtype=np.int64)
    check_labels(labels, n_classes, f"{folder}/{split}")
    return seqs, labels


def text_split(parquet: Path, n_classes: int) -> tuple[list[str], np.ndarray]:
    """data/prepared/<split>.parquet as (texts, labels [N])."""
    import pandas as pd

    if not Path(parquet).is_file():
        raise DataError(f"{parquet}: not found (run ingest first)")
    import pyarrow.parquet as pq

    pair = "text_pair" in pq.read_schema(parquet).names  # pair: texts are (text, text_pair) tuples
    df = pd.read_parquet(parquet, columns=["text", "text_pair", "label"] if pair else ["text", "label"])
    texts = df["text"].astype(str).tolist()
    if pair:
        texts = list(zip(texts, df["text_pair"].astype(str).tolist()))
    if df["label"].dtype == object:  # multi_label: a list of ids per row -> [N, C] multi-hot
        return texts, multi_hot(df["label"].tolist(), n_classes, str(parquet))
    labels = df["label"].to_numpy(dtype=np.int64)
    check_labels(labels, n_classes, str(parquet))
    return texts, labels


def multi_hot(rows, n_classes: int, where: str) -> np.ndarray:
    """Label-id lists -> [N, C] 0/1 float32; an id outside 0..C-1 is a DataError.

    >>> multi_hot([[0, 2], []], 3, "x").tolist()
    [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    out = np.zeros((len(rows), n_classes), dtype=np.float32)
    for r, ids in enumerate(rows):
        for i in (ids if ids is not None else ()):
            if not 0 <= int(i) < n_classes:
                raise DataError(f"{where}: row {r} has label {int(i)}, expected 0..{n_classes - 1} (labels.json)")
            out[r, int(i)] = 1.0
    return out


def check_labels(labels: np.ndarray, n_classes: int, where: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if bad.size:
        raise DataError(f"{where}: row {int(bad[0])} has label {int(labels[bad[0]])}, "
                        f"expected 0..{n_classes - 1} (labels.json)")
