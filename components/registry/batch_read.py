"""Input files of batch predict / embed, read in record batches (never the whole file).

.csv, .jsonl (one JSON object a line) or .parquet with a text column (pair models: a second
one); CSV / JSON are read `block_bytes` at a time with pyarrow's streaming readers, Parquet
a row group slice at a time. A missing file, column or an unreadable file is a one-line
DataError naming it, raised by the first batch, before any output exists.

    for batch in read_batches("reviews.csv", column="text"):   # pyarrow RecordBatches
        ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from components.core.errors import DataError, first_line

INPUTS = {".csv": "csv", ".jsonl": "json", ".parquet": "parquet"}


def file_kind(path: Path, allowed: dict | tuple, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise DataError(f"{path}: unsupported {what} format {suffix or '(none)'} "
                        f"(expected {', '.join(allowed)})")
    return allowed[suffix] if isinstance(allowed, dict) else suffix


def _check_column(path: Path, names: list[str], column: str) -> None:
    if column not in names:
        raise DataError(f"{path}: column '{column}' not found (columns: {', '.join(names)})")


def read_batches(path: str | Path, column: str = "text", block_bytes: int = 1 << 20,
                 parquet_rows: int = 8192, pair_column: str | None = None) -> Iterator:
    """Yield pyarrow RecordBatches of the input file, streaming; the text column is a string
    (pair models: `pair_column` too, also checked to exist).

    CSV / JSON are read `block_bytes` at a time, Parquet `parquet_rows` rows at a time.
    """
    import pyarrow as pa

    path = Path(path)
    kind = file_kind(path, INPUTS, "input")
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            for c in (column, pair_column or column):
                _check_column(path, pf.schema_arrow.names, c)
            yield from pf.iter_batches(batch_size=parquet_rows)
        elif kind == "csv":
            import pyarrow.csv as pcsv

            read = pcsv.ReadOptions(block_size=block_bytes)
            names = pcsv.open_csv(path, read_options=read).schema.names
            for c in (column, pair_column or column):
                _check_column(path, names, c)
            # every column as string: type inference per block would break on later blocks
            conv = pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                       strings_can_be_null=False)
            yield from pcsv.open_csv(path, read_options=read, convert_options=conv)
        else:
            import pyarrow.json as pjson

            read = pjson.ReadOptions(block_size=block_bytes)
            text_cols = list(dict.fromkeys([column, pair_column or column]))
            parse = pjson.ParseOptions(explicit_schema=pa.schema([(c, pa.string()) for c in text_cols]),
                                       unexpected_field_behavior="infer")
            keys = _first_keys(path)
            for c in text_cols:
                _check_column(path, keys, c)
            for batch in pjson.open_json(path, read_options=read, parse_options=parse):
                # explicit_schema puts the text column first: restore the file's order
                names = batch.schema.names
                yield batch.select([k for k in keys if k in names] + [n for n in names if n not in keys])
    except pa.ArrowInvalid as e:
        raise DataError(f"{path}: unreadable {kind} ({first_line(e)})") from None


def _first_keys(path: Path) -> list[str]:
    """Field names of the first JSON line (their order is the output's column order)."""
    import json

    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}: line 1 is not JSON ({e.msg})") from None
                if not isinstance(rec, dict):
                    raise DataError(f"{path}: expected one JSON object a line, got {type(rec).__name__}")
                return list(rec)
    return []


def count_rows(path: str | Path, column: str = "text") -> int:
    """Rows in the input (Parquet: from metadata; otherwise one streaming pass)."""
    path = Path(path)
    if file_kind(path, INPUTS, "input") == "parquet" and path.is_file():
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return sum(b.num_rows for b in read_batches(path, column))
