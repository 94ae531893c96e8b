"""data/tokenized, the tokenize stage's contract, and a streaming writer for big splits.

A split is a `datasets` folder in `save_to_disk`'s layout (data-XXXXX-of-YYYYY.arrow shards
in Arrow's IPC stream format, dataset_info.json, state.json) with the columns
input_ids list<int32> ([CLS] .. [SEP], not truncated, not padded) and label int64
(-1 = unlabeled), listed in the DatasetDict's dataset_dict.json.

`write_split` encodes a parquet text file into such a folder one record batch at a time:
it reads with read() (no memory map of the input), writes each encoded batch straight to
the open shard and rolls over to a new shard every SHARD_BYTES. Nothing is held but one
batch, and the length histogram and [UNK] count the report needs (`on_batch`). The corpus
split (ingest.unlabeled_source) is written this way, since datasets' map + save_to_disk
would read the whole split back through a memory map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

SHARD_BYTES = 500 << 20  # as datasets' save_to_disk (config.MAX_SHARD_SIZE)


def features(multi: bool = False):
    """The tokenized contract: input_ids list<int32>, label int64 (-1 = unlabeled), or
    list<int64> for a multi_label split."""
    import datasets

    label = datasets.List(datasets.Value("int64")) if multi else datasets.Value("int64")
    return datasets.Features({"input_ids": datasets.List(datasets.Value("int32")), "label": label})


def encode_batch_fn(tok, labelled: bool):
    """An Arrow batch of `text` (+ `text_pair`) (+ `label`) -> Arrow table (input_ids, label).

    Encodes with `encode_batch_fast` (no offsets) and builds the int32 list
    column straight from numpy, so no Python list of ints is converted by datasets.
    """
    import pyarrow as pa

    def fn(batch):  # batch: pa.Table with `text` [B] (+ `text_pair` [B]) (+ `label` [B])
        texts = batch.column("text").to_pylist()
        if "text_pair" in batch.column_names:  # pair: "[CLS] a [SEP] b [SEP]" (the pair template)
            texts = list(zip(texts, batch.column("text_pair").to_pylist()))
        ids = [e.ids for e in tok.encode_batch_fast(texts)]
        lengths = np.fromiter(map(len, ids), dtype=np.int32, count=len(ids))  # [B]
        offsets = np.zeros(len(ids) + 1, dtype=np.int32)  # [B+1], offsets[i]..offsets[i+1] = row i
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int32, count=int(offsets[-1]))
        if not labelled:
            label = pa.array(np.full(len(ids), -1, dtype=np.int64))
        elif pa.types.is_list(batch.column("label").type):  # multi_label: the label ids of each row
            label = batch.column("label").cast(pa.list_(pa.int64()))
        else:
            label = batch.column("label").cast(pa.int64())
        return pa.table({"input_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)),
                         "label": label})

    return fn


def write_split(tok, parquet: Path, out_dir: Path, batch_size: int, fingerprint: str,
                on_batch: Callable | None = None, shard_bytes: int = SHARD_BYTES) -> int:
    """Encode the `text` column of `parquet` into the split folder `out_dir` (unlabeled rows),
    `batch_size` rows at a time; returns the number of rows."""
    import pyarrow as pa

    from components.data.parquet_batches import parquet_batches

    encode = encode_batch_fn(tok, labelled=False)
    tables = (encode(pa.Table.from_batches([batch])) for batch in parquet_batches(parquet, ["text"], batch_size))
    return write_tables(tables, out_dir, fingerprint, on_batch, shard_bytes)


def write_tables(tables: Iterable, out_dir: Path, fingerprint: str, on_batch: Callable | None = None,
                 shard_bytes: int = SHARD_BYTES) -> int:
    """Arrow tables (input_ids, label), in order, -> the split folder `out_dir`; each table
    becomes one record batch. `on_batch(input_ids ListArray)` sees every batch."""
    import datasets
    import pyarrow as pa

    out_dir.mkdir(parents=True)
    schema = features().arrow_schema  # with datasets' "huggingface" metadata, as map writes it
    shards: list[Path] = []
    sink = writer = None
    rows = 0

    def open_shard():
        nonlocal sink, writer
        shards.append(out_dir / f".shard-{len(shards):05d}.arrow")
        sink = pa.OSFile(str(shards[-1]), "wb")
        writer = pa.ipc.new_stream(sink, schema)

    def close_shard():
        writer.close()
        sink.close()

    open_shard()
    for table in tables:
        table = table.cast(schema)  # same columns and types; attaches the metadata
        if sink.tell() >= shard_bytes:
            close_shard()
            open_shard()
        for batch in table.combine_chunks().to_batches():
            writer.write_batch(batch)
        rows += table.num_rows
        if on_batch is not None:
            on_batch(table.column("input_ids").combine_chunks())
    close_shard()

    names = [f"data-{i:05d}-of-{len(shards):05d}.arrow" for i in range(len(shards))]
    for shard, name in zip(shards, names):
        shard.rename(out_dir / name)
    # The two files save_to_disk writes next to its shards (same keys, same formatting).
    state = {"_data_files": [{"filename": n} for n in names], "_fingerprint": fingerprint,
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
             "_output_all_columns": False, "_split": None}
    (out_dir / datasets.config.DATASET_STATE_JSON_FILENAME).write_text(
        json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    datasets.DatasetInfo(features=features()).write_to_directory(str(out_dir))
    return rows


def add_split(dd_dir: Path, name: str) -> None:
    """List the split folder `dd_dir/name` in the DatasetDict's dataset_dict.json."""
    path = dd_dir / "dataset_dict.json"
    splits = json.loads(path.read_text(encoding="utf-8"))["splits"]
    if name not in splits:
        path.write_text(json.dumps({"splits": [*splits, name]}), encoding="utf-8")
