"""Load test of batch prediction: N texts through `encoderflow predict` and through the pyfunc.

    .venv/bin/python benchmarks/predict_load.py                       # 10k and 100k rows, tiny model
    .venv/bin/python benchmarks/predict_load.py --rows 2000 20000     # smoke test
    .venv/bin/python benchmarks/predict_load.py --model models/finetuned --rows 10000 100000 200000 \\
        --json reports/benchmarks/predict_load.json                   # what docs/performance.md shows
    .venv/bin/python benchmarks/predict_load.py --model models/finetuned --repeats 3 --format csv
    cd my-project && python /path/to/benchmarks/predict_load.py --model models:/encoderflow@champion

For each N (--rows) the script writes an input file (--format parquet/csv/jsonl;
columns id, text) from the sample texts (data/prepared/*.parquet of --project,
else synthetic sentences), repeated and varied, then measures two paths, each in
its own process so that each gets its own peak RSS (ru_maxrss, via a small launcher):

- cli:    `encoderflow predict INPUT -o OUT.parquet --model URI`, end to end
          (interpreter start, imports, model load, read, score, write);
- pyfunc: mlflow.pyfunc.load_model(URI), then model.predict on --batch-rows
          rows at a time, read with components.registry.batch_read.read_batches (streamed),
          results dropped; texts/s counts the predict loop only (load_s apart).

Input sizes share one length mix (the base texts are shuffled), so they differ only in N.
Runs interleave (N1 cli, N1 pyfunc, N2 cli, N2 pyfunc, ... x --repeats) so that
noise on a shared CPU hits both; medians are printed, N side by side. Streaming
shows as a flat peak RSS from 10k to 100k rows; "marginal texts/s" is
(N2 - N1) / (t2 - t1), the rate once the fixed start-up cost is paid.

Model: --model is an MLflow model URI (models:/..., runs:/..., resolved in
--project's store) or a fine-tuned folder (models/finetuned), which is logged as
a pyfunc into a scratch registry. Without --model a tiny model is trained first
in a scratch project (the test suite's tiny pipeline, ~1 min on 2 CPUs).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, sys.path[0] is benchmarks/, where tokenize.py would shadow the stdlib
# module of that name: put the repository root there instead.
REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from benchmarks import _common as C  # noqa: E402
from benchmarks import _report  # noqa: E402

MODEL_NAME = "loadtest"


def base_texts(project: Path, limit: int = 20000) -> tuple[list[str], str]:
    """Up to `limit` distinct texts from the project's prepared data (shuffled with a fixed
    seed, so that every input size has the same mix of short reviews and long plot summaries),
    else synthetic ones."""
    import random

    import pandas as pd

    files = sorted(f for f in (project / "data" / "prepared").glob("*.parquet")
                   if f.name != "corpus.parquet")  # ingest.unlabeled_source: may be bigger than RAM
    texts: list[str] = []
    for f in files:
        texts += pd.read_parquet(f, columns=["text"])["text"].tolist()
    if texts:
        random.Random(0).shuffle(texts)
        return texts[:limit], f"{len(texts[:limit])} shuffled texts from {project / 'data' / 'prepared'}"
    sys.path.insert(0, str(REPO / "tests"))
    from builders import tiny_pipeline

    return [t for t, _ in tiny_pipeline.sentences(2000, seed=1)], "2000 synthetic sentences"


def write_input(path: Path, n: int, base: list[str], chunk: int = 10000) -> None:
    """n rows (id, text), written chunk by chunk; row i is base[i % len] (+ a variant tag)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    writer = None
    with open(path, "wb") as fh:
        for start in range(0, n, chunk):
            idx = range(start, min(n, start + chunk))
            texts = [base[i % len(base)] + (f" ({i // len(base)})" if i >= len(base) else "") for i in idx]
            table = pa.table({"id": [f"r{i}" for i in idx], "text": texts})
            if path.suffix == ".jsonl":
                fh.write("".join(json.dumps({"id": i, "text": t}) + "\n"
                                 for i, t in zip(table["id"].to_pylist(), texts)).encode())
                continue
            if writer is None:
                writer = (pq.ParquetWriter(fh, table.schema) if path.suffix == ".parquet"
                          else pcsv.CSVWriter(fh, table.schema))
            writer.write_table(table)
        if writer is not None:
            writer.close()


def build_tiny(root: Path) -> Path:
    """Train the test suite's tiny model in `root`; returns its models/finetuned folder."""
    sys.path.insert(0, str(REPO / "tests"))
    from builders import tiny_pipeline

    tiny_pipeline.write_project(root)
    tiny_pipeline.run_stages(root, ("ingest", "tokenize", "pretrain", "finetune"))
    return root / "models" / "finetuned"


def register_folder(folder: Path, project: Path) -> str:
    """Log a fine-tuned folder as pyfunc version 1 of MODEL_NAME in `project`'s default store."""
    import mlflow

    from components.core.config import Params
    from components.core.paths import Paths
    from components.core.tracking import experiment_id
    from components.model.classifier import TextClassifier
    from components.stages import register

    paths = Paths.at(project)
    shutil.copytree(folder, paths.finetuned)
    clf = TextClassifier.from_folder(paths.finetuned)
    cfg = Params()
    exp = experiment_id(cfg.project, project)
    mlflow.set_registry_uri(mlflow.get_tracking_uri())
    with mlflow.start_run(experiment_id=exp, run_name="predict_load"):
        info = register.log_pyfunc(paths, MODEL_NAME, clf.labels, clf.meta.get("backbone", {}).get("kind", ""))
    return f"models:/{MODEL_NAME}/{info.registered_model_version}"


def run_cli(uri: str, project: Path, src: Path, work: Path, env: dict) -> dict:
    exe = Path(sys.executable).parent / "encoderflow"
    out = work / "out.parquet"
    wall, peak, _ = C.measure([str(exe), "predict", str(src), "-o", str(out), "--model", uri],
                             project, work / "cli.log", env)
    out.unlink(missing_ok=True)
    return {"seconds": wall, "peak_mb": peak}


def run_pyfunc(uri: str, project: Path, src: Path, work: Path, batch_rows: int, env: dict) -> dict:
    _, peak, out = C.measure([sys.executable, str(Path(__file__).resolve()), "--worker", uri, str(src),
                             "--batch-rows", str(batch_rows)], project, work / "pyfunc.log", env)
    res = json.loads(out.strip().splitlines()[-1])
    return {"seconds": res["predict_s"], "load_s": res["load_s"], "peak_mb": peak, "rows": res["rows"]}


def worker(uri: str, src: str, batch_rows: int) -> None:
    """In a child process: load the pyfunc, predict the file in batches, print timings as JSON."""
    from components.core import env

    env.configure()
    from components.core.config import Params, load_params
    from components.registry.batch_read import read_batches
    from components.registry.client import connect
    from components.registry.load import load_model

    cfg = load_params(Path("params.yaml")) if Path("params.yaml").is_file() else Params()
    if uri.startswith("models:/"):  # the project's registry, as `encoderflow predict` does
        connect(cfg.project, Path(".").resolve())
    t0 = time.perf_counter()
    model = load_model(uri)
    t1 = time.perf_counter()
    rows = 0
    for batch in read_batches(src, "text", parquet_rows=batch_rows):
        for start in range(0, batch.num_rows, batch_rows):
            chunk = batch.slice(start, batch_rows).select(["text"]).to_pandas()
            rows += len(model.predict(chunk, params={"output": "label"}))
    print(json.dumps({"load_s": t1 - t0, "predict_s": time.perf_counter() - t1, "rows": rows}), flush=True)


def report(sizes: list[int], results: dict, repeats: int, uri: str) -> _report.Report:
    """The table of medians (one column per input size) and the growth of peak RSS."""
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0] if m != "rows"} for k, v in results.items()}
    rows = []
    for path in ("cli", "pyfunc"):
        rows.append([f"{path} wall s"] + [f"{med[(n, path)]['seconds']:.1f}" for n in sizes])
        rows.append([f"{path} texts/s"] + [f"{n / med[(n, path)]['seconds']:,.0f}" for n in sizes])
        rows.append([f"{path} peak RSS MiB"] + [f"{med[(n, path)]['peak_mb']:,.0f}" for n in sizes])
    rows.append(["pyfunc load s"] + [f"{med[(n, 'pyfunc')]['load_s']:.1f}" for n in sizes])
    out = _report.Report("predict_load")
    out.table(f"medians of {repeats} run(s) per cell, model {uri}; cli = the whole `encoderflow predict` process, "
              "pyfunc = the predict loop only", ["", *(f"{n:,} rows" for n in sizes)], rows)
    out.results = {"model": uri, "repeats": repeats,
                   "cells": [{"rows": n, "path": path, **med[(n, path)]} for (n, path) in sorted(med)]}
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        for path in ("cli", "pyfunc"):
            a, b = med[(lo, path)], med[(hi, path)]
            marginal = (hi - lo) / max(b["seconds"] - a["seconds"], 1e-9)
            print(f"{path}: peak RSS x{b['peak_mb'] / a['peak_mb']:.2f} for x{hi / lo:.0f} rows "
                  f"({a['peak_mb']:.0f} -> {b['peak_mb']:.0f} MiB); marginal {marginal:.0f} texts/s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10000, 100000], help="input sizes")
    ap.add_argument("--model", help="MLflow model URI or a fine-tuned folder (default: train a tiny one)")
    ap.add_argument("--project", default=".", help="project whose store/texts to use (default: .)")
    ap.add_argument("--format", choices=("parquet", "csv", "jsonl"), default="parquet")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved repetitions (medians)")
    ap.add_argument("--batch-rows", type=int, default=1024, help="pyfunc rows per predict call")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both paths (default: torch's "
                    "own choice; 1 is steadier on a shared CPU)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--worker", nargs=2, metavar=("URI", "INPUT"), help=argparse.SUPPRESS)
    _report.add_json_option(ap)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], args.worker[1], args.batch_rows)

    from components.core import env

    env.configure()
    project = Path(args.project).resolve()
    work = Path(tempfile.mkdtemp(prefix="encoderflow-load-"))
    try:
        t0 = time.perf_counter()
        if args.model and not Path(args.model).is_dir():
            uri, store = args.model, project
        else:
            folder = Path(args.model).resolve() if args.model else build_tiny(work / "tiny")
            store = work / "registry"
            store.mkdir()
            uri = register_folder(folder, store)
        base, origin = base_texts(project)
        print(f"model {uri} (store: {store}); texts: {origin}; setup {time.perf_counter() - t0:.0f}s", flush=True)
        inputs = {}
        for n in args.rows:
            inputs[n] = work / f"in_{n}.{args.format}"
            write_input(inputs[n], n, base)
            print(f"input {inputs[n].name}: {inputs[n].stat().st_size / 2**20:.1f} MiB", flush=True)
        env_ = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
        print(f"torch threads: {args.threads or 'default'}; pyfunc batch: {args.batch_rows} rows; "
              f"format: {args.format}", flush=True)
        results: dict = {}
        for rep in range(args.repeats):
            for n in args.rows:  # interleaved: cli, pyfunc, next size, ...
                cli = run_cli(uri, store, inputs[n], work, env_)
                pyf = run_pyfunc(uri, store, inputs[n], work, args.batch_rows, env_)
                assert pyf["rows"] == n, pyf
                results.setdefault((n, "cli"), []).append(cli)
                results.setdefault((n, "pyfunc"), []).append(pyf)
                print(f"[{rep + 1}/{args.repeats}] {n:>8,} rows: cli {cli['seconds']:.1f}s "
                      f"{cli['peak_mb']:.0f} MiB | pyfunc {pyf['seconds']:.1f}s (+{pyf['load_s']:.1f}s load) "
                      f"{pyf['peak_mb']:.0f} MiB", flush=True)
        report(args.rows, results, args.repeats, uri).write(args.json, threads=args.threads)
    finally:
        if args.keep:
            print(f"scratch kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
