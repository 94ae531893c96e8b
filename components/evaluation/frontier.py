"""The accuracy/speed frontier of every model of a run: reports/frontier.json and its plot.

evaluate scores every model on the same test split (metrics.json) and, here, times them in
the same process: texts/s at batch 64 over the test texts in interleaved rounds
(speed.throughput: A B C, C B A, ...), and the single-text p50 latency over `SINGLE` test
texts, also interleaved (each text goes through every model before the next text). A model
is on the Pareto front when no other model is both at least as accurate and at least as
fast, and strictly better in one of the two.

    rows = measure(models, texts)            # name -> {"texts_per_s", "p50_ms"}
    doc = document(entries, metrics, rows, lineage.run_facts(...))
    write(doc, Path("reports/frontier.json")); plots.frontier(doc, Path("reports/plots"))

Timings differ run to run, so they live here and in speed.json, never in metrics.json.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


SINGLE = 200  # texts timed one by one (p50 latency); the first SINGLE test texts
ORDER = ("majority", "tfidf_lr", "nbsvm", "model2vec", "static", "transformer", "teacher")


@dataclass
class Entry:
    """One model of the run, as the frontier sees it."""
    name: str  # one of ORDER (or another family name for the main student)
    role: str  # "baseline" | "student" | "teacher"
    prefix: str  # its key prefix in metrics.json: "model", "static", "teacher", "baseline.nbsvm", ...
    predict: Callable[[list, int], object] | None  # (texts, batch_size) -> probabilities; None: not timed
    params: int | None = None
    disk_mb: float | None = None
    train_s: float | None = None
    registered_as: str | None = None  # the registered model it becomes (register decides the alias)
    served: str | None = None  # "torch" | "onnx" | "sklearn" | "numpy"


def single_latency(models: dict[str, Callable], texts: list, samples: int = SINGLE) -> dict[str, float]:
    """name -> p50 seconds of one call on one text, interleaved (each text through every model,
    the order alternating per text).

    >>> out = single_latency({"a": lambda t, b: time.sleep(0.001), "b": lambda t, b: None}, ["x"] * 4)
    >>> out["a"] > out["b"]
    True
    """
    names = list(models)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for i, text in enumerate(texts[:samples]):
        for name in (names if i % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            models[name]([text], 1)
            seconds[name].append(time.perf_counter() - t0)
    return {n: statistics.median(s) for n, s in seconds.items() if s}


def measure(entries: list[Entry], texts: list, batch_size: int, rounds: int) -> dict[str, dict]:
    """name -> {"texts_per_s", "p50_ms"} for every entry with a predict function."""
    from components.evaluation import speed

    models = {e.name: e.predict for e in entries if e.predict is not None}
    if not models:
        return {}
    tps = speed.throughput(models, texts, batch_size, rounds)
    p50 = single_latency(models, texts)
    return {n: {"texts_per_s": round(tps[n], 1), "p50_ms": round(p50[n] * 1000, 3) if n in p50 else None}
            for n in models}


def pareto(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names on the front of (accuracy, texts/s) points: no other point is >= in both and > in one.

    >>> sorted(pareto({"a": (0.8, 100), "b": (0.7, 1000), "c": (0.7, 50), "d": (0.8, 100)}))
    ['a', 'b', 'd']
    """
    front = set()
    for name, (acc, tps) in points.items():
        dominated = any(a >= acc and t >= tps and (a > acc or t > tps)
                        for other, (a, t) in points.items() if other != name)
        if not dominated:
            front.add(name)
    return front


def document(entries: list[Entry], metrics: dict, timings: dict[str, dict], facts: dict,
             conditions: dict) -> dict:
    """The frontier.json document: lineage, conditions and one row per entry (ORDER first)."""
    rows = []
    for e in sorted(entries, key=lambda e: (ORDER.index(e.name) if e.name in ORDER else len(ORDER), e.name)):
        get = lambda key: metrics.get(f"{e.prefix}.{key}")  # noqa: E731
        t = timings.get(e.name, {})
        lo, hi = get("accuracy_ci_low"), get("accuracy_ci_high")
        rows.append({"name": e.name, "role": e.role, "registered_as": e.registered_as, "served": e.served,
                     "accuracy": get("accuracy"), "accuracy_ci": [lo, hi] if lo is not None else None,
                     "macro_f1": get("macro_f1"), "texts_per_s": t.get("texts_per_s"),
                     "p50_ms": t.get("p50_ms"), "params": e.params,
                     "disk_mb": None if e.disk_mb is None else round(e.disk_mb, 2),
                     "train_s": None if e.train_s is None else round(e.train_s, 1)})
    timed = {r["name"]: (r["accuracy"], r["texts_per_s"]) for r in rows
             if r["accuracy"] is not None and r["texts_per_s"] is not None}
    front = pareto(timed)
    for r in rows:
        r["pareto"] = r["name"] in front if r["name"] in timed else None
    return {"lineage": facts, "conditions": conditions, "models": rows}


def folder_mb(path: Path | None) -> float | None:
    """Size on disk of a model folder (or file) in MB (10^6 bytes); None when absent."""
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def table(doc: dict) -> str:
    """A markdown table of the frontier (the Prefect run summary and the MLflow run show it).

    >>> print(table({"models": [{"name": "teacher", "accuracy": 0.83, "accuracy_ci": [0.81, 0.85],
    ...     "macro_f1": 0.82, "texts_per_s": 180.0, "p50_ms": 11.9, "params": 22713216, "disk_mb": 86.7,
    ...     "train_s": 311.0, "pareto": True, "registered_as": "x-teacher"}]}))
    | model | accuracy (95% CI) | macro-F1 | texts/s | p50 ms | params | MB | train s | front |
    |---|---|---|---|---|---|---|---|---|
    | teacher | 0.830 (0.810-0.850) | 0.820 | 180 | 11.9 | 22.7M | 86.7 | 311 | yes |
    """
    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    lines = ["| model | accuracy (95% CI) | macro-F1 | texts/s | p50 ms | params | MB | train s | front |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in doc["models"]:
        ci = r.get("accuracy_ci")
        acc = num(r["accuracy"], ".3f") + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
        params = "" if r.get("params") is None else f"{r['params'] / 1e6:.1f}M"
        front = {True: "yes", False: "", None: ""}[r.get("pareto")]
        lines.append(f"| {r['name']} | {acc} | {num(r['macro_f1'], '.3f')} | {num(r['texts_per_s'], '.0f')} | "
                     f"{num(r['p50_ms'], '.1f')} | {params} | {num(r['disk_mb'], '.1f')} | "
                     f"{num(r['train_s'], '.0f')} | {front} |")
    return "\n".join(lines)


def n_params(net) -> int | None:
    """Parameter count of a torch module (None for anything else)."""
    params = getattr(net, "parameters", None)
    return int(sum(p.numel() for p in params())) if callable(params) else None

