"""Run the default recipe on the built-in sample and print the model against its baselines.

    .venv/bin/python benchmarks/quality.py                      # full default run (~11 min, 2 cores)
    .venv/bin/python benchmarks/quality.py --project .          # just read an already-run project
    .venv/bin/python benchmarks/quality.py --set pretrain.max_steps=2000   # a recipe variant

Without --project it builds a scratch project (benchmarks/pipeline_overhead.py's
make_sample_project: this checkout's code, dvc.yaml and shipped params.yaml, the cached
sample wheel, git + DVC initialised, like a user's clone), runs
`encoderflow run` there with the given --set overrides, and reads reports/metrics.json.

Prints test accuracy (95% bootstrap CI) and macro-F1 of the model and of each baseline
from the same run, the pretraining gain (model minus the random-init baseline), the wall
time, and whether the issue's targets hold: model beats TF-IDF+LR; the pretraining gain is
at least 3 accuracy points; the pipeline finishes within 15 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/: its tokenize.py would shadow the stdlib module
ROWS = [("model", "model"), ("random-init encoder", "baseline.random_init"),
        ("TF-IDF + LR", "baseline.tfidf_lr"), ("NB-LR (bigrams)", "baseline.nbsvm"),
        ("majority class", "baseline.majority")]


def run_pipeline(root: Path, overrides: list[str]) -> float:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(root / ".prefect")}
    cmd = [str(bin_dir / "encoderflow"), "run", *sum((["--set", o] for o in overrides), [])]
    print(f"running {' '.join(cmd[1:])} in {root} ...", flush=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=root, env=env)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"encoderflow run failed (exit {out.returncode}) in {root}")
    return wall


def table(metrics: dict) -> list[str]:
    lines = ["| | accuracy | 95% CI | macro-F1 |", "|---|---|---|---|"]
    for name, key in ROWS:
        if f"{key}.accuracy" not in metrics:
            continue
        lines.append(f"| {name} | {metrics[f'{key}.accuracy']:.4f} | "
                     f"{metrics[f'{key}.accuracy_ci_low']:.4f}–{metrics[f'{key}.accuracy_ci_high']:.4f} | "
                     f"{metrics[f'{key}.macro_f1']:.4f} |")
    return lines


def verdicts(metrics: dict, wall: float | None) -> list[str]:
    acc = metrics["model.accuracy"]
    out = [f"model - TF-IDF+LR: {100 * (acc - metrics['baseline.tfidf_lr.accuracy']):+.1f} points "
           f"(target > 0): {'met' if acc > metrics['baseline.tfidf_lr.accuracy'] else 'NOT met'}",
           f"model - NB-LR: {100 * (acc - metrics['baseline.nbsvm.accuracy']):+.1f} points (aim > 0)"]
    if "baseline.random_init.accuracy" in metrics:
        gain = 100 * (acc - metrics["baseline.random_init.accuracy"])
        out.append(f"pretraining gain (model - random init): {gain:+.1f} points (target >= +3.0): "
                   f"{'met' if gain >= 3.0 else 'NOT met'}")
    if wall is not None:
        out.append(f"wall time: {wall / 60:.1f} min (target <= 15): {'met' if wall <= 900 else 'NOT met'}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, help="read this already-run project instead of running")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="params override for the scratch run (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch project")
    args = ap.parse_args()

    wall = None
    root = args.project
    if root is None:
        from benchmarks.pipeline_overhead import make_sample_project

        root = make_sample_project(Path(tempfile.mkdtemp(prefix="encoderflow-quality-")) / "p")
        wall = run_pipeline(root, args.overrides)
    path = root / "reports" / "metrics.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (run the pipeline first)")
    metrics = json.loads(path.read_text())
    print("\n".join(["", *table(metrics), "", *verdicts(metrics, wall)]))
    if args.project is None and not args.keep:
        shutil.rmtree(root.parent, ignore_errors=True)
    elif args.project is None:
        print(f"scratch project kept: {root}")


if __name__ == "__main__":
    main()
