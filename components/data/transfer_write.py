"""Build the teacher's transfer set and write it as data/teacher/transfer.parquet.

The texts, in this order: every train text (with its gold label id), every
unlabeled text, then `copies` augmented versions of each of those
(components/data/augment.py, ordered by source text then copy). Val and test
text is never a source; a row whose text happens to equal a val or test text
(an unlabeled duplicate, or an augmented copy that came out identical) is
dropped and counted, so no val/test text reaches the student.

The file's schema is the contract components/data/transfer.py reads:
text string, probabilities list<float32> (labels.json order), source string
("train" | "unlabeled" | "augmented"), label int64 (gold id on train rows, else null),
vector list<float32> (the teacher's pooled sentence vector; null when not written).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.core.errors import DataError

SOURCES = ("train", "unlabeled", "augmented")


@dataclass(frozen=True)
class TransferTexts:
    texts: list[str]
    sources: list[str]  # one of SOURCES per row
    labels: list[int | None]  # gold label id on "train" rows, None elsewhere
    dropped_held_out: int  # rows left out because their text is a val or test text

    def __len__(self) -> int:
        return len(self.texts)

    def rows_by_source(self) -> dict[str, int]:
        return {s: self.sources.count(s) for s in SOURCES}


def build(train: list[str], train_labels, unlabeled: list[str], copies: int, seed: int,
          mask_token: str, held_out: set[str]) -> TransferTexts:
    """The transfer texts (see the module docstring); `held_out` = the val + test texts.

    >>> t = build(["good", "bad"], [1, 0], ["so so"], 1, 0, "[MASK]", held_out={"so so"})
    >>> t.sources, t.labels, t.dropped_held_out
    (['train', 'train', 'augmented', 'augmented', 'augmented'], [1, 0, None, None, None], 1)
    """
    from components.data.augment import augment

    base = list(train) + list(unlabeled)
    rows = [(t, "train", int(y)) for t, y in zip(train, train_labels)]
    rows += [(t, "unlabeled", None) for t in unlabeled]
    try:
        rows += [(t, "augmented", None) for _, t in augment(base, copies, seed, mask_token=mask_token)]
    except ValueError as e:  # augment names the bad text by its index in train + unlabeled
        raise DataError(f"transfer set: {e} (texts: train, then unlabeled)") from None
    kept = [r for r in rows if r[0] not in held_out]
    return TransferTexts([r[0] for r in kept], [r[1] for r in kept], [r[2] for r in kept],
                         len(rows) - len(kept))


def schema():
    import pyarrow as pa

    return pa.schema([("text", pa.string()), ("probabilities", pa.list_(pa.float32())),
                      ("source", pa.string()), ("label", pa.int64()),
                      ("vector", pa.list_(pa.float32()))])


def _rows_of(values: np.ndarray):
    """[N, D] float32 -> a pyarrow list<float32> array, row i = values[i, :]."""
    import pyarrow as pa

    n, d = values.shape
    offsets = pa.array(np.arange(0, n * d + 1, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), pa.float32()))


def write(path: Path, rows: TransferTexts | None, probs: np.ndarray | None = None,
          vectors: np.ndarray | None = None) -> None:
    """Write the parquet file (0 rows when `rows` is None; `vector` null when `vectors` is
    None). Call it inside an atomic_dir: the same rows and values give the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if rows is None:
        table = schema().empty_table()
    else:
        probs = np.ascontiguousarray(probs, dtype=np.float32)  # [N, C]
        if probs.shape[0] != len(rows):
            raise ValueError(f"{len(rows)} transfer rows but {probs.shape[0]} probability rows")
        if vectors is None:
            vec = pa.nulls(len(rows), pa.list_(pa.float32()))
        else:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # [N, D]
            if vectors.shape[0] != len(rows):
                raise ValueError(f"{len(rows)} transfer rows but {vectors.shape[0]} vector rows")
            vec = _rows_of(vectors)
        table = pa.Table.from_arrays(
            [pa.array(rows.texts, pa.string()), _rows_of(probs),
             pa.array(rows.sources, pa.string()), pa.array(rows.labels, pa.int64()), vec],
            schema=schema())
    pq.write_table(table, str(path))


def vectors_schema():
    import pyarrow as pa

    return pa.schema([("text", pa.string()), ("vector", pa.list_(pa.float32()))])


def write_vectors(path: Path, texts: list[str] | None, vectors: np.ndarray | None) -> None:
    """data/teacher/base.parquet: text string, vector list<float32> (0 rows when `texts` is None).
    The same texts and values give the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if texts is None:
        table = vectors_schema().empty_table()
    else:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # [N, D]
        if vectors.shape[0] != len(texts):
            raise ValueError(f"{len(texts)} texts but {vectors.shape[0]} vector rows")
        table = pa.Table.from_arrays([pa.array(texts, pa.string()), _rows_of(vectors)], schema=vectors_schema())
    pq.write_table(table, str(path))
