"""Streaming readers for the unlabeled corpus (`ingest.unlabeled_source`): one file -> rows.

`iter_texts(path, name, text_col, max_text_chars)` yields `(number, raw_text)` one row at a
time, in file order, where `number` is the physical line (text formats, header = line 1) or
the 1-based row (parquet). Nothing holds more than one line (text formats) or one record
batch (parquet): a line is read with a byte limit, so even a file without newlines is never
loaded whole. Rows are texts only; a label column, if any, is ignored (the corpus is
unlabeled by definition).

The messages match `readers` (the in-memory readers of `ingest.source`): binary junk, bad
UTF-8 with its line and byte offset, malformed CSV/JSON, a missing text column, an empty file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_bytes(b"first text\\n\\n second\\r\\n")
    >>> list(iter_texts(p, "a.txt", "text", 100))
    [(1, 'first text'), (3, ' second')]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

from components.core.errors import DataError, first_line
from components.data.parquet_batches import parquet_batches
from components.data.readers import MAGIC, SUFFIXES, _missing_text, json_object

BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 2048


def _err(msg: str) -> DataError:
    return DataError(msg, stage="ingest")


def _too_long(name: str, line: int, max_chars: int) -> DataError:
    return _err(f"{name}: line {line}: text has more than {max_chars} characters (more than "
                f"ingest.max_text_chars={max_chars})")


def _open_text(path: Path, name: str, kind: str) -> tuple[BinaryIO, int]:
    """The file opened for reading after the checks `readers.decode` makes on the whole
    file, here on its first 64 KiB: magic bytes and NUL. Returns (file, BOM length)."""
    fh = open(path, "rb")
    head = fh.read(65536)
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            fh.close()
            raise _err(f"{name}: looks like {what}, not a {kind} text file")
    nul = head.find(b"\x00")
    if nul >= 0:
        fh.close()
        raise _err(f"{name}: binary data (NUL byte at offset {nul}; UTF-16 is not supported, "
                   f"save the file as UTF-8)")
    bom = len(BOM) if head.startswith(BOM) else 0
    fh.seek(bom)
    return fh, bom


def _lines(fh: BinaryIO, name: str, max_chars: int, offset: int) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its line ending), reading at most 4 * max_chars + 8
    bytes per line (UTF-8 takes at most 4 bytes a character)."""
    limit = 4 * max_chars + 8
    line = 0
    while raw := fh.readline(limit):
        line += 1
        if len(raw) == limit and not raw.endswith(b"\n"):
            raise _too_long(name, line, max_chars)  # >= limit bytes, so > max_chars characters
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _err(f"{name}: line {line}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset "
                       f"{offset + e.start}); save the file as UTF-8") from None
        offset += len(raw)
        yield line, text


def _txt(path: Path, name: str, max_chars: int) -> Iterator[tuple[int, str]]:
    """One text per line, as `readers.read_txt`: blank lines are separators, not rows."""
    fh, bom = _open_text(path, name, "txt")
    with fh:
        for line, text in _lines(fh, name, max_chars, bom):
            for piece in text.splitlines():  # also splits at \r, \x0b, \u2028, ... like read_txt
                if piece.strip():
                    yield line, piece


def _jsonl(path: Path, name: str, text_col: str, max_chars: int) -> Iterator[tuple[int, str | None]]:
    fh, bom = _open_text(path, name, "jsonl")
    columns: dict[str, None] = {}
    seen_text = False
    with fh:
        for line, raw in _lines(fh, name, max_chars, bom):
            if not raw.strip():
                continue
            obj = json_object(raw, name, line)
            if len(columns) < 100:
                columns.update(dict.fromkeys(obj))
            value = obj.get(text_col)
            seen_text = seen_text or text_col in obj
            if value is not None and not isinstance(value, str):
                raise _err(f"{name}: line {line}: {text_col!r} must be a string, got {type(value).__name__}")
            yield line, value
    if columns and not seen_text:
        raise _missing_text(name, text_col, columns)


def _csv(path: Path, name: str, text_col: str, max_chars: int, delimiter: str) -> Iterator[tuple[int, str]]:
    """CSV/TSV with a header row; a quoted field may span lines (the reader pulls them)."""
    fh, bom = _open_text(path, name, "csv" if delimiter == "," else "tsv")
    lines = _lines(fh, name, max_chars, bom)
    where = {"line": 1}

    def feed():  # the csv module reads decoded lines; keep the number of the last one read
        for line, text in lines:
            where["line"] = line
            yield text

    old_limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize // 2)  # bounded by the line limit; max_text_chars judged later
    try:
        with fh:
            reader = csv.reader(feed(), delimiter=delimiter, strict=True)
            header, ti, start = None, 0, 1
            try:
                for record in reader:
                    if header is None:
                        header = [h.strip() for h in record]
                        if text_col not in header:
                            raise _missing_text(name, text_col, header)
                        ti = header.index(text_col)
                    elif record:
                        if len(record) != len(header):
                            raise _err(f"{name}: line {start}: expected {len(header)} fields, got "
                                       f"{len(record)} (truncated or malformed record?)")
                        yield start, record[ti]
                    start = where["line"] + 1
            except csv.Error as e:
                why = ("unbalanced quote: the quoted field runs to the end of the file"
                       if "unexpected end of data" in str(e) else f"{e}; unbalanced quote?")
                raise _err(f"{name}: line {start}: malformed CSV ({why})") from None
    finally:
        csv.field_size_limit(old_limit)


def _parquet(path: Path, name: str, text_col: str) -> Iterator[tuple[int, str | None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise _err(f"{name}: not a readable parquet file ({first_line(e)})") from None
    schema = pf.schema_arrow
    if text_col not in schema.names:
        raise _missing_text(name, text_col, schema.names)
    kind = schema.field(text_col).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise _err(f"{name}: column {text_col!r} must hold strings, got {kind}")
    row = 0
    for batch in parquet_batches(path, [text_col], PARQUET_BATCH_ROWS):  # one row group at a time
        for text in batch.column(0).to_pylist():
            row += 1
            yield row, text


def iter_texts(path: Path, name: str, text_col: str, max_text_chars: int) -> Iterator[tuple[int, str | None]]:
    """The rows of one file, streamed; `name` is how messages show the file.

    An empty file (no rows at all) is an error, as in `readers`.
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise _err(f"{name}: unsupported file type {suffix or '(none)'!r} (expected one of: "
                   f"{', '.join(SUFFIXES)})")
    if suffix == ".parquet":
        rows = _parquet(path, name, text_col)
    elif suffix in (".csv", ".tsv"):
        rows = _csv(path, name, text_col, max_text_chars, "," if suffix == ".csv" else "\t")
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl(path, name, text_col, max_text_chars)
    else:
        rows = _txt(path, name, max_text_chars)
    empty = True
    for item in rows:
        empty = False
        yield item
    if empty:
        raise _err(f"{name}: empty file")
