"""Readers and sources: every format, globs, hf: on local folders, and bad input.

Each bad input must give ONE line naming the file and (where it exists) the
line or row.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.core.config import IngestConfig
from components.core.errors import DataError
from components.core.paths import Paths
from components.data.sources import read_source
from components.stages.ingest import ingest

ROWS = [("good film", "pos"), ("bad film", "neg"), ("fine film", "pos")]


def _csv(path: Path, rows=ROWS, header="text,label", sep=","):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{t}{sep}{l}\n" for t, l in rows), encoding="utf-8")
    return path


def _read(project, source, **kw):
    return read_source(IngestConfig(source=source, **kw), project)


def _error(project, source, **kw) -> str:
    """Run the whole stage and return its one-line error."""
    with pytest.raises(DataError) as info:
        ingest(IngestConfig(source=source, **kw), Paths.at(project))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("ingest: ")
    return msg


def _png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
            + chunk(b"IEND", b""))


# --- each format -----------------------------------------------------------------------------

def test_csv_with_quoted_multiline_field_and_line_numbers(project):
    (project / "a.csv").write_text('text,label\n"two\nlines",pos\nplain,neg\n', encoding="utf-8")
    (chunk,), source = _read(project, "file:a.csv")
    assert source == "file:a.csv" and chunk.origin == "a.csv"
    assert chunk.texts == ["two\nlines", "plain"] and chunk.labels == ["pos", "neg"]
    assert chunk.rows == [2, 4]  # the physical line where each record starts


def test_tsv_jsonl_parquet_txt(project):
    _csv(project / "d/a.tsv", header="text\tlabel", sep="\t")
    (project / "d/b.jsonl").write_text(
        "\n".join(json.dumps({"text": t, "label": i % 2, "extra": None}) for i, (t, _) in enumerate(ROWS))
        + "\n\n", encoding="utf-8")
    pq.write_table(pa.table({"text": ["x", None], "label": ["p", None]}), project / "d/c.parquet")
    (project / "d/d.txt").write_text("first line\n\n  second  \n", encoding="utf-8")
    chunks, _ = _read(project, "file:d")  # a folder: every supported file, sorted
    assert [c.origin for c in chunks] == ["d/a.tsv", "d/b.jsonl", "d/c.parquet", "d/d.txt"]
    assert chunks[0].labels == ["pos", "neg", "pos"]
    assert chunks[1].labels == ["0", "1", "0"] and chunks[1].rows == [1, 2, 3]
    assert chunks[2].texts == ["x", None] and chunks[2].labels == ["p", None]
    assert chunks[3].labels is None and chunks[3].texts == ["first line", "  second  "]
    assert chunks[3].rows == [1, 3]


def test_glob_is_sorted_and_file_without_labels_is_unlabeled(project):
    _csv(project / "raw/b.csv")
    (project / "raw/a.csv").write_text("text\nonly text\n", encoding="utf-8")
    chunks, _ = _read(project, "file:raw/*.csv")
    assert [c.origin for c in chunks] == ["raw/a.csv", "raw/b.csv"]
    assert chunks[0].labels is None and chunks[1].labels is not None


def test_custom_column_names(project):
    _csv(project / "a.csv", header="review,sentiment")
    (chunk,), _ = _read(project, "file:a.csv", text_column="review", label_column="sentiment")
    assert chunk.texts[0] == "good film" and chunk.labels[1] == "neg"


def test_outside_project_needs_permission(project, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    _csv(other / "x.csv")
    rel = f"../{other.name}/x.csv"
    assert "outside the project" in _error(project, f"file:{rel}")
    assert "ingest.allow_outside_project" in _error(project, f"file:{other}/x.csv")
    (chunk,), _ = _read(project, f"file:{other}/x.csv", allow_outside_project=True)
    assert len(chunk.texts) == 3


# --- bad input: one line each, naming file and line/row -------------------------------------

BAD = [
    ("a.csv", None, "file not found"),
    ("empty.csv", b"", "empty.csv: empty file"),
    ("blank.csv", b" \n\n", "blank.csv: empty file"),
    ("hdr.csv", b"text,label\n", "hdr.csv: empty file (a header but no data rows)"),
    ("cols.csv", b"body,label\nx,pos\n", "cols.csv: column 'text' not found (columns: body, label)"),
    ("cols.jsonl", b'{"body": "x"}\n', "cols.jsonl: column 'text' not found (columns: body)"),
    ("utf.csv", b"text,label\nok,pos\ncaf\xe9,neg\n", "utf.csv: line 3: not valid UTF-8 (byte 0xe9 at offset 21)"),
    ("img.csv", _png(), "img.csv: looks like a PNG image, not a csv text file"),
    ("nul.txt", b"abc\x00def\n", "nul.txt: binary data (NUL byte at offset 3"),
    ("quote.csv", b'text,label\nok,pos\n"never closed,neg\nmore,pos\n',
     "quote.csv: line 3: malformed CSV (unbalanced quote"),
    ("short.csv", b"text,label\nok,pos\ncut", "short.csv: line 3: expected 2 fields, got 1"),
    ("long.csv", b"text,label\nok,pos,x\n", "long.csv: line 2: expected 2 fields, got 3"),
    ("cut.jsonl", b'{"text": "a", "label": 1}\n{"text": "b", "lab',
     "cut.jsonl: line 2: invalid JSON (Unterminated string"),
    ("list.jsonl", b"[1, 2]\n", "list.jsonl: line 1: expected a JSON object, got list"),
    ("img.parquet", _png(), "img.parquet: not a readable parquet file"),
    ("x.xlsx", b"junk", "x.xlsx: unsupported file type '.xlsx'"),
]


@pytest.mark.parametrize("name, data, expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_error(project, name, data, expected):
    if data is not None:
        (project / name).write_bytes(data)
    assert expected in _error(project, f"file:{name}")


def test_glob_without_match(project):
    assert _error(project, "file:nope/*.csv") == "ingest: file:nope/*.csv: no files match"


def test_huge_single_text_names_file_and_line(project):
    big = "word " * (2 * 1024 * 1024)  # 10 MB in one field
    (project / "big.csv").write_text(f"text,label\nok,pos\n\"{big}\",neg\n", encoding="utf-8")
    msg = _error(project, "file:big.csv")
    assert "big.csv: line 3: text has 10485759 characters (more than ingest.max_text_chars=1000000)" in msg


def test_no_labels_anywhere_fails_clearly(project):
    (project / "a.txt").write_text("one\ntwo\n", encoding="utf-8")
    (project / "b.csv").write_text("text,stars\nthree,5\n", encoding="utf-8")
    msg = _error(project, "file:*.*")
    assert "no labelled rows: column 'label' not found in any input" in msg
    assert "b.csv: text, stars" in msg


def test_unknown_scheme_lists_valid_ones(project):
    msg = _error(project, "s3://bucket/x.csv")
    assert "sample:rotten_tomatoes, sample:stsb, file:PATH_OR_GLOB, hf:NAME[:CONFIG]" in msg
    assert "unknown sample 'imdb'" in _error(project, "sample:imdb")


# --- hf: on local folders ---------------------------------------------------------------------

def test_hf_save_to_disk_folder_with_classlabel(project):
    import datasets

    train = datasets.Dataset.from_dict({"text": ["good", "bad", "meh"], "label": [1, 0, 1]})
    train = train.cast_column("label", datasets.ClassLabel(names=["neg", "pos"]))
    test = datasets.Dataset.from_dict({"text": ["hidden"], "label": [-1]}, features=train.features)
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(project / "hfdata"))
    chunks, _ = _read(project, "hf:hfdata")
    assert [c.origin for c in chunks] == ["hf:hfdata[train]", "hf:hfdata[test]"]
    assert chunks[0].labels == ["pos", "neg", "pos"]
    assert chunks[1].labels == [None]  # -1: no label -> unlabeled text


def test_hf_folder_of_csv_files_runs_the_stage(project):
    _csv(project / "raw/train.csv", rows=[(f"text number {i}", "ab"[i % 2]) for i in range(40)])
    summary = ingest(IngestConfig(source="hf:raw"), Paths.at(project))
    assert summary["train"] + summary["val"] + summary["test"] == 40


def test_hf_errors(project):
    msg = _error(project, "hf:nobody/no-such-dataset")
    assert "hf:nobody/no-such-dataset: could not load the dataset" in msg
    assert "HF_DATASETS_OFFLINE" in msg
    _csv(project / "raw/train.csv", header="body,label")
    assert "hf:raw[train]: column 'text' not found (columns: body, label)" in _error(project, "hf:raw")


def test_utf8_bom_is_stripped_and_offsets_count_it(project):
    (project / "bom.csv").write_bytes(b"\xef\xbb\xbftext,label\nok,pos\n")
    (chunk,), _ = _read(project, "file:bom.csv")
    assert chunk.columns == ("text", "label")
    (project / "bad.csv").write_bytes(b"\xef\xbb\xbftext,label\n\xff,pos\n")
    assert "bad.csv: line 2: not valid UTF-8 (byte 0xff at offset 14)" in _error(project, "file:bad.csv")
