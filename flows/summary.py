"""The markdown summary of one pipeline run (a Prefect artifact).

Built only from the stage results and the reports on disk, so it works for a
failed run too (reports of stages that did not run are left out as stale):
- stage table (ran / skipped / failed / not run, seconds);
- data counts from reports/ingest.json, the validation result from
  reports/validation.json;
- metrics vs baselines from reports/metrics.json (flat `model.accuracy`,
  `tfidf_lr.accuracy`, ... keys: one column per prefix);
- the registered version from reports/register.json when it exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.core.paths import Paths


def read_report(paths: Paths, name: str) -> dict | None:
    path = paths.report(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def flatten(obj: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts, keyed by dotted path.

    >>> flatten({"model": {"accuracy": 0.9, "name": "x"}, "n": 3})
    {'model.accuracy': 0.9, 'n': 3.0}
    """
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = float(obj)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4f}"
    return str(value)


def _producer(report: str) -> str | None:
    """The stage whose metrics include reports/<report>.json."""
    from components.stages.table import STAGES

    path = f"reports/{report}.json"
    return next((s.name for s in STAGES if path in s.metrics), None)


def metrics_table(metrics: dict) -> list[str]:
    """Flat `model.X` / `baseline.NAME.X` keys -> one row per headline metric X,
    one column for the model and one per baseline (per-class values left out).

    >>> metrics_table({"model.accuracy": 0.9, "baseline.majority.accuracy": 0.5})
    ['| metric | model | majority |', '|---|---|---|', '| accuracy | 0.9000 | 0.5000 |']
    """
    flat = flatten(metrics)
    columns: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if head == "model":
            columns.setdefault("model", {})[rest] = value
        elif head in ("baseline", "baselines") and "." in rest:
            name, _, metric = rest.partition(".")
            columns.setdefault(name, {})[metric] = value
    if "model" not in columns:
        return [f"- {k}: {_fmt(v)}" for k, v in sorted(flat.items())]
    order = ["model"] + sorted(c for c in columns if c != "model")
    lines = ["| metric | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
    for name in sorted(n for n in columns["model"] if "." not in n):
        cells = [_fmt(columns[c][name]) if name in columns[c] else "" for c in order]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render(results: list[dict], stage_names: list[str], paths: Paths, *,
           failed: str | None = None, error: str | None = None,
           flow_run_id: str = "", mlflow_run_id: str = "") -> str:
    """The whole markdown document."""
    status = f"**failed** at stage `{failed}`: {error}" if failed else "**completed**"
    lines = ["# encoderflow pipeline run", "", f"Status: {status}", ""]
    if flow_run_id or mlflow_run_id:
        lines += [f"Prefect flow run `{flow_run_id}` · MLflow parent run `{mlflow_run_id}`", ""]

    by_name = {r["name"]: r for r in results}
    # Reports of stages that did not run in this flow run are stale: leave them out.
    fresh = set(by_name) | ({failed} if failed else set())

    def report(name: str) -> dict | None:
        producer = _producer(name)
        return read_report(paths, name) if producer is None or producer in fresh else None
    lines += ["## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    for name in stage_names:
        r = by_name.get(name)
        if r:
            lines.append(f"| {name} | {r['status']} | {r['seconds']:.1f} |")
        else:
            lines.append(f"| {name} | {'failed' if name == failed else 'not run'} | |")

    ingest = report("ingest")
    if ingest:
        splits = ingest.get("splits", {})
        lines += ["", "## Data", "", f"Source: `{ingest.get('source', '?')}` · rows read: "
                  f"{ingest.get('rows_read', '?')} · duplicates dropped: "
                  f"{ingest.get('duplicates_dropped', '?')} · empty dropped: "
                  f"{ingest.get('empty_dropped', '?')}", ""]
        if splits:
            lines += ["| split | rows |", "|---|---|"]
            lines += [f"| {s} | {n} |" for s, n in splits.items()]

    validation = report("validation")
    if validation:
        ok = "passed" if validation.get("success") else "**failed**"
        lines += ["", "## Validation", "", f"{ok}: {validation.get('critical_failures', 0)} critical, "
                  f"{validation.get('warnings', 0)} warnings · Data Docs: "
                  f"`{validation.get('data_docs', 'reports/data_docs/index.html')}`"]
        for msg in (validation.get("messages", {}) or {}).get("critical", [])[:10]:
            lines.append(f"- {msg}")

    metrics = report("metrics")
    if metrics:
        lines += ["", "## Metrics vs baselines (test split)", ""] + metrics_table(metrics)

    register = report("register")
    if register:
        lines += ["", "## Registered model", ""]
        lines += [f"- {k}: `{v}`" for k, v in register.items() if not isinstance(v, (dict, list))]
    return "\n".join(lines) + "\n"
