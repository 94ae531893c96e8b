"""Outputs of batch predict / embed, written as the chunks come and renamed into place at the end.

predict: the input columns plus the pyfunc's label frame (label, label_id, prob_<label>;
multi_label: labels, prob_<label>, labels joined with "|" in a CSV) into .csv / .jsonl /
.parquet. embed: the input columns plus `embedding` (.parquet), or only the float32 matrix
[N, H] (.npy, a memmap written in place). An input column with an output's name is kept as
<name>_input. Everything goes to a temp file beside the output (`atomic_path`), so a failed
run leaves no partial output.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRED_OUT = (".csv", ".jsonl", ".parquet")
EMBED_OUT = (".parquet", ".npy")


@contextlib.contextmanager
def atomic_path(out: Path):
    """A temp path beside `out`, renamed onto it on success."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _merge(batch, extra: dict):
    """Input columns + new columns; a clashing input column is renamed <name>_input."""
    import pyarrow as pa

    cols = {(f"{n}_input" if n in extra else n): batch.column(i) for i, n in enumerate(batch.schema.names)}
    cols.update(extra)
    return pa.table(cols)


class _Writer:
    """Streaming writer for .csv / .jsonl / .parquet (schema fixed by the first table)."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind, self.impl = path, kind, None

    def write(self, table) -> None:
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        if self.impl is None:
            if self.kind == ".parquet":
                self.impl = pq.ParquetWriter(self.path, table.schema)
            elif self.kind == ".csv":
                self.impl = pcsv.CSVWriter(self.path, table.schema)
            else:
                self.impl = open(self.path, "w", encoding="utf-8")
        if self.kind == ".jsonl":
            table.to_pandas().to_json(self.impl, orient="records", lines=True, force_ascii=False)
        else:
            self.impl.write_table(table.cast(self.impl.schema) if self.kind == ".parquet" else table)

    def close(self) -> None:
        if self.impl is not None:
            self.impl.close()


class LabelSink:
    """predict: the input columns plus the pyfunc's label frame (label, label_id, prob_*)."""

    def __init__(self, path: Path, kind: str):
        self.writer = _Writer(path, kind)

    def write(self, chunk, frame) -> None:
        import pyarrow as pa

        cols = {c: pa.array(frame[c].to_numpy()) for c in frame.columns if c != "labels"}
        if "labels" in frame.columns:  # multi_label: a list of names per row ("a|b" in a CSV)
            sets = [list(v) for v in frame["labels"]]
            cols = {"labels": pa.array(["|".join(v) for v in sets]) if self.writer.kind == ".csv"
                    else pa.array(sets, type=pa.list_(pa.string())), **cols}
        self.writer.write(_merge(chunk, cols))

    def close(self) -> None:
        self.writer.close()


class EmbeddingSink:
    """embed: the input columns plus `embedding` (.parquet), or only the [N, H] float32 matrix
    (.npy, a memmap written in place, so never all in memory)."""

    def __init__(self, path: Path, kind: str, rows: int):
        self.path, self.rows, self.n, self.dim, self.matrix = path, rows, 0, 0, None
        self.writer = _Writer(path, ".parquet") if kind == ".parquet" else None

    def write(self, chunk, result) -> None:
        import numpy as np
        import pyarrow as pa

        vecs = np.asarray(result, dtype=np.float32)  # [b, H]
        self.dim = vecs.shape[1]
        if self.writer is not None:
            flat = pa.array(vecs.reshape(-1))
            self.writer.write(_merge(chunk, {"embedding": pa.FixedSizeListArray.from_arrays(flat, self.dim)}))
        else:
            if self.matrix is None:
                self.matrix = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32,
                                                        shape=(self.rows, self.dim))
            self.matrix[self.n: self.n + len(vecs)] = vecs
        self.n += len(vecs)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.matrix is not None:
            self.matrix.flush()
            self.matrix = None  # drops the memmap: the file is complete


def write_empty(path: Path, kind: str, column: str) -> None:
    """The output for an input with no rows: a valid empty file of the output's format."""
    if kind == ".npy":
        import numpy as np

        np.save(path, np.zeros((0, 0), dtype=np.float32))
    elif kind == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({column: pa.array([], pa.string())}), path)
    # .csv / .jsonl: the empty temp file already is one
