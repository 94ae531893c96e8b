"""Batch prediction / embedding with a registered model, streamed (never the whole file in memory).

    encoderflow predict --model models:/encoderflow@champion reviews.csv -o scored.parquet
    encoderflow embed   --model models:/encoderflow@champion reviews.jsonl -o vectors.npy
    encoderflow predict --model models/finetuned reviews.csv -o scored.csv   # a local model folder

The model is an MLflow model URI, or a local folder (`load_model`): a fine-tuned
model folder as finetune / teacher write it (models/finetuned, models/teacher) or
an ONNX export of one (`encoderflow export`, served without torch), served by the
registered pyfunc's own class without MLflow's store, or an MLflow model folder
(one with an MLmodel file).

Input: .csv, .jsonl (one JSON object a line) or .parquet with a text column;
read in record batches (pyarrow's streaming CSV / JSON readers, Parquet row
groups), scored `chunk_rows` at a time through the model's pyfunc, written as
it goes. Output rows are in input order. predict writes the input columns plus
label, label_id, prob_<label> (multi_label: labels, prob_<label>; labels is a
list, joined with "|" in a CSV) (an input column with one of those names is
kept as <name>_input); embed writes the input columns plus `embedding`
(.parquet) or only the float32 matrix [N, H] (.npy). Outputs appear atomically.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from components.core.errors import DataError, EncoderflowError, first_line

INPUTS = {".csv": "csv", ".jsonl": "json", ".parquet": "parquet"}
PRED_OUT = (".csv", ".jsonl", ".parquet")
EMBED_OUT = (".parquet", ".npy")


def _kind(path: Path, allowed: dict | tuple, what: str) -> str:
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
    kind = _kind(path, INPUTS, "input")
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
    if _kind(path, INPUTS, "input") == "parquet" and path.is_file():
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return sum(b.num_rows for b in read_batches(path, column))


def is_local(uri: str) -> bool:
    """True for a filesystem path (no URI scheme), False for models:/..., runs:/..., s3://, file:...

    >>> is_local("models/finetuned"), is_local("/abs/models/finetuned"), is_local("models:/encoderflow@champion")
    (True, True, False)
    """
    import re

    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", uri) is None


class FolderModel:
    """A fine-tuned model folder (or an ONNX export of one) behind the registered pyfunc's
    `predict(data, params=)`.

    It is the pyfunc class itself (components/registry/pyfunc.py, loading with
    `TextClassifier.from_folder`; for an export, registry/onnx_pyfunc.py, without torch), so
    a folder scores exactly like its registered version.
    """

    def __init__(self, folder: Path):
        from types import SimpleNamespace

        from components.registry import onnx_pyfunc
        from components.registry.publish import _signature

        if onnx_pyfunc.is_export(folder):
            self.impl = onnx_pyfunc.OnnxModel()
        else:
            from components.registry.pyfunc import EncoderflowModel

            self.impl = EncoderflowModel()
        self.impl.load_context(SimpleNamespace(artifacts={"model": str(folder)}))
        clf = self.impl.classifier  # the signature its registered version would get (pair_model reads it)
        inputs = _signature(clf.labels, clf.task, clf.biencoder is not None).inputs
        self.metadata = SimpleNamespace(get_input_schema=lambda: inputs)

    def predict(self, data, params: dict | None = None):
        return self.impl.predict(None, data, params)


def load_folder(folder: str | Path):
    """A local model folder: an MLflow model (MLmodel file) or a fine-tuned model folder.

    Anything else is a one-line error naming the folder.
    """
    from components.model.io import CONFIG, TOKENIZER, WEIGHTS

    folder = Path(folder)
    if not folder.exists():
        raise EncoderflowError(f"{folder}: model folder not found (expected a fine-tuned model folder "
                               "such as models/finetuned, or an MLflow model URI such as models:/NAME@champion)")
    if not folder.is_dir():
        raise EncoderflowError(f"{folder}: not a model folder (a file)")
    if (folder / "MLmodel").is_file():
        return load_model(folder.resolve().as_uri())
    if (folder / "onnx.json").is_file():  # an ONNX export (`encoderflow export`)
        return FolderModel(folder)
    missing = [n for n in (WEIGHTS, CONFIG, TOKENIZER) if not (folder / n).is_file()]
    if missing:
        raise EncoderflowError(f"{folder}: not a model folder (no {', '.join(missing)}; expected a folder "
                               "written by finetune or teacher, or an MLflow model with an MLmodel file)")
    if _is_encoder_only(folder / CONFIG):
        raise EncoderflowError(f"{folder}: an encoder folder without a classification head (pretrain's "
                               "output); predict with a fine-tuned folder such as models/finetuned")
    return FolderModel(folder)


def _is_encoder_only(config: Path) -> bool:
    """config.json as io.save_encoder writes it (pretrain): an encoder, no `kind`, no labels."""
    import json

    try:
        meta = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # TextClassifier.from_folder reports it
    return isinstance(meta, dict) and "encoder" in meta and "kind" not in meta


def load_model(uri: str):
    """The model to score with: `load_folder` for a local path, else mlflow.pyfunc.load_model,
    with a one-line error for a bad URI."""
    if is_local(uri):
        return load_folder(uri)
    import mlflow

    try:
        return mlflow.pyfunc.load_model(uri)
    except Exception as e:  # noqa: BLE001 - MlflowException, OSError, ... all mean "no such model"
        raise EncoderflowError(f"model {uri!r} could not be loaded ({first_line(e, 200)})") from None


def _chunks(batches, rows: int):
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


@contextlib.contextmanager
def _atomic_path(out: Path):
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


def _progress(path: Path, desc: str, total: int | None):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{desc} {path.name}", unit="rows", dynamic_ncols=True)


class _LabelSink:
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


class _EmbeddingSink:
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


def _write_empty(path: Path, kind: str, column: str) -> None:
    """The output for an input with no rows: a valid empty file of the output's format."""
    if kind == ".npy":
        import numpy as np

        np.save(path, np.zeros((0, 0), dtype=np.float32))
    elif kind == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({column: pa.array([], pa.string())}), path)
    # .csv / .jsonl: the empty temp file already is one


def pair_model(model, output: str = "label") -> bool:
    """Whether a loaded pyfunc reads (text, text_pair) rows for `output`: its signature names
    text_pair, and requires it for an embedding (a pair model with a bi-encoder, whose
    text_pair is optional, embeds single texts)."""
    schema = getattr(getattr(model, "metadata", None), "get_input_schema", lambda: None)()
    if schema is None or "text_pair" not in schema.input_names():
        return False
    return output == "label" or "text_pair" in schema.required_input_names()


def _stream(model, src: Path, out: Path, kind: str, column: str, output: str, chunk_rows: int,
            progress: bool, count: bool, open_sink, pair_column: str | None = None) -> tuple[int, object]:
    """The streaming loop of predict_file and embed_file; returns (row count, the sink).

    Reads `src` (its first batch before any output exists, so a bad input leaves
    nothing behind), scores `chunk_rows` rows at a time through the pyfunc with
    params {"output": output}, and hands each (chunk, result) to
    `open_sink(tmp, total)`, writing a temp file renamed onto `out` on success.
    `count`: count the rows first (a progress total; the .npy needs N up front).
    """
    batches = read_batches(src, column, pair_column=pair_column)
    first = next(batches, None)  # validates the file before any output appears
    total = count_rows(src, column) if count else None
    n = 0
    desc = "predict" if output == "label" else "embed"
    with _atomic_path(out) as tmp, _progress(src, desc, total) as bar:
        bar.disable = not progress
        sink = open_sink(tmp, total)
        try:
            for chunk in _chunks(_prepend(first, batches), chunk_rows):
                if pair_column:  # a pair model reads `text` + `text_pair`, whatever the file calls them
                    frame = chunk.select([column, pair_column]).to_pandas()
                    frame.columns = ["text", "text_pair"]
                else:
                    frame = chunk.select([column]).to_pandas()
                sink.write(chunk, model.predict(frame, params={"output": output}))
                n += chunk.num_rows
                bar.update(chunk.num_rows)
        finally:
            sink.close()
        if n == 0:
            _write_empty(tmp, kind, column)
    return n, sink


def _prepend(first, rest):
    if first is not None:
        yield first
    yield from rest


def predict_file(model, src: str | Path, out: str | Path, column: str = "text",
                 chunk_rows: int = 1024, progress: bool = True, pair_column: str = "text_pair") -> int:
    """Labels + probabilities for every row of `src` into `out`; returns the row count.
    A pair model (pair_model) reads `column` and `pair_column`."""
    pair_column = pair_column if pair_model(model) else None
    src, out = Path(src), Path(out)
    kind = _kind(out, PRED_OUT, "output")
    # only Parquet counts its rows cheaply (metadata); a CSV / JSON count would read it twice
    n, _ = _stream(model, src, out, kind, column, "label", chunk_rows, progress,
                   count=src.suffix.lower() == ".parquet", open_sink=lambda tmp, _: _LabelSink(tmp, kind),
                   pair_column=pair_column)
    return n


def embed_file(model, src: str | Path, out: str | Path, column: str = "text",
               chunk_rows: int = 1024, progress: bool = True, pair_column: str = "text_pair") -> tuple[int, int]:
    """Sentence vectors for every row of `src` into `out` (.parquet or .npy); returns (N, H).
    A pair model embeds each (column, pair_column) pair (the cross-encoder's pooled vector);
    a pair model with a bi-encoder embeds each `column` text alone."""
    pair_column = pair_column if pair_model(model, "embedding") else None
    src, out = Path(src), Path(out)
    kind = _kind(out, EMBED_OUT, "output")
    n, sink = _stream(model, src, out, kind, column, "embedding", chunk_rows, progress, count=True,
                      open_sink=lambda tmp, total: _EmbeddingSink(tmp, kind, total), pair_column=pair_column)
    return n, sink.dim
