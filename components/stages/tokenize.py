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

import hashlib
import time
from pathlib import Path

from components.core.atomic import atomic_dir, write_json
from components.core.config import Params, TokenizeConfig
from components.core.paths import ALL_SPLITS, CORPUS, Paths
from components.data.prepared_text import check_split, count_texts, texts
from components.data.split_encode import encode_corpus, encode_splits, quiet_datasets, token_stats
from components.data.tokenizer_report import TRAIN_SPLITS, build_report
from components.data.tokenizer_train import train_tokenizer
from components.stages import table

STAGE = "tokenize"


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
    quiet_datasets(show_progress)
    for split in ALL_SPLITS:
        check_split(paths, split)
    corpus = paths.split(CORPUS).is_file()  # written by ingest only with ingest.unlabeled_source
    if corpus:
        check_split(paths, CORPUS)
    train_splits = TRAIN_SPLITS + ((CORPUS,) if corpus else ())
    n_texts = count_texts(paths, train_splits)
    tok = train_tokenizer(texts(paths, train_splits), cfg, show_progress=show_progress, length=n_texts)

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


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
