"""The ingest stage: a source URI -> data/prepared/{train,val,test,unlabeled}.parquet.

    encoderflow stage ingest                       # sample:rotten_tomatoes
    encoderflow stage ingest --set ingest.source=file:data/raw/*.csv

Reading lives in `sources` / `readers` / `sample`, cleaning and splitting in
`prepare`; this module writes the outputs. `ingest.source` is built in memory,
with rows sorted by id so a rerun on the same input is byte-identical. The optional
unlabeled corpus (`ingest.unlabeled_source`) is streamed to corpus.parquet in source
order (`components/data/corpus.py`), so it may be bigger than RAM. Everything is
written atomically: the old data/prepared stays until the new one is complete.
"""

from __future__ import annotations

import time
from pathlib import Path

from components.core.atomic import atomic_dir, write_json
from components.core.config import IngestConfig, Params
from components.core.paths import CORPUS, Paths
from components.data.labels import labels_json
from components.data.prepare import Prepared, prepare
from components.data.readers import Chunk
from components.stages import table

STAGE = "ingest"


def _tables(prep: Prepared) -> dict:
    """Arrow tables of the data contract: id, text, label (int64), label_name; unlabeled: id, text.

    multi_label: label is list<int64> (sorted ids, [] = no label), label_name list<string>."""
    import pyarrow as pa

    multi = prep.task == "multi_label"
    lab, name = (pa.list_(pa.int64()), pa.list_(pa.string())) if multi else (pa.int64(), pa.string())
    pair = prep.task == "pair"  # a text_pair column after text
    labelled = pa.schema([("id", pa.string()), ("text", pa.string())]
                         + [("text_pair", pa.string())] * pair + [("label", lab), ("label_name", name)])
    tables = {}
    for split, rows in prep.splits.items():
        ids, texts, label_ids = (list(col) for col in zip(*rows)) if rows else ([], [], [])
        if pair:
            firsts, seconds = [t[0] for t in texts], [t[1] for t in texts]
        if multi:
            label_ids = [list(v) for v in label_ids]
            names = [[prep.labels[i] for i in v] for v in label_ids]
        else:
            names = [prep.labels[i] for i in label_ids]
        cols = [ids, firsts, seconds] if pair else [ids, texts]
        tables[split] = pa.table([*cols, label_ids, names], schema=labelled)
    ids, texts = (list(col) for col in zip(*prep.unlabeled)) if prep.unlabeled else ([], [])
    tables["unlabeled"] = pa.table([ids, texts], schema=pa.schema([("id", pa.string()),
                                                                  ("text", pa.string())]))
    return tables


def write(prep: Prepared, paths: Paths, cfg: IngestConfig | None = None) -> None:
    """data/prepared/* (one atomic folder swap), then reports/ingest.json.

    With `cfg.unlabeled_source` set, the corpus is streamed into the same folder
    (corpus.parquet) and its numbers go to the report's "corpus" block.
    """
    import pyarrow.parquet as pq

    tables = _tables(prep)
    spec = cfg.unlabeled_source.strip() if cfg is not None else ""
    with atomic_dir(paths.prepared) as tmp:
        for split, table in tables.items():
            pq.write_table(table, Path(tmp) / f"{split}.parquet")
        write_json(Path(tmp) / "labels.json", labels_json(prep.labels, prep.task))
        if spec:
            from components.data.corpus import write_corpus

            prep.report["corpus"] = write_corpus(spec[len("file:"):].strip(), cfg, paths.root, prep,
                                                 Path(tmp) / f"{CORPUS}.parquet")
    write_json(paths.report(STAGE), prep.report)


def ingest_chunks(chunks: list[Chunk], cfg: IngestConfig, paths: Paths, source: str) -> dict:
    """Prepare and write already-read chunks; returns the stage summary."""
    prep = prepare(chunks, cfg, source)
    write(prep, paths, cfg)
    rep = prep.report
    summary = {**rep["splits"], "labels": len(prep.labels), "duplicates_dropped": rep["duplicates_dropped"],
               "empty_dropped": rep["empty_dropped"]}
    if "corpus" in rep:
        summary[CORPUS] = rep["corpus"]["rows"]
    return summary


def ingest(cfg: IngestConfig, paths: Paths) -> dict:
    """Read `cfg.source`, prepare, write; returns counts per split (no MLflow)."""
    from components.data.sources import read_source

    chunks, source = read_source(cfg, paths.root)
    return ingest_chunks(chunks, cfg, paths, source)


def run(cfg: Params, paths: Paths) -> dict:
    """The stage entry point: `ingest` under its MLflow run (or the driver's, if open)."""
    import mlflow
    import pyarrow.parquet  # noqa: F401  (imported before the compute timer starts)

    from components.core.tracking import stage_run

    if mlflow.active_run() is not None:  # a driver already opened this stage's run
        t0 = time.perf_counter()
        summary = ingest(cfg.ingest, paths)
        _log_mlflow(mlflow.active_run(), paths, time.perf_counter() - t0)
    else:
        with stage_run(cfg, STAGE, paths.root, sections=table.get(STAGE).params) as mlrun:
            t0 = time.perf_counter()
            summary = ingest(cfg.ingest, paths)
            _log_mlflow(mlrun, paths, time.perf_counter() - t0)
    return summary


def _log_mlflow(mlrun, paths: Paths, compute_s: float) -> None:
    import json

    import mlflow

    report = json.loads(paths.report(STAGE).read_text(encoding="utf-8"))
    # time.compute_s: read + prepare + write (benchmarks/pipeline_overhead.py)
    metrics = {f"rows.{split}": n for split, n in report["splits"].items()}
    if "corpus" in report:
        metrics.update({f"corpus.{k}": report["corpus"][k] for k in ("rows", "rows_read", "bytes_read",
                                                                      "empty_dropped", "duplicates_dropped")})
    metrics["time.compute_s"] = compute_s
    metrics.update({key: report[key] for key in ("rows_read", "empty_dropped", "duplicates_dropped",
                                                 "label_conflicts", "empty_fraction",
                                                 "duplicate_fraction")})
    mlflow.log_metrics(metrics, run_id=mlrun.info.run_id)
    mlflow.log_artifact(str(paths.report(STAGE)), run_id=mlrun.info.run_id)
    mlflow.log_artifact(str(paths.labels), run_id=mlrun.info.run_id)
