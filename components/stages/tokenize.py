"""tokenize stage: train the tokenizer, encode every split, report its quality.

Reads  data/prepared/{train,val,test,unlabeled}.parquet
Writes models/tokenizer/tokenizer.json  (trained on train + unlabeled text ONLY:
                                         val/test never shape the vocabulary)
       data/tokenized/                  (DatasetDict: input_ids list<int32> with
                                         [CLS]..[SEP], not truncated, not padded;
                                         label int64, -1 for unlabeled; a multi_label
                                         split keeps its label ids: list<int64>)
       reports/tokenizer.json           (vocab size, UNK rate, length stats)

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
from components.core.paths import ALL_SPLITS, Paths
from components.data.tokenizer_train import SPECIAL_TOKENS, UNK_ID, train_tokenizer
from components.stages import table

STAGE = "tokenize"
TRAIN_SPLITS = ("train", "unlabeled")  # the only text the tokenizer may learn from
SPECIALS_PER_TEXT = 2  # [CLS] + [SEP], added to every text by the post-processor


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
            "texts": {s: report["splits"][s]["texts"] for s in ALL_SPLITS}}


def tokenize(cfg: TokenizeConfig, paths: Paths, show_progress: bool = True) -> dict:
    """Train, save and apply the tokenizer; write and return reports/tokenizer.json."""
    _quiet_datasets(show_progress)
    for split in ALL_SPLITS:
        _check_split(paths, split)
    texts = [t for split in TRAIN_SPLITS for t in _texts(paths, split)]
    if not texts:
        raise DataError(f"{_rel(paths, paths.prepared)}: train + unlabeled hold no text to train "
                        "the tokenizer on", stage=STAGE)
    tok = train_tokenizer(texts, cfg, show_progress=show_progress)
    del texts

    with atomic_dir(paths.tokenizer_dir) as tok_tmp, atomic_dir(paths.tokenized) as data_tmp:
        tok.save(str(tok_tmp / "tokenizer.json"))
        dd = encode_splits(tok, paths, cfg.batch_size, cache_dir=data_tmp / ".cache")
        # an empty split still gets one (empty) shard, else it saves no data file and won't load
        dd.save_to_disk(str(data_tmp), num_shards={k: 1 for k, d in dd.items() if len(d) == 0})
        lengths_unk = {s: token_stats(dd[s]) for s in ALL_SPLITS}
        del dd  # release memory maps before the cache folder goes
        _rmtree(data_tmp / ".cache")
        sha = hashlib.sha256((tok_tmp / "tokenizer.json").read_bytes()).hexdigest()

    report = build_report(tok, cfg, lengths_unk, sha)
    write_json(paths.report("tokenizer"), report)
    return report


def encode_batch_fn(tok, labelled: bool):
    """The `datasets.map` function: an Arrow batch of `text` (+ `label`) -> Arrow table.

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


def _features(multi: bool = False):
    """The tokenized contract: input_ids list<int32>, label int64 (-1 = unlabeled), or
    list<int64> for a multi_label split."""
    import datasets

    label = datasets.List(datasets.Value("int64")) if multi else datasets.Value("int64")
    return datasets.Features({"input_ids": datasets.List(datasets.Value("int32")), "label": label})


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
                                                    features=_features(labelled and _multi(paths.split(split))))
            continue
        with _no_progress_bars():  # from_parquet's bar says "Generating train split" for every split
            pair = ["text_pair"] if labelled and _pair(paths.split(split)) else []
            ds = datasets.Dataset.from_parquet(
                str(paths.split(split)), columns=["text", *pair, "label"] if labelled else ["text"],
                cache_dir=str(cache_dir / "parquet"))
        # A fingerprint from the content (tokenizer + input file), not from paths
        # and mtimes: the saved state.json is the same on every run (DVC sees no change).
        digest = hashlib.sha256(tok.to_str().encode())
        digest.update(paths.split(split).read_bytes())
        out[split] = encode_dataset(ds, tok, batch_size, cache_file=cache_dir / f"{split}.arrow",
                                    desc=f"tokenize {split}", fingerprint=digest.hexdigest()[:16])
    return datasets.DatasetDict(out)


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
        batch_size=batch_size, remove_columns=ds.column_names, features=_features(multi), desc=desc,
        keep_in_memory=cache_file is None, load_from_cache_file=False,
        cache_file_name=None if cache_file is None else str(cache_file),
        new_fingerprint=fingerprint,  # given, so datasets does not hash (pickle) the tokenizer
    ).with_format(None)


def token_stats(ds) -> tuple[np.ndarray, int]:
    """(lengths [N] incl. [CLS]/[SEP], number of [UNK] ids) of a tokenized split."""
    col = ds.data.column("input_ids").combine_chunks()  # ListArray<int32>, N rows
    if len(col) == 0:
        return np.zeros(0, dtype=np.int64), 0
    offsets = col.offsets.to_numpy()  # [N+1]
    flat = col.values.to_numpy()[offsets[0]:offsets[-1]]  # [sum(lengths)] (offsets[0] > 0 if sliced)
    return np.diff(offsets).astype(np.int64), int((flat == UNK_ID).sum())


def split_stats(lengths: np.ndarray, unk: int, max_length: int) -> dict:
    """Report numbers for one split; lengths include [CLS] and [SEP].

    >>> split_stats(np.array([4, 6]), 1, max_length=5)["truncation_rate"]
    0.5
    """
    n = int(len(lengths))
    content = int(lengths.sum()) - SPECIALS_PER_TEXT * n
    return {
        "texts": n,
        "tokens": content,
        "unk_tokens": unk,
        "unk_rate": unk / content if content else None,
        "mean_tokens": round(float(lengths.mean()), 4) if n else None,
        "p95_tokens": round(float(np.percentile(lengths, 95)), 4) if n else None,
        "max_tokens": int(lengths.max()) if n else None,
        "truncated": int((lengths > max_length).sum()),
        "truncation_rate": float((lengths > max_length).mean()) if n else None,
    }


def build_report(tok, cfg: TokenizeConfig, stats: dict[str, tuple[np.ndarray, int]], sha256: str) -> dict:
    splits = {s: split_stats(lengths, unk, cfg.max_length) for s, (lengths, unk) in stats.items()}
    all_lengths = np.concatenate([lengths for lengths, _ in stats.values()])
    return {
        "model": cfg.model,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "vocab_size_requested": cfg.vocab_size,
        "min_frequency": None if cfg.model == "unigram" else cfg.min_frequency,
        "lowercase": cfg.lowercase,
        "max_length": cfg.max_length,
        "special_tokens": {t: tok.token_to_id(t) for t in SPECIAL_TOKENS},
        "trained_on": list(TRAIN_SPLITS),
        "tokenizer_sha256": sha256,
        "splits": splits,
        "overall": split_stats(all_lengths, sum(unk for _, unk in stats.values()), cfg.max_length),
        "definitions": {
            "tokens": "content tokens, without the [CLS]/[SEP] every text gets",
            "unk_rate": "[UNK] tokens / content tokens",
            "mean_tokens, p95_tokens, max_tokens": "len(input_ids) per text, incl. [CLS] and [SEP]",
            "truncation_rate": "share of texts with len(input_ids) > max_length",
        },
    }


def _check_split(paths: Paths, split: str) -> None:
    """Fail early, with the file named, on a missing split, column, bad type or null."""
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
    for col in ("text",) if split == "unlabeled" else ("text", "label"):
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

    table = pq.read_table(path, columns=[c for c in ("text", "text_pair", "label") if c in names])
    for col in table.column_names:
        nulls = pc.is_null(table.column(col))
        if pc.any(nulls).as_py():
            row = int(np.flatnonzero(nulls.to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{_rel(paths, path)}: row {row}: {col} is null", stage=STAGE)


def _texts(paths: Paths, split: str) -> list[str]:
    import pyarrow.parquet as pq

    cols = ["text", "text_pair"] if split != "unlabeled" and _pair(paths.split(split)) else ["text"]
    table = pq.read_table(paths.split(split), columns=cols)  # pair: both sides train the tokenizer
    return [t for c in cols for t in table.column(c).to_pylist()]


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
