"""The prepared splits as the tokenize stage reads them: checked, counted, their text streamed.

    check_split(paths, "train")                         # one-line DataError naming file + row
    n = count_texts(paths, ("train", "unlabeled"))      # a pair row counts twice (both sides)
    for text in texts(paths, ("train", "unlabeled")):   # one record batch in memory at a time
        ...

A pair split (a text_pair column) gives both of its texts to the tokenizer; a multi_label
split has a list of label ids per row. The corpus split may be bigger than RAM: everything
here reads one parquet record batch at a time.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from components.core.errors import DataError
from components.core.paths import ALL_SPLITS, CORPUS, Paths
from components.data.parquet_batches import parquet_batches

STAGE = "tokenize"
TEXT_BATCH = 2048  # rows per parquet record batch when streaming text


def is_multi(path: Path) -> bool:
    """Whether a prepared split holds multi_label rows (label is a list column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return "label" in schema.names and pa.types.is_list(schema.field("label").type)


def is_pair(path: Path) -> bool:
    """Whether a prepared split holds pair rows (a text_pair column)."""
    import pyarrow.parquet as pq

    return "text_pair" in pq.read_schema(path).names


def check_split(paths: Paths, split: str) -> None:
    """Fail early, with the file named, on a missing split, column, bad type or null.
    Reads one record batch at a time (the corpus split may be bigger than RAM)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = paths.split(split)
    if not path.is_file():
        raise DataError(f"{_rel(paths, path)}: not found (run `encoderflow stage ingest` first)", stage=STAGE)
    try:
        schema = pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{_rel(paths, path)}: unreadable parquet ({e})", stage=STAGE) from None
    names = schema.names
    for col in ("text",) if split in ("unlabeled", CORPUS) else ("text", "label"):
        if col not in names:
            raise DataError(f"{_rel(paths, path)}: column {col!r} not found (columns: {', '.join(names)})",
                            stage=STAGE)
    kinds = {"text": (pa.types.is_string, pa.types.is_large_string),
             "label": (pa.types.is_integer,  # multi_label: a list of ids
                       lambda t: pa.types.is_list(t) and pa.types.is_integer(t.value_type))}
    for col, checks in kinds.items():
        if col in names and not any(check(schema.field(col).type) for check in checks):
            raise DataError(f"{_rel(paths, path)}: column {col!r} has type {schema.field(col).type} "
                            f"(expected {'string' if col == 'text' else 'integer label ids'})", stage=STAGE)

    columns = [c for c in ("text", "text_pair", "label") if c in names]
    offset = 0
    for batch in parquet_batches(path, columns, TEXT_BATCH):
        for col, values in zip(columns, batch.columns):
            nulls = pc.is_null(values)
            if pc.any(nulls).as_py():
                row = offset + int(np.flatnonzero(nulls.to_numpy(zero_copy_only=False))[0])
                raise DataError(f"{_rel(paths, path)}: row {row}: {col} is null", stage=STAGE)
        offset += batch.num_rows


def _rows(paths: Paths, split: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(paths.split(split)).metadata.num_rows


def text_columns(paths: Paths, split: str) -> list[str]:
    """The text a split gives the tokenizer: a pair split's two sides both train it."""
    return ["text", "text_pair"] if split in ALL_SPLITS and is_pair(paths.split(split)) else ["text"]


def texts(paths: Paths, splits: tuple[str, ...]):
    """The text of `splits`, in order, one parquet record batch in memory at a time."""
    for split in splits:
        columns = text_columns(paths, split)
        for batch in parquet_batches(paths.split(split), columns, TEXT_BATCH):
            for col in batch.columns:
                yield from col.to_pylist()


def count_texts(paths: Paths, splits: tuple[str, ...]) -> int:
    """How many texts `splits` give the tokenizer (a pair row gives two); none is a DataError."""
    n = sum(_rows(paths, split) * len(text_columns(paths, split)) for split in splits)
    if not n:
        raise DataError(f"{_rel(paths, paths.prepared)}: {' + '.join(splits)} hold no text to "
                        "train the tokenizer on", stage=STAGE)
    return n


def _rel(paths: Paths, path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(paths.root))
    return str(path)
