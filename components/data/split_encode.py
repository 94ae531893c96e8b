"""Encode the prepared splits into data/tokenized (datasets' Arrow), and count their tokens.

    dd = encode_splits(tok, paths, batch_size, cache_dir)     # train, val, test, unlabeled
    hist, unk = encode_corpus(tok, paths, out_dir, batch_size, show_progress)   # streamed
    hist, unk = token_stats(dd["train"])                      # length histogram, [UNK] count

Rows become input_ids list<int32> with [CLS] .. [SEP] (not truncated, not padded) and label
int64 (-1 for unlabeled and corpus; a multi_label split keeps its label ids: list<int64>);
the layout is data/tokenized.py's contract. Every datasets fingerprint comes from content
(the tokenizer and the input file's bytes), never from paths or mtimes, so the saved files
are the same on every run and DVC sees no change. `encode_dataset` is also what
benchmarks/tokenize.py times.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path

import numpy as np

from components.core.paths import ALL_SPLITS, CORPUS, Paths
from components.data.length_stats import add_hist as _add_hist
from components.data.length_stats import list_stats
from components.data.prepared_text import is_multi, is_pair
from components.data.tokenized import encode_batch_fn, features
from components.data.tokenizer_train import UNK_ID


def encode_splits(tok, paths: Paths, batch_size: int, cache_dir: Path):
    """Encode all four splits; datasets' cache files stay under `cache_dir`."""
    import datasets
    import pyarrow.parquet as pq

    out = {}
    for split in ALL_SPLITS:
        labelled = split != "unlabeled"
        if pq.ParquetFile(paths.split(split)).metadata.num_rows == 0:
            # from_parquet fails on an empty file ("BatchSize must be greater than 0")
            out[split] = datasets.Dataset.from_dict({"input_ids": [], "label": []},
                                                    features=features(labelled and is_multi(paths.split(split))))
            continue
        with _no_progress_bars():  # from_parquet's bar says "Generating train split" for every split
            pair = ["text_pair"] if labelled and is_pair(paths.split(split)) else []
            ds = datasets.Dataset.from_parquet(
                str(paths.split(split)), columns=["text", *pair, "label"] if labelled else ["text"],
                cache_dir=str(cache_dir / "parquet"))
        # A fingerprint from the content (tokenizer + input file), not from paths
        # and mtimes: the saved state.json is the same on every run (DVC sees no change).
        out[split] = encode_dataset(ds, tok, batch_size, cache_file=cache_dir / f"{split}.arrow",
                                    desc=f"tokenize {split}", fingerprint=_fingerprint(tok, paths.split(split)))
    return datasets.DatasetDict(out)


def _fingerprint(tok, path: Path) -> str:
    """16 hex of sha256(tokenizer JSON + the input file's bytes, read in 1 MiB pieces)."""
    digest = hashlib.sha256(tok.to_str().encode())
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()[:16]


def encode_corpus(tok, paths: Paths, data_tmp: Path, batch_size: int, show_progress: bool):
    """Stream data/prepared/corpus.parquet into the corpus split; returns its (histogram, unk)."""
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from components.data.tokenized import add_split, write_split

    hist, unk = np.zeros(0, dtype=np.int64), 0
    bar = tqdm(total=pq.ParquetFile(paths.split(CORPUS)).metadata.num_rows, desc=f"tokenize {CORPUS}",
               unit=" texts", disable=not show_progress, mininterval=1.0)

    def on_batch(col) -> None:  # col: ListArray of one encoded batch
        nonlocal hist, unk
        h, u = _list_stats(col)
        hist, unk = _add_hist(hist, h), unk + u
        bar.update(len(col))

    with bar:
        write_split(tok, paths.split(CORPUS), data_tmp / CORPUS, batch_size,
                    _fingerprint(tok, paths.split(CORPUS)), on_batch)
    add_split(data_tmp, CORPUS)
    return hist, unk


def encode_dataset(ds, tok, batch_size: int, cache_file: Path | None = None, desc: str | None = None,
                   fingerprint: str | None = None):
    """`ds` (text [+ label]) -> (input_ids list<int32>, label int64) via datasets.map.

    Written to `cache_file` (memory stays flat on big corpora), or kept in
    memory when it is None. Used by the stage and by benchmarks/tokenize.py.
    """
    import datasets

    if fingerprint is None:
        fingerprint = hashlib.sha256(tok.to_str().encode() + ds._fingerprint.encode()).hexdigest()[:16]

    labelled = "label" in ds.column_names
    multi = labelled and isinstance(ds.features["label"], datasets.List)
    return ds.with_format("arrow").map(
        encode_batch_fn(tok, labelled=labelled), batched=True,
        batch_size=batch_size, remove_columns=ds.column_names, features=features(multi), desc=desc,
        keep_in_memory=cache_file is None, load_from_cache_file=False,
        cache_file_name=None if cache_file is None else str(cache_file),
        new_fingerprint=fingerprint,  # given, so datasets does not hash (pickle) the tokenizer
    ).with_format(None)


def token_stats(ds) -> tuple[np.ndarray, int]:
    """(length histogram incl. [CLS]/[SEP], number of [UNK] ids) of a tokenized split,
    one Arrow chunk at a time (never the split's ids at once)."""
    hist, unk = np.zeros(0, dtype=np.int64), 0
    for col in ds.data.column("input_ids").chunks:  # ListArray<int32> per record batch
        h, u = _list_stats(col)
        hist, unk = _add_hist(hist, h), unk + u
    return hist, unk


def _list_stats(col) -> tuple[np.ndarray, int]:
    return list_stats(col, UNK_ID)


def quiet_datasets(show_progress: bool) -> None:
    import datasets

    datasets.utils.logging.set_verbosity_error()
    logging.getLogger("datasets").setLevel(logging.ERROR)
    if show_progress:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()


@contextlib.contextmanager
def _no_progress_bars():
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
