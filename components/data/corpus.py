"""The unlabeled corpus (`ingest.unlabeled_source`), streamed to data/prepared/corpus.parquet.

    write_corpus("data/corpus/*.txt", cfg, root, prep, out)   # -> the report's "corpus" block

Rows flow file by file, line by line (`corpus_read`), through `prepare.normalize`, and are
written in row groups of ROW_GROUP rows (columns id, text: the data contract of
unlabeled.parquet). What stays in memory while the corpus grows:
- one row group of text, and one line of the file being read;
- the de-duplication set `Hash64Set`: 8 bytes per distinct text (the first 8 bytes of its
  sha1 id, in sorted numpy arrays; 16 for a moment while two of them merge). Two
  different texts with the same 64-bit prefix would count as duplicates: for n texts the
  chance of any such pair is about n^2 / 2^65 (3e-6 at ten million texts).

Order and invariants: files in sorted path order, rows in file order; the first occurrence
of a text is kept (source order), like `prepare` does for `ingest.source`. A corpus text equal
to a labelled text (any split) is dropped, so val/test text never reaches tokenizer training
or pretraining; one equal to an unlabeled text of `ingest.source` is a duplicate. Unlike
`unlabeled.parquet` the corpus is NOT sorted by id (that would need the whole corpus at once):
its order is the source order, which is just as deterministic.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from components.core.config import IngestConfig
from components.core.errors import DataError
from components.data.corpus_read import iter_texts
from components.data.prepare import Prepared, normalize

ROW_GROUP = 4096  # rows per parquet row group (and per de-duplication batch): ~3 MB of text
RECENT_MIN = 1 << 16  # Hash64Set: recent keys before a merge into the big sorted array


def key_of(row_id: str) -> int:
    """The 64-bit de-duplication key of a row id (sha1 hex): its first 8 bytes.

    >>> key_of("0000000000000001" + "f" * 24), key_of("ff" * 20) == 2**64 - 1
    (1, True)
    """
    return int(row_id[:16], 16)


def _in_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Membership of each of `keys` [B] in the sorted unique array `sorted_keys` [N] -> bool [B]."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.searchsorted(sorted_keys, keys).clip(max=len(sorted_keys) - 1)
    return sorted_keys[at] == keys


class Hash64Set:
    """A set of uint64 keys at 8 bytes each, in numpy only: a big sorted array plus a small
    sorted array of recent keys, merged into the big one when it reaches
    max(RECENT_MIN, len(big) / 16) (so each key is copied O(1) times, amortized). Memory: 8
    bytes per key, 16 for a moment while merging.

    >>> s = Hash64Set([5, 3])
    >>> s.contains(np.array([3, 4], dtype=np.uint64)).tolist()
    [True, False]
    >>> s.update([4, 4]); len(s), s.contains(np.array([4], dtype=np.uint64)).tolist()
    (3, [True])
    """

    def __init__(self, keys=()):
        self.big = np.unique(np.fromiter(keys, dtype=np.uint64))
        self.small = np.zeros(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.big) + len(self.small)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        return _in_sorted(self.big, keys) | _in_sorted(self.small, keys)

    def update(self, keys) -> None:
        keys = np.unique(np.fromiter(keys, dtype=np.uint64))  # sorted, distinct
        keys = keys[~self.contains(keys)]
        self.small = np.insert(self.small, np.searchsorted(self.small, keys), keys)
        if len(self.small) >= max(RECENT_MIN, len(self.big) // 16):
            merged = np.concatenate((self.big, self.small))
            self.big, self.small = None, np.zeros(0, dtype=np.uint64)
            merged.sort()  # in place; the two arrays hold different keys
            self.big = merged


def _frac(n: int, d: int) -> float:
    return round(n / d, 6) if d else 0.0


class _Writer:
    """corpus.parquet, one row group per `flush` (pyarrow's ParquetWriter)."""

    def __init__(self, out: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.schema = pa.schema([("id", pa.string()), ("text", pa.string())])
        self.writer = pq.ParquetWriter(str(out), self.schema)
        self.ids: list[str] = []
        self.texts: list[str] = []

    def add(self, row_id: str, text: str) -> None:
        self.ids.append(row_id)
        self.texts.append(text)
        if len(self.ids) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.ids:
            self.writer.write_table(pa.table([self.ids, self.texts], schema=self.schema))
            self.ids, self.texts = [], []

    def close(self) -> None:
        self.flush()
        self.writer.close()  # an empty corpus still gets a valid 0-row file with the schema


def write_corpus(spec: str, cfg: IngestConfig, root: Path, prep: Prepared, out: Path) -> dict:
    """Stream `file:` spec -> `out` (parquet: id, text); returns the report block.

    `prep` is the already prepared `ingest.source`: its labelled texts are dropped from the
    corpus, its unlabeled texts count as duplicates. The thresholds of `ingest` apply to the
    corpus on its own (max_text_chars per row, max_empty/duplicate_fraction over its rows).
    """
    from components.data.sources import _display, resolve_files

    where = f"file:{spec}"
    root = root.resolve()
    files = resolve_files(spec, root, cfg.allow_outside_project)
    labelled = np.unique(np.fromiter((key_of(rid) for rows in prep.splits.values() for rid, _, _ in rows),
                                     dtype=np.uint64))
    seen = Hash64Set(key_of(rid) for rid, _ in prep.unlabeled)
    counts = dict.fromkeys(("rows_read", "empty", "repeated", "equal_to_labelled", "kept"), 0)
    batch: list[tuple[str, str, int]] = []  # (id, text, key) of non-empty rows, in order
    writer = _Writer(out)

    def decide() -> None:
        """Drop leaks and duplicates from `batch` (vectorized against earlier batches)."""
        keys = np.fromiter((k for _, _, k in batch), dtype=np.uint64, count=len(batch))
        leak, old = _in_sorted(labelled, keys), seen.contains(keys)
        fresh: set[int] = set()  # keys first seen in this batch
        for (rid, text, key), is_leak, is_old in zip(batch, leak.tolist(), old.tolist()):
            if is_leak:
                counts["equal_to_labelled"] += 1
            elif is_old or key in fresh:
                counts["repeated"] += 1
            else:
                fresh.add(key)
                writer.add(rid, text)
                counts["kept"] += 1
        seen.update(fresh)
        batch.clear()

    n_bytes = 0
    try:
        for path in files:
            name = _display(path, root)
            n_bytes += path.stat().st_size
            for number, raw in iter_texts(path, name, cfg.text_column, cfg.max_text_chars):
                counts["rows_read"] += 1
                text = normalize(raw)
                if not text:
                    counts["empty"] += 1
                    continue
                if len(text) > cfg.max_text_chars:
                    raise DataError(f"{name}: line {number}: text has {len(text)} characters (more "
                                    f"than ingest.max_text_chars={cfg.max_text_chars})", stage="ingest")
                digest = hashlib.sha1(text.encode("utf-8")).hexdigest()  # = prepare.text_id(text)
                batch.append((digest, text, key_of(digest)))
                if len(batch) >= ROW_GROUP:
                    decide()
        if batch:
            decide()
    finally:
        writer.close()

    rows, empty = counts["rows_read"], counts["empty"]
    dupes = counts["repeated"] + counts["equal_to_labelled"]
    if empty / max(rows, 1) > cfg.max_empty_fraction:
        raise DataError(f"{where}: {empty} of {rows} rows are empty ({empty / rows:.1%}; more than "
                        f"ingest.max_empty_fraction={cfg.max_empty_fraction})", stage="ingest")
    if rows > empty and dupes / (rows - empty) > cfg.max_duplicate_fraction:
        raise DataError(f"{where}: {dupes} of {rows - empty} non-empty rows are duplicates "
                        f"({dupes / (rows - empty):.1%}; more than ingest.max_duplicate_fraction="
                        f"{cfg.max_duplicate_fraction})", stage="ingest")
    if counts["kept"] == 0:
        raise DataError(f"{where}: no text left for pretraining ({rows} rows read, {empty} empty, "
                        f"{dupes} duplicates or equal to labelled text)", stage="ingest")
    return {
        "source": where,
        "files": len(files),
        "inputs": [_display(f, root) for f in files[:20]],  # the first 20 (a corpus may have thousands)
        "bytes_read": n_bytes,
        "rows_read": rows,
        "empty_dropped": empty,
        "duplicates_dropped": dupes,
        # repeated: equal to an earlier corpus row or to an unlabeled row of ingest.source
        "duplicates": {"repeated": counts["repeated"], "equal_to_labelled": counts["equal_to_labelled"]},
        "empty_fraction": _frac(empty, rows),
        "duplicate_fraction": _frac(dupes, rows - empty),
        "rows": counts["kept"],
        "dedup_keys": len(seen),
    }
