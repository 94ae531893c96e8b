"""validate stage: a Great Expectations suite per prepared split.

Reads data/prepared/{train,val,test,unlabeled}.parquet and labels.json, runs
one GX Checkpoint (components/data/gx_checkpoint.py; suites in
components/data/expectations.py) and writes:

- reports/validation.json: one row per expectation (split, check, GX name,
  kwargs summary, success, unexpected_count, observed_value, severity; see
  components/data/validation_report.py) and the overall verdict. It has no
  timestamps or absolute paths, so an unchanged dataset gives a byte-identical
  report. It is the stage's one DVC-tracked output (a metric, kept in git).
- reports/data_docs/: GX Data Docs (open index.html), built atomically. Not a
  DVC output: GX writes the run time, random element ids and absolute paths
  into every page, so a tracked copy would make `dvc status` dirty after any
  rerun on unchanged data. They show the last validate run in this checkout
  (a `dvc checkout` or run-cache restore does not bring them back; running
  `encoderflow stage validate` rebuilds them and changes nothing DVC tracks).

`run` logs the counts and validation.json to the stage's MLflow run.
Failed warnings are logged and the run goes on. Failed critical expectations
raise one DataError after both reports are written, one line per failure:

    validate: 2 critical checks failed (see reports/validation.json, reports/data_docs/index.html)
    validate: 37 texts appear in both train and test
    validate: train: 3 texts are null
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from components.core.atomic import atomic_dir, write_json
from components.core.config import Params
from components.core.errors import DataError
from components.core.paths import ALL_SPLITS, Paths
from components.data.gx_checkpoint import run_checkpoint
from components.data.labels import read_labels, read_task
from components.data.validation_report import describe, summarize
from components.stages import table

log = logging.getLogger(__name__)
STAGE = "validate"
REPORT = "validation"  # reports/validation.json


def read_split(path: Path, where: str):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{where}: not found (run the ingest stage first)", stage="validate")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{where}: cannot read parquet ({type(e).__name__}: {e})", stage="validate") from None


def validate(cfg: Params, paths: Paths) -> dict:
    """Run the suites and write both reports; returns the report (raises only on bad input)."""
    rel = lambda p: str(p.relative_to(paths.root))  # noqa: E731
    labels = read_labels(paths.labels, rel(paths.labels), stage=STAGE)
    task = read_task(paths.labels, rel(paths.labels), stage=STAGE)
    frames = {s: read_split(paths.split(s), rel(paths.split(s))) for s in ALL_SPLITS}
    with atomic_dir(paths.data_docs) as docs:
        results = run_checkpoint(frames, labels, cfg, paths, docs, task)
    rows = [summarize(s, r) for s in ALL_SPLITS for r in results.get(s, [])]

    context = {"labels": labels, "cfg": cfg.validate, "frames": frames}
    failed = [r for r in rows if not r["success"]]
    critical = [describe(r, context) for r in failed if r["severity"] == "critical"]
    warnings = [describe(r, context) for r in failed if r["severity"] != "critical"]
    report = {
        "success": not critical,
        "checks": len(rows),
        "critical_failures": len(critical),
        "warnings": len(warnings),
        "rows": {s: int(len(frames[s])) for s in ALL_SPLITS},
        "labels": labels,
        "data_docs": rel(paths.data_docs / "index.html"),
        "messages": {"critical": critical, "warning": warnings},
        "expectations": rows,
    }
    write_json(paths.report(REPORT), report)
    return report


def finish(report: dict) -> dict:
    """Log the warnings; raise one DataError listing the critical failures; else the summary."""
    for line in report["messages"]["warning"]:
        log.warning("validate: warning: %s", line)
    critical = report["messages"]["critical"]
    if critical:
        # the first line alone (what a flow run or a log tail shows) names the first problem
        head = (f"{len(critical)} critical check{'s' * (len(critical) > 1)} failed, first: "
                f"{critical[0]} (see reports/{REPORT}.json, {report['data_docs']})")
        raise DataError("\n".join(f"validate: {line}" for line in [head, *critical]), stage=STAGE)
    return {"checks": report["checks"], "critical_failures": 0, "warnings": report["warnings"]}


def check(cfg: Params, paths: Paths) -> dict:
    """validate + finish, without MLflow (what the tests call)."""
    return finish(validate(cfg, paths))


def run(cfg: Params, paths: Paths) -> dict:
    """The stage entry point: `check` under its MLflow run (or the driver's, if open).

    The report is logged before a critical failure is raised, so the failed
    MLflow run holds the validation.json that explains it.
    """
    import great_expectations  # noqa: F401  (imported before the compute timer starts)
    import mlflow

    from components.core.tracking import stage_run

    def tracked(mlrun) -> dict:
        t0 = time.perf_counter()
        report = validate(cfg, paths)
        metrics = {key: report[key] for key in ("checks", "critical_failures", "warnings")}
        metrics["time.compute_s"] = time.perf_counter() - t0  # read, GX checkpoint, Data Docs
        metrics.update({f"rows.{split}": n for split, n in report["rows"].items()})
        mlflow.log_metrics(metrics, run_id=mlrun.info.run_id)
        mlflow.set_tag("validation.success", str(report["success"]).lower())
        mlflow.log_artifact(str(paths.report(REPORT)), run_id=mlrun.info.run_id)
        return finish(report)

    if mlflow.active_run() is not None:  # a driver already opened this stage's run
        return tracked(mlflow.active_run())
    with stage_run(cfg, STAGE, paths.root, sections=table.get(STAGE).params) as mlrun:
        return tracked(mlrun)
