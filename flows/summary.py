"""The markdown summary of one pipeline run (a Prefect artifact).

Built only from the stage results and the reports on disk, so it works for a
failed run too (reports of stages that did not run are left out as stale):
- stage table (ran / skipped / failed / not run, seconds);
- data counts from reports/ingest.json, the validation result from
  reports/validation.json;
- metrics vs baselines from reports/metrics.json (flat `model.accuracy`,
  `teacher.accuracy`, `baseline.tfidf_lr.accuracy`, ... keys: one column per
  scorer), and the student / teacher texts/s from reports/speed.json;
- the registered versions (student, and the teacher when registered) from
  reports/register.json when it exists.
"""

from __future__ import annotations

import json
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


LEADS = ("model", "static", "teacher")  # scorers with their own top-level prefix, in column order


def speed_line(speed: dict) -> str:
    """reports/speed.json in one line.

    >>> speed_line({"speed.student_texts_per_s": 900.0, "speed.teacher_texts_per_s": 150.0,
    ...             "speed.ratio": 6.0, "speed.threads": 2, "speed.n_texts": 500, "speed.batch_size": 64})
    'student 900.0 texts/s · teacher 150.0 texts/s · student 6.00x faster (500 test texts, batch 64, 2 threads)'
    """
    parts = [f"student {speed.get('speed.student_texts_per_s', '?')} texts/s"]
    if speed.get("speed.teacher_texts_per_s") is not None:
        parts.append(f"teacher {speed['speed.teacher_texts_per_s']} texts/s")
    if isinstance(speed.get("speed.ratio"), (int, float)):
        parts.append(f"student {speed['speed.ratio']:.2f}x faster")
    return (" · ".join(parts) + f" ({speed.get('speed.n_texts', '?')} test texts, batch "
            f"{speed.get('speed.batch_size', '?')}, {speed.get('speed.threads', '?')} threads)")


def frontier_table(frontier: dict) -> list[str]:
    """reports/frontier.json as a markdown table, one row per model (✓: on the Pareto front).

    >>> frontier_table({"models": [{"name": "nbsvm", "accuracy": 0.77, "texts_per_s": 9000.0,
    ...                              "p50_ms": 0.4, "pareto": True}]})[2]
    '| nbsvm | 0.7700 | 9,000 | 0.40 | ✓ |'
    """
    lines = ["| model | accuracy | texts/s | p50 ms | Pareto |", "|---|---|---|---|---|"]
    for m in frontier.get("models") or []:
        tps, p50 = m.get("texts_per_s"), m.get("p50_ms")
        lines.append(f"| {m.get('name')} | {_fmt(m.get('accuracy'))} | "
                     f"{'' if tps is None else f'{tps:,.0f}'} | {'' if p50 is None else f'{p50:.2f}'} | "
                     f"{'✓' if m.get('pareto') else ''} |")
    return lines


def metrics_table(metrics: dict) -> list[str]:
    """Flat `model.X` / `teacher.X` / `baseline.NAME.X` keys -> one row per headline
    metric X, one column for the model, the teacher (when enabled) and each baseline
    (per-class values left out).

    >>> metrics_table({"model.accuracy": 0.9, "baseline.majority.accuracy": 0.5})
    ['| metric | model | majority |', '|---|---|---|', '| accuracy | 0.9000 | 0.5000 |']
    >>> metrics_table({"model.accuracy": 0.9, "teacher.accuracy": 0.95})[0]
    '| metric | model | teacher |'
    """
    flat = flatten(metrics)
    columns: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if head in LEADS:
            columns.setdefault(head, {})[rest] = value
        elif head in ("baseline", "baselines") and "." in rest:
            name, _, metric = rest.partition(".")
            columns.setdefault(name, {})[metric] = value
    if "model" not in columns:
        return [f"- {k}: {_fmt(v)}" for k, v in sorted(flat.items())]
    order = [c for c in LEADS if c in columns] + sorted(c for c in columns if c not in LEADS)
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
    speed = report("speed")
    if speed:
        lines += ["", "Speed (measured in the evaluate stage; varies run to run): " + speed_line(speed)]
    frontier = report("frontier")
    if frontier:
        lines += ["", "## Accuracy against speed (every model of the run)", "", *frontier_table(frontier),
                  "", "Plot: `reports/plots/frontier.png`"]

    register = report("register")
    if register:
        lines += ["", "## Registered model", ""]
        lines += [f"- {k}: `{v}`" for k, v in register.items() if not isinstance(v, (dict, list))]
        for role in ("static", "teacher", "baseline"):
            other = register.get(role)
            if isinstance(other, dict):
                lines += ["", f"## Registered {role}", ""]
                lines += [f"- {k}: `{v}`" for k, v in other.items() if not isinstance(v, (dict, list))]
    return "\n".join(lines) + "\n"
