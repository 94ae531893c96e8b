"""Batch prediction / embedding with a registered model, streamed (never the whole file in memory).

    encoderflow predict --model models:/encoderflow@champion reviews.csv -o scored.parquet
    encoderflow embed   --model models:/encoderflow@champion reviews.jsonl -o vectors.npy
    encoderflow predict --model models/finetuned reviews.csv -o scored.csv   # a local model folder

The model is an MLflow model URI, or a local folder (registry/load.py). The input
(.csv, .jsonl or .parquet with a text column) is read in record batches
(registry/batch_read.py), scored `chunk_rows` at a time through the model's pyfunc, and
written as it goes (registry/batch_write.py). Output rows are in input order; outputs
appear atomically.
"""

from __future__ import annotations

from pathlib import Path

from components.registry.batch_read import count_rows, file_kind, read_batches
from components.registry.batch_write import EMBED_OUT, PRED_OUT, EmbeddingSink, LabelSink, atomic_path, write_empty


def _chunks(batches, rows: int):
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _progress(path: Path, desc: str, total: int | None):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{desc} {path.name}", unit="rows", dynamic_ncols=True)


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
    with atomic_path(out) as tmp, _progress(src, desc, total) as bar:
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
            write_empty(tmp, kind, column)
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
    kind = file_kind(out, PRED_OUT, "output")
    # only Parquet counts its rows cheaply (metadata); a CSV / JSON count would read it twice
    n, _ = _stream(model, src, out, kind, column, "label", chunk_rows, progress,
                   count=src.suffix.lower() == ".parquet", open_sink=lambda tmp, _: LabelSink(tmp, kind),
                   pair_column=pair_column)
    return n


def embed_file(model, src: str | Path, out: str | Path, column: str = "text",
               chunk_rows: int = 1024, progress: bool = True, pair_column: str = "text_pair") -> tuple[int, int]:
    """Sentence vectors for every row of `src` into `out` (.parquet or .npy); returns (N, H).
    A pair model embeds each (column, pair_column) pair (the cross-encoder's pooled vector);
    a pair model with a bi-encoder embeds each `column` text alone."""
    pair_column = pair_column if pair_model(model, "embedding") else None
    src, out = Path(src), Path(out)
    kind = file_kind(out, EMBED_OUT, "output")
    n, sink = _stream(model, src, out, kind, column, "embedding", chunk_rows, progress, count=True,
                      open_sink=lambda tmp, total: EmbeddingSink(tmp, kind, total), pair_column=pair_column)
    return n, sink.dim
