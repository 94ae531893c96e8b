"""Readers for one local file: csv, tsv, jsonl, parquet, txt -> a `Chunk`.

Every reader turns bad input into a one-line `DataError` that names the file
and the line (text formats: the physical line an editor shows, header = line 1)
or row (parquet: 1-based row). Reading is strict: a malformed CSV record or
JSON line is an error, never silently skipped.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from components.core.errors import DataError, first_line

SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".txt")

# Leading bytes of files people rename by mistake (a PNG saved as .csv, ...).
MAGIC = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a zip archive",
    b"\x1f\x8b": "a gzip archive",
    b"BZh": "a bzip2 archive",
    b"PAR1": "a parquet file",
}


@dataclass
class Chunk:
    """Rows of one file (or one split of a dataset), in source order.

    `labels is None` means the chunk has no label column at all (unlabeled text
    for pretraining); a None inside `labels` is one row without a label.
    """

    origin: str  # shown in messages: "data/a.csv", "hf:imdb[train]"
    unit: str  # "line" or "row": what the numbers in `rows` count
    texts: list = field(default_factory=list)  # str or None (None = empty)
    labels: list | None = None  # label names (str) or None per row
    rows: list = field(default_factory=list)  # 1-based line/row number per text
    columns: tuple = ()  # columns found, for messages
    pairs: list | None = None  # pair task: the second text per row (str or None), else None

    def where(self, i: int) -> str:
        return f"{self.origin}: {self.unit} {self.rows[i]}"


def label_name(value, where: str) -> str | None:
    """A raw label value as a label name; None when the row has no label.

    >>> label_name(1, "x"), label_name(2.0, "x"), label_name(" pos ", "x"), label_name("", "x")
    ('1', '2', 'pos', None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip() or None
    if isinstance(value, (list, tuple)):
        raise DataError(f"{where}: label is a list ({_short(value)}); a set of labels per text needs "
                        f"ingest.task: multi_label", stage="ingest")
    raise DataError(f"{where}: label must be a string or an integer, got {type(value).__name__}",
                    stage="ingest")


def _short(value) -> str:
    text = repr(list(value))
    return text if len(text) <= 60 else text[:57] + "..."


NO_LABELS = "[]"  # multi_label: a string cell holding exactly this is a row with no labels


def label_set(value, where: str, delimiter: str = "") -> tuple[str, ...] | None:
    """multi_label: a raw label value as a tuple of distinct names (first-seen order); None when
    the row is unlabeled text. An empty list (or the string "[]", or a string of delimiters
    only) is a labelled row with NO labels: ().

    >>> label_set(["b", "a", "b"], "x"), label_set("a| b |", "x", "|"), label_set("a|b", "x")
    (('b', 'a'), ('a', 'b'), ('a|b',))
    >>> label_set([], "x"), label_set("[]", "x"), label_set("", "x", "|"), label_set(None, "x")
    ((), (), None, None)
    """
    if value is None:
        return None
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # a numpy array / scalar from parquet or datasets
    if isinstance(value, (list, tuple)):
        names = [label_name(v, where) for v in value]
        return tuple(dict.fromkeys(n for n in names if n is not None))
    if isinstance(value, str):
        text = unicodedata.normalize("NFC", value).strip()
        if not text:
            return None
        if text == NO_LABELS:
            return ()
        parts = text.split(delimiter) if delimiter else [text]
        return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    name = label_name(value, where)
    return None if name is None else (name,)


def label_parser(task: str, delimiter: str = ""):
    """The per-value label function the readers apply: label_name, or label_set for multi_label."""
    if task == "multi_label":
        return lambda value, where: label_set(value, where, delimiter)
    return label_name


def decode(data: bytes, name: str, kind: str) -> str:
    """Bytes of a text file -> str; binary junk and non-UTF-8 are errors."""
    for magic, what in MAGIC.items():
        if data.startswith(magic):
            raise DataError(f"{name}: looks like {what}, not a {kind} text file", stage="ingest")
    nul = data.find(b"\x00", 0, 65536)
    if nul >= 0:
        raise DataError(f"{name}: binary data (NUL byte at offset {nul}; UTF-16 is not "
                        f"supported, save the file as UTF-8)", stage="ingest")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = e.start + bom  # offset in the file
        line = data.count(b"\n", 0, at) + 1
        raise DataError(f"{name}: line {line}: not valid UTF-8 (byte 0x{data[at]:02x} at "
                        f"offset {at}); save the file as UTF-8", stage="ingest") from None
    if not text.strip():
        raise DataError(f"{name}: empty file", stage="ingest")
    return text


def _missing_text(name: str, column: str, columns) -> DataError:
    found = ", ".join(" ".join(str(c).split()) for c in columns)  # one line, even for odd headers
    return DataError(f"{name}: column {column!r} not found (columns: {found})", stage="ingest")


def read_csv(data: bytes, name: str, text_col: str, label_col: str, delimiter: str = ",",
             label_fn=label_name) -> Chunk:
    """CSV/TSV with a header row; quoted fields may span lines."""
    text = decode(data, name, "csv" if delimiter == "," else "tsv")
    old_limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize // 2)  # long texts are judged by max_text_chars, later
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        header, start, records = None, 1, []
        try:
            for record in reader:
                if header is None:
                    header = [h.strip() for h in record]
                elif record:  # a blank line gives []
                    records.append((start, record))
                start = reader.line_num + 1  # the next record starts on the next line
        except csv.Error as e:
            why = ("unbalanced quote: the quoted field runs to the end of the file"
                   if "unexpected end of data" in str(e) else f"{e}; unbalanced quote?")
            raise DataError(f"{name}: line {start}: malformed CSV ({why})", stage="ingest") from None
    finally:
        csv.field_size_limit(old_limit)
    if not records:
        raise DataError(f"{name}: empty file (a header but no data rows)", stage="ingest")
    if text_col not in header:
        raise _missing_text(name, text_col, header)
    ti, li = header.index(text_col), header.index(label_col) if label_col in header else None
    chunk = Chunk(name, "line", labels=[] if li is not None else None, columns=tuple(header))
    for line, record in records:
        if len(record) != len(header):
            raise DataError(f"{name}: line {line}: expected {len(header)} fields, got "
                            f"{len(record)} (truncated or malformed record?)", stage="ingest")
        chunk.rows.append(line)
        chunk.texts.append(record[ti])
        if li is not None:
            chunk.labels.append(label_fn(record[li], f"{name}: line {line}"))
    return chunk


def json_object(raw: str, name: str, line: int) -> dict:
    """One JSONL line as a dict; a one-line DataError naming file and line otherwise.

    >>> json_object('{"text": "hi"}', "a.jsonl", 1)
    {'text': 'hi'}
    """
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"{name}: line {line}: invalid JSON ({e.msg}, column {e.colno}; "
                        f"truncated line?)", stage="ingest") from None
    if not isinstance(obj, dict):
        raise DataError(f"{name}: line {line}: expected a JSON object, got "
                        f"{type(obj).__name__}", stage="ingest")
    return obj


def read_jsonl(data: bytes, name: str, text_col: str, label_col: str, label_fn=label_name) -> Chunk:
    """One JSON object per line; blank lines are skipped."""
    text = decode(data, name, "jsonl")
    objs = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        objs.append((line, json_object(raw, name, line)))
    columns = list(dict.fromkeys(k for _, o in objs for k in o))
    if text_col not in columns:
        raise _missing_text(name, text_col, columns)
    has_labels = label_col in columns
    chunk = Chunk(name, "line", labels=[] if has_labels else None, columns=tuple(columns))
    for line, obj in objs:
        value = obj.get(text_col)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{name}: line {line}: {text_col!r} must be a string, got "
                            f"{type(value).__name__}", stage="ingest")
        chunk.rows.append(line)
        chunk.texts.append(value)
        if has_labels:
            chunk.labels.append(label_fn(obj.get(label_col), f"{name}: line {line}"))
    return chunk


def read_txt(data: bytes, name: str) -> Chunk:
    """One text per line, no labels; blank lines are separators, not rows."""
    text = decode(data, name, "txt")
    chunk = Chunk(name, "line", columns=("text",))
    for line, raw in enumerate(text.splitlines(), 1):
        if raw.strip():
            chunk.rows.append(line)
            chunk.texts.append(raw)
    return chunk


def read_parquet(path: Path, name: str, text_col: str, label_col: str, label_fn=label_name) -> Chunk:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{name}: not a readable parquet file ({first_line(e)})", stage="ingest") from None
    if table.num_rows == 0:
        raise DataError(f"{name}: empty file (no rows)", stage="ingest")
    if text_col not in table.column_names:
        raise _missing_text(name, text_col, table.column_names)
    column = table.column(text_col)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise DataError(f"{name}: column {text_col!r} must hold strings, got {column.type}",
                        stage="ingest")
    has_labels = label_col in table.column_names
    chunk = Chunk(name, "row", texts=column.to_pylist(), rows=list(range(1, table.num_rows + 1)),
                  labels=[] if has_labels else None, columns=tuple(table.column_names))
    if has_labels:
        chunk.labels = [label_fn(v, f"{name}: row {i}")
                        for i, v in enumerate(table.column(label_col).to_pylist(), 1)]
    return chunk


def read_file(path: Path, name: str, text_col: str, label_col: str, label_fn=label_name) -> Chunk:
    """Dispatch on the suffix; `name` is how messages show the file. `label_fn(value, where)`
    turns a raw label cell into a name (label_name) or a tuple of names (label_parser)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{name}: unsupported file type {suffix or '(none)'!r} (expected one of: "
                        f"{', '.join(SUFFIXES)})", stage="ingest")
    if suffix == ".parquet":
        return read_parquet(path, name, text_col, label_col, label_fn)
    data = path.read_bytes()
    if not data:
        raise DataError(f"{name}: empty file", stage="ingest")
    if suffix in (".csv", ".tsv"):
        return read_csv(data, name, text_col, label_col, "," if suffix == ".csv" else "\t", label_fn)
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(data, name, text_col, label_col, label_fn)
    return read_txt(data, name)
