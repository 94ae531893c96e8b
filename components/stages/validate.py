"""validate stage: a Great Expectations suite per prepared split.

Reads data/prepared/{train,val,test,unlabeled}.parquet and labels.json, runs
one GX Checkpoint (ephemeral context, pandas filesystem datasource, one batch
and one suite per split; suites in components/data/expectations.py) and writes:

- reports/data_docs/: GX Data Docs (open index.html), built atomically;
- reports/validation.json: one row per expectation (split, check, GX name,
  kwargs summary, success, unexpected_count, observed_value, severity) and the
  overall verdict. It has no timestamps, so an unchanged dataset gives an
  unchanged report.

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
from typing import Any

from components.core.atomic import atomic_dir, write_json
from components.core.config import Params
from components.core.errors import DataError, first_line
from components.core.paths import ALL_SPLITS, Paths
from components.data.labels import read_labels, read_task
from components.stages import table

log = logging.getLogger(__name__)
STAGE = "validate"
REPORT = "validation"  # reports/validation.json
SITE = "encoderflow"


def read_split(path: Path, where: str):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{where}: not found (run the ingest stage first)", stage="validate")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{where}: cannot read parquet ({type(e).__name__}: {e})", stage="validate") from None


def _context(docs_dir: Path):
    """An in-memory GX context whose only Data Docs site is `docs_dir`.

    The default ephemeral context adds a docs site in a fresh /tmp folder;
    this config replaces it, turns analytics and GX's per-suite progress bars
    off (GX 1.24 sends no analytics anyway; see components/core/env.py).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }},
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def run_checkpoint(frames: dict, labels: list[str], cfg: Params, paths: Paths,
                   docs_dir: Path, task: str = "single_label") -> dict[str, list]:
    """Run every split's suite in one Checkpoint; return split -> results in suite order."""
    import great_expectations as gx

    from components.data import expectations as ex

    ctx = _context(docs_dir)
    source = ctx.data_sources.add_pandas_filesystem("prepared", base_directory=paths.prepared)
    leaks = ex.leak_sets(frames)
    pairs = ex.pair_sets(frames) if task == "pair" else {}
    definitions, order = [], {}
    for split in ALL_SPLITS:
        batch = source.add_parquet_asset(split).add_batch_definition_path(split, path=f"{split}.parquet")
        suite = gx.ExpectationSuite(name=split)
        for exp in ex.split_expectations(split, frames[split].columns, labels, leaks.get(split, {}),
                                         cfg.validate, cfg.ingest, task, pairs.get(split)):
            suite.add_expectation(exp)
        order[split] = [e.meta["check"] for e in suite.expectations]
        definitions.append(ctx.validation_definitions.add(
            gx.ValidationDefinition(name=split, data=batch, suite=ctx.suites.add(suite))))
    # No UpdateDataDocsAction: it rebuilds the whole site once per validation
    # result (4x; measured 5.6 s of a 12.5 s run). One build after the run.
    checkpoint = gx.Checkpoint(
        name="validate", validation_definitions=definitions, actions=[],
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5})
    outcome = ctx.checkpoints.add(checkpoint).run()
    ctx.build_data_docs(site_names=[SITE])
    by_split: dict[str, list] = {}
    for suite_result in outcome.run_results.values():
        rank = {check: i for i, check in enumerate(order[suite_result.suite_name])}
        by_split[suite_result.suite_name] = sorted(
            suite_result.results, key=lambda r: rank[r.expectation_config.meta["check"]])
    return by_split


def _exception(r) -> str | None:
    """The exception message of a result that raised, else None."""
    info = r.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    for item in infos:
        if isinstance(item, dict) and item.get("raised_exception"):
            return first_line(str(item.get("exception_message") or "unknown error"))
    return None


def summarize(split: str, r) -> dict[str, Any]:
    """One reports/validation.json row for a GX ExpectationValidationResult."""
    conf = r.expectation_config
    res = r.result or {}
    count = res.get("unexpected_count", res.get("missing_count"))
    row = {
        "split": split,
        "check": conf.meta["check"],
        "name": conf.type,
        "kwargs": kwargs_summary(conf.kwargs),
        "success": bool(r.success),
        "unexpected_count": None if count is None else int(count),
        "observed_value": res.get("observed_value"),
        "severity": str(getattr(conf.severity, "value", conf.severity)),
    }
    if row["check"] in ("label_lists", "label_cardinality", "label_min_count"):  # multi_label
        row["details"] = res.get("details")
    if "partial_missing_list" in res:
        row["missing"] = list(res["partial_missing_list"])
    if "unexpected_percent" in res and res["unexpected_percent"] is not None:
        row["unexpected_percent"] = round(float(res["unexpected_percent"]), 4)
    if (error := _exception(r)) is not None:
        row["success"], row["error"] = False, error
    return row


def kwargs_summary(kwargs: dict) -> dict:
    """Expectation kwargs for the report, with long value lists shortened.

    >>> kwargs_summary({"column": "text", "value_set": list("abcdefgh"), "batch_id": "x"})
    {'column': 'text', 'value_set': '[8 values]'}
    """
    out = {}
    for key, value in sorted(kwargs.items()):
        if key == "batch_id":
            continue
        if isinstance(value, (list, tuple, set)) and len(value) > 5:
            value = f"[{len(value)} values]"
        elif isinstance(value, (list, tuple, set)):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[key] = value
    return out


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.2%}"


def describe(row: dict, ctx: dict) -> str:
    """The one-line message for a failed expectation row of the report."""
    split, check, n = row["split"], row["check"], row["unexpected_count"]
    cfg, labels, observed = ctx["cfg"], ctx["labels"], row["observed_value"]
    if "error" in row:
        return f"{split}: check {check} could not run: {row['error']}"
    if check.startswith("column_"):
        have = ", ".join(map(str, ctx["frames"][split].columns)) or "none"
        return f"{split}: column '{check[len('column_'):]}' is missing (columns: {have})"
    if check.startswith("no_pair_leak_"):
        return f"{n} pairs appear in both {check[len('no_pair_leak_'):]} and {split}"
    if check.startswith("no_leak_"):
        return f"{n} texts appear in both {check[len('no_leak_'):]} and {split}"
    share = f" ({row['unexpected_percent']:.2f}%)" if "unexpected_percent" in row else ""
    bounds = f"[{cfg.min_text_chars}, {cfg.max_text_chars}]"
    simple = {
        "rows": "the split has no rows",
        "id_not_null": f"{n} ids are null",
        "id_unique": f"{n} rows share an id (the same normalized text) with another row",
        "text_not_null": f"{n} texts are null",
        "text_not_empty": f"{n} texts are empty or whitespace only",
        "text_unique": f"{n} rows have a text that occurs more than once in the split",
        "text_pair_not_null": f"{n} text_pairs are null",
        "text_pair_not_empty": f"{n} text_pairs are empty or whitespace only",
        "text_pair_length": f"{n} text_pairs have a length outside the bounds",
        "pair_unique": f"{n} rows have a (text, text_pair) pair that occurs more than once in the split",
        "no_self_pair": f"{n} rows pair a text with itself (text == text_pair)",
        "text_length": f"{n} texts{share} have a length outside {bounds} characters",
        "text_length_share": f"{n} texts{share} have a length outside {bounds} characters "
                             f"(allowed: {_pct(cfg.max_length_outlier_fraction)})",
        "bad_char_rows": f"{n} texts contain control or U+FFFD characters",
        "bad_char_share": f"{_pct(observed)} of characters are control or U+FFFD ({n} characters; "
                          f"allowed: {_pct(cfg.max_bad_char_fraction)})",
        "label_not_null": f"{n} labels are null",
        "label_int64": f"column 'label' has type {observed}, expected int64",
        "label_in_set": f"{n} labels are not ids of labels.json (0..{len(labels) - 1})",
        "label_name_in_set": f"{n} label_names are not in labels.json",
    }
    if check in simple:
        return f"{split}: {simple[check]}"
    if check == "labels_in_train":
        names = [labels[i] if isinstance(i, int) and 0 <= i < len(labels) else str(i)
                 for i in row.get("missing", [])]
        return f"{split}: {n} label(s) never appear in train: {', '.join(names)}"
    if check == "label_lists":
        return f"{split}: {n} labels are not lists of distinct ids of labels.json (0..{len(labels) - 1})"
    if check == "label_cardinality":
        return (f"{split}: {n} rows = {_pct(observed)} have no label "
                f"(allowed: {_pct(cfg.max_no_label_fraction)})")
    if check == "label_min_count":
        low = ", ".join(f"{labels[i]} ({row['details']['counts'][i]})" for i in row["details"]["below"])
        return (f"{split}: {n} label(s) on fewer than {cfg.min_label_count} train rows "
                f"(validate.min_label_count): {low}")
    if check == "class_balance":
        return (f"{split}: the majority class has {n} rows = {_pct(observed)} of train "
                f"(allowed: {_pct(cfg.max_majority_fraction)})")
    return f"{split}: {check} failed ({row['name']}, observed {observed!r})"


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
