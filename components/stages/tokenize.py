"""tokenize stage: train the tokenizer, encode every split, report its quality.

Reads  data/prepared/{train,val,test,unlabeled}.parquet
       data/prepared/corpus.parquet     (only with ingest.unlabeled_source)
Writes models/tokenizer/tokenizer.json  (trained on train + unlabeled (+ corpus) text
                                         ONLY: val/test never shape the vocabulary)
       data/tokenized/                  (DatasetDict: input_ids list<int32> with
                                         [CLS]..[SEP], not truncated, not padded;
                                         label int64, -1 for unlabeled and corpus; a
                                         multi_label split keeps its label ids: list<int64>)
       reports/tokenizer.json           (vocab size, UNK rate, length stats)

Streaming: the tokenizer trains on an iterator over parquet record batches, the corpus
split is encoded batch by batch straight into its Arrow shards (data/tokenized.py), and the
report's length statistics are histograms; no step holds the corpus, its token ids or one
number per text.

    from components.core.config import Params
    from components.core.paths import Paths
    run(Params(), Paths.at("."))
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from components.core.atomic import atomic_dir, write_json
from components.core.config import Params, TokenizeConfig
from components.core.errors import DataError
from components.core.paths import ALL_SPLITS, CORPUS, Paths
from components.data.length_stats import add_hist as _add_hist
from components.data.length_stats import hist_stats, list_stats
from components.data.parquet_batches import parquet_batches
from components.data.tokenized import encode_batch_fn, features
from components.data.tokenizer_train import SPECIAL_TOKENS, UNK_ID, train_tokenizer
from components.stages import table

STAGE = "tokenize"
TRAIN_SPLITS = ("train", "unlabeled")  # the only text the tokenizer may learn from (+ corpus)
TEXT_BATCH = 2048  # rows per parquet record batch when streaming text


def run(cfg: Params, paths: Paths) -> dict:
    """The stage entry point: `tokenize` under its MLflow run; returns a summary."""
    import datasets  # noqa: F401  (imported before the compute timer starts)
    import mlflow

    from components.core.tracking import stage_run

    if mlflow.active_run() is not None:  # a driver already opened this stage's run
        t0 = time.perf_counter()
        report = tokenize(cfg.tokenize, paths)
        _log_mlflow(mlflow.active_run(), report, paths, time.perf_counter() - t0)
    else:
        with stage_run(cfg, STAGE, paths.root, sections=table.get(STAGE).params) as mlrun:
            t0 = time.perf_counter()
            report = tokenize(cfg.tokenize, paths)
            _log_mlflow(mlrun, report, paths, time.perf_counter() - t0)
    overall = report["overall"]
    return {"vocab_size": report["vocab_size"], "unk_rate": float(f"{overall['unk_rate'] or 0.0:.3g}"),
            "texts": {s: stats["texts"] for s, stats in report["splits"].items()}}


def tokenize(cfg: TokenizeConfig, paths: Paths, show_progress: bool = True) -> dict:
    """Train, save and apply the tokenizer; write and return reports/tokenizer.json."""
    _quiet_datasets(show_progress)
    for split in ALL_SPLITS:
        _check_split(paths, split)
    corpus = paths.split(CORPUS).is_file()  # written by ingest only with ingest.unlabeled_source
    if corpus:
        _check_split(paths, CORPUS)
    train_splits = TRAIN_SPLITS + ((CORPUS,) if corpus else ())
    n_texts = sum(_rows(paths, split) * len(_text_columns(paths, split)) for split in train_splits)
    if not n_texts:
        raise DataError(f"{_rel(paths, paths.prepared)}: {' + '.join(train_splits)} hold no text to "
                        "train the tokenizer on", stage=STAGE)
    tok = train_tokenizer(_texts(paths, train_splits), cfg, show_progress=show_progress, length=n_texts)

    with atomic_dir(paths.tokenizer_dir) as tok_tmp, atomic_dir(paths.tokenized) as data_tmp:
        tok.save(str(tok_tmp / "tokenizer.json"))
        dd = encode_splits(tok, paths, cfg.batch_size, cache_dir=data_tmp / ".cache")
        # an empty split still gets one (empty) shard, else it saves no data file and won't load
        dd.save_to_disk(str(data_tmp), num_shards={k: 1 for k, d in dd.items() if len(d) == 0})
        stats = {s: token_stats(dd[s]) for s in ALL_SPLITS}
        del dd  # release memory maps before the cache folder goes
        _rmtree(data_tmp / ".cache")
        if corpus:
            stats[CORPUS] = encode_corpus(tok, paths, data_tmp, cfg.batch_size, show_progress)
        sha = hashlib.sha256((tok_tmp / "tokenizer.json").read_bytes()).hexdigest()

    report = build_report(tok, cfg, stats, sha, train_splits)
    write_json(paths.report("tokenizer"), report)
    return report


def _multi(path: Path) -> bool:
    """Whether a prepared split holds multi_label rows (label is a list column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return "label" in schema.names and pa.types.is_list(schema.field("label").type)


def _pair(path: Path) -> bool:
    """Whether a prepared split holds pair rows (a text_pair column)."""
    import pyarrow.parquet as pq

    return "text_pair" in pq.read_schema(path).names


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
                                                    features=features(labelled and _multi(paths.split(split))))
            continue
        with _no_progress_bars():  # from_parquet's bar says "Generating train split" for every split
            pair = ["text_pair"] if labelled and _pair(paths.split(split)) else []
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


def split_stats(lengths: np.ndarray, unk: int, max_length: int) -> dict:
    """Report numbers for one split from its lengths (incl. [CLS] and [SEP]); the stage
    itself uses `hist_stats` on length histograms, which gives the same numbers.

    >>> split_stats(np.array([4, 6]), 1, max_length=5)["truncation_rate"]
    0.5
    """
    return hist_stats(np.bincount(np.asarray(lengths, dtype=np.int64)), unk, max_length)


def build_report(tok, cfg: TokenizeConfig, stats: dict[str, tuple[np.ndarray, int]], sha256: str,
                 trained_on: tuple[str, ...] = TRAIN_SPLITS) -> dict:
    """`stats`: split -> (length histogram, [UNK] count)."""
    splits = {s: hist_stats(hist, unk, cfg.max_length) for s, (hist, unk) in stats.items()}
    overall = np.zeros(0, dtype=np.int64)
    for hist, _ in stats.values():
        overall = _add_hist(overall, hist)
    return {
        "model": cfg.model,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "vocab_size_requested": cfg.vocab_size,
        "min_frequency": None if cfg.model == "unigram" else cfg.min_frequency,
        "lowercase": cfg.lowercase,
        "max_length": cfg.max_length,
        "special_tokens": {t: tok.token_to_id(t) for t in SPECIAL_TOKENS},
        "trained_on": list(trained_on),
        "tokenizer_sha256": sha256,
        "splits": splits,
        "overall": hist_stats(overall, sum(unk for _, unk in stats.values()), cfg.max_length),
        "definitions": {
            "tokens": "content tokens, without the [CLS]/[SEP] every text gets",
            "unk_rate": "[UNK] tokens / content tokens",
            "mean_tokens, p95_tokens, max_tokens": "len(input_ids) per text, incl. [CLS] and [SEP]",
            "truncation_rate": "share of texts with len(input_ids) > max_length",
        },
    }


def _check_split(paths: Paths, split: str) -> None:
    """Fail early, with the file named, on a missing split, column, bad type or null.
    Reads one record batch at a time (the corpus split may be bigger than RAM)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = paths.split(split)
    if not path.is_file():
        raise DataError(f"{_rel(paths, path)}: not found (run `encoderflow stage ingest` first)", stage=STAGE)
    try:
        schema = pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{_rel(paths, path)}: unreadable parquet ({e})", stage=STAGE) from None
    names = schema.names
    for col in ("text",) if split in ("unlabeled", CORPUS) else ("text", "label"):
        if col not in names:
            raise DataError(f"{_rel(paths, path)}: column {col!r} not found (columns: {', '.join(names)})",
                            stage=STAGE)
    kinds = {"text": (pa.types.is_string, pa.types.is_large_string),
             "label": (pa.types.is_integer,  # multi_label: a list of ids
                       lambda t: pa.types.is_list(t) and pa.types.is_integer(t.value_type))}
    for col, checks in kinds.items():
        if col in names and not any(check(schema.field(col).type) for check in checks):
            raise DataError(f"{_rel(paths, path)}: column {col!r} has type {schema.field(col).type} "
                            f"(expected {'string' if col == 'text' else 'integer label ids'})", stage=STAGE)

    columns = [c for c in ("text", "text_pair", "label") if c in names]
    offset = 0
    for batch in parquet_batches(path, columns, TEXT_BATCH):
        for col, values in zip(columns, batch.columns):
            nulls = pc.is_null(values)
            if pc.any(nulls).as_py():
                row = offset + int(np.flatnonzero(nulls.to_numpy(zero_copy_only=False))[0])
                raise DataError(f"{_rel(paths, path)}: row {row}: {col} is null", stage=STAGE)
        offset += batch.num_rows


def _rows(paths: Paths, split: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(paths.split(split)).metadata.num_rows


def _text_columns(paths: Paths, split: str) -> list[str]:
    """The text a split gives the tokenizer: a pair split's two sides both train it."""
    return ["text", "text_pair"] if split in ALL_SPLITS and _pair(paths.split(split)) else ["text"]


def _texts(paths: Paths, splits: tuple[str, ...]):
    """The text of `splits`, in order, one parquet record batch in memory at a time."""
    for split in splits:
        columns = _text_columns(paths, split)
        for batch in parquet_batches(paths.split(split), columns, TEXT_BATCH):
            for col in batch.columns:
                yield from col.to_pylist()


def _quiet_datasets(show_progress: bool) -> None:
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


def _log_mlflow(mlrun, report: dict, paths: Paths, compute_s: float) -> None:
    import mlflow

    # time.compute_s: train + encode + save + stats (benchmarks/pipeline_overhead.py)
    metrics = {"vocab_size": report["vocab_size"], "time.compute_s": compute_s}
    for name, stats in [("overall", report["overall"]), *report["splits"].items()]:
        for key in ("unk_rate", "mean_tokens", "p95_tokens", "truncation_rate", "texts"):
            if stats[key] is not None:
                metrics[f"{name}.{key}"] = stats[key]
    mlflow.log_metrics(metrics, run_id=mlrun.info.run_id)
    mlflow.log_artifact(str(paths.report("tokenizer")), run_id=mlrun.info.run_id)
    mlflow.log_artifact(str(paths.tokenizer), artifact_path="tokenizer", run_id=mlrun.info.run_id)


def _rel(paths: Paths, path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(paths.root))
    return str(path)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
