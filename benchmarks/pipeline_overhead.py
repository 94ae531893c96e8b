"""Orchestration + tracking overhead of `encoderflow run` (target: at most 10% of the wall time).

    .venv/bin/python benchmarks/pipeline_overhead.py                  # default params, sample data
    .venv/bin/python benchmarks/pipeline_overhead.py --runs 3         # 1 cold + 2 warm runs
    .venv/bin/python benchmarks/pipeline_overhead.py --json overhead.json   # + numbers, lineage
    .venv/bin/python benchmarks/pipeline_overhead.py --tiny 96 --runs 1 \\
        --set pretrain.max_steps=5 --set finetune.max_epochs=1        # smoke test (~2 min)
    .venv/bin/python benchmarks/pipeline_overhead.py --existing ../clone --log run.log --wall 3100
                        # split a run you already made (its output in run.log, its wall seconds)

Builds a scratch project (git + DVC; the repo's params.yaml and the cached
sample wheel, or with --tiny N the N-row CSV project of the flow tests), runs
`encoderflow run` (a subprocess; --set values are passed through) and splits
its wall time:

- wall: the whole `encoderflow run` command, and per stage the seconds the
  flow's task took (its `NAME: ran (X.Xs)` line: DVC + the stage command,
  `encoderflow stage NAME`, which DVC starts as a subprocess);
- compute: what each stage records as MLflow metric `time.compute_s` in its
  own run, read back from the project's MLflow store. It is the work that
  makes the stage's outputs, timed after the heavy imports:
    ingest    read the source, clean/split, write the parquet files
    validate  read the splits, run the GX checkpoint, build the Data Docs
    tokenize  train the tokenizer, encode + save every split, the stats
    pretrain  trainer.fit (includes Lightning's own per-step metric logging),
              the final val loss and the encoder export
    finetune  trainer.fit, best-checkpoint reload, the export
    evaluate  score the model and every baseline (incl. random-init training),
              behaviour checks, the plots
    register  the gate: load + score the new (and champion) version, bootstrap
- overhead = wall - compute: interpreter + CLI start, each stage process's
  start and imports (torch, Lightning, MLflow, GX, datasets), Prefect
  (ephemeral API, task runs,
  artifact), MLflow run creation / params / artifacts / model logging and
  registration, GX context setup, DVC (hashing, dvc.lock, run cache).

Run 1 is cold (fresh project: Prefect and MLflow databases are created and
migrated); runs 2.. reset the stage outputs, dvc.lock and DVC's cache but keep
mlflow.db and .prefect, like a scheduled retrain. Median of the warm runs is
the headline; on a shared CPU compare runs taken close together. --json
writes every run's breakdown, the medians, the cold run's wall seconds and the
precision pretraining resolved (`cold_wall_s`, `precision`: the README's quick
start table) and the lineage block (commit, date, CPU, torch threads) for the docs.

--existing splits a cold run made outside this script, as a user makes it: `encoderflow
run` in a fresh clone (no mlflow.db, .prefect or DVC cache before it), its stdout+stderr
saved to --log, its wall seconds (e.g. /usr/bin/time's "Elapsed") given as --wall. The
lineage is then the project's (its commit, and dirty once the run rewrote dvc.lock).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/: its tokenize.py would shadow the stdlib module

TARGET = 0.10  # overhead share of the total wall time
TASK_LINE = re.compile(r"\b([a-z_]+): (ran|skipped) \((\d+(?:\.\d+)?)s\)")
PARENT = re.compile(r"parent run 'pipeline' ([0-9a-f]{32})")
OUTPUTS = ("dvc.lock", "data/prepared", "data/tokenized", "models", "reports", "checkpoints",
           ".dvc/cache", ".dvc/tmp")


def make_sample_project(root: Path) -> Path:
    """A copy of this repo's code, dvc.yaml and params.yaml (git + DVC), with the
    sample wheel copied from .cache/ so ingest needs no network."""
    sys.path.insert(0, str(ROOT / "tests"))  # the test builders (tests/builders)
    from builders.flow_project import sh

    root.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("components", "flows"):
        shutil.copytree(ROOT / name, root / name, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "params.yaml"):
        shutil.copyfile(ROOT / name, root / name)
    for folder in ("incoming", "corpus"):  # ingest's DVC deps
        (root / "data" / folder).mkdir(parents=True)
        (root / "data" / folder / ".gitkeep").touch()
    if (ROOT / ".cache").is_dir():
        shutil.copytree(ROOT / ".cache", root / ".cache")
    for cmd in (("git", "init", "-q"), ("git", "config", "user.email", "bench@example.com"),
                ("git", "config", "user.name", "bench"), ("dvc", "init", "-q"),
                ("dvc", "config", "core.analytics", "false"),
                ("dvc", "config", "core.check_update", "false"), ("git", "add", "-A"),
                ("git", "commit", "-q", "-m", "benchmark project")):
        sh(root, *cmd)
    return root


def reset(root: Path) -> None:
    """Forget every stage output (and DVC's run cache) so the next run executes all stages."""
    for rel in OUTPUTS:
        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_pipeline(root: Path, overrides: list[str]) -> tuple[float, str]:
    exe = Path(sys.executable).parent / "encoderflow"
    cmd = [str(exe), "run"] + [a for kv in overrides for a in ("--set", kv)]
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ['PATH']}"}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=False, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{text[-4000:]}")
    return wall, text


# A stage that logs no time.compute_s: the sum of the parts it times itself. The teacher
# stage (older than this benchmark's metric) times its base vectors, its fine-tuning and its
# labelling; its model2vec distillation and its writes are untimed, so they count as overhead.
PARTS = {"teacher": ("base_vectors_s", "train_wall_s", "label_s")}


def compute_seconds(root: Path, parent_id: str) -> dict[str, float | None]:
    """stage -> time.compute_s of its MLflow child run under `parent_id` (or the sum of PARTS)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    parent = client.get_run(parent_id)
    runs = client.search_runs([parent.info.experiment_id],
                              f"tags.mlflow.parentRunId = '{parent_id}'", max_results=100)
    out = {}
    for r in runs:
        stage, m = r.data.tags.get("encoderflow.stage", r.info.run_name), r.data.metrics
        parts = [m[k] for k in PARTS.get(stage, ()) if k in m]
        out[stage] = m.get("time.compute_s", sum(parts) if parts else None)
    return out


def breakdown(root: Path, wall: float, log: str) -> dict:
    tasks = {m[1]: (m[2], float(m[3])) for m in TASK_LINE.finditer(log)}
    parent = PARENT.search(log)
    if not parent:
        raise SystemExit("no MLflow parent run id in the output of `encoderflow run`")
    compute = compute_seconds(root, parent[1])
    rows = []
    for name, (status, seconds) in tasks.items():
        c = compute.get(name) if status == "ran" else 0.0
        rows.append((name, status, seconds, c))
    return {"wall": wall, "rows": rows, "outside": wall - sum(r[2] for r in rows),
            "compute": sum(r[3] or 0.0 for r in rows),
            "missing": [r[0] for r in rows if r[3] is None]}


def show(out, label: str, b: dict) -> None:
    """Print (and keep, in `out`: a _report.Report) the breakdown table of one run."""
    rows = []
    for name, status, seconds, c in b["rows"]:
        cs, os_ = ("?", "?") if c is None else (f"{c:.1f}", f"{seconds - c:.1f}")
        rows.append([f"{name}{'' if status == 'ran' else ' (' + status + ')'}", f"{seconds:.1f}", cs, os_])
    rows.append(["(outside stages: CLI, Prefect, parent run)", f"{b['outside']:.1f}", "0.0", f"{b['outside']:.1f}"])
    over = b["wall"] - b["compute"]
    rows.append(["**total**", f"{b['wall']:.1f}", f"{b['compute']:.1f}", f"{over:.1f} ({over / b['wall']:.1%})"])
    out.table(f"{label}: `encoderflow run` {b['wall']:.1f} s wall", ["stage", "wall s", "compute s", "overhead s"],
              rows)
    if b["missing"]:
        print(f"warning: no time.compute_s recorded for {', '.join(b['missing'])} (counted as 0)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--runs", type=int, default=2, help="1 cold run + (runs-1) warm runs")
    ap.add_argument("--tiny", type=int, metavar="N", help="tiny CSV project with N labelled rows "
                    "(the flow tests' config) instead of the sample with params.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="passed through to `encoderflow run --set`")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="also write every run's breakdown, the medians and their lineage here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch project")
    ap.add_argument("--existing", type=Path, metavar="DIR", help="split a cold run already made in DIR "
                    "(with --log and --wall) instead of running one")
    ap.add_argument("--log", type=Path, metavar="FILE", help="--existing: that run's stdout+stderr")
    ap.add_argument("--wall", type=float, metavar="S", help="--existing: that run's wall seconds")
    args = ap.parse_args()
    from benchmarks import _report

    out = _report.Report("pipeline_overhead")
    if args.existing:
        if args.log is None or args.wall is None:
            ap.error("--existing needs --log FILE and --wall SECONDS")
        root = args.existing.resolve()
        out.lineage_root, out.lineage_code = root, run_code(root)
        runs = [{"run": 1, "kind": "cold", **breakdown(root, args.wall, args.log.read_text(errors="replace"))}]
        show(out, "run 1 (cold)", runs[0])
        return finish(args, out, root, runs)
    workdir = Path(tempfile.mkdtemp(prefix="encoderflow-overhead-"))
    if args.tiny:
        from builders import flow_project

        root = flow_project.make(workdir / "project", n=args.tiny)
    else:
        root = make_sample_project(workdir / "project")
    print(f"scratch project: {root}", flush=True)
    runs: list[dict] = []
    try:
        for i in range(args.runs):
            if i:
                reset(root)
            wall, log = run_pipeline(root, args.overrides)
            runs.append({"run": i + 1, "kind": "warm" if i else "cold", **breakdown(root, wall, log)})
            show(out, f"run {i + 1} ({runs[-1]['kind']})", runs[-1])
        finish(args, out, root, runs)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def run_code(root: Path) -> dict:
    """The commit the project's run was made from: register's git tags (reports/register.json), since
    the clone's HEAD may have moved on (its reports committed) after the run."""
    import json

    path = root / "reports" / "register.json"
    tags = json.loads(path.read_text()).get("tags", {}) if path.is_file() else {}
    if "encoderflow.git_sha" not in tags:
        return {}
    return {"git_commit": tags["encoderflow.git_sha"], "git_dirty": tags.get("encoderflow.git_dirty") == "true"}


def precision_of(root: Path) -> str | None:
    """The precision the project's pretraining resolved (reports/pretrain.json), if it ran."""
    import json

    path = root / "reports" / "pretrain.json"
    return json.loads(path.read_text()).get("precision") if path.is_file() else None


def finish(args, out, root: Path, runs: list[dict]) -> None:
    headline = runs[1:] or runs  # the warm runs; the cold one when it is the only run
    med = {"runs": len(headline), "kind": headline[0]["kind"],
           "wall_s": statistics.median(b["wall"] for b in headline),
           "overhead_s": statistics.median(b["wall"] - b["compute"] for b in headline),
           "overhead_share": statistics.median((b["wall"] - b["compute"]) / b["wall"] for b in headline)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nmedian of {med['runs']} {med['kind']} run(s): wall {med['wall_s']:.1f} s, overhead "
          f"{med['overhead_s']:.1f} s = {med['overhead_share']:.1%} of wall (target <= {TARGET:.0%}, "
          f"ratio {med['overhead_share'] / TARGET:.2f})")
    print(f"load average {load:.1f}")
    if args.json:
        out.results = {"project": str(args.existing) if args.existing else f"tiny {args.tiny}" if args.tiny
                       else "sample", "overrides": args.overrides, "target_share": TARGET, "median": med,
            "cold_wall_s": runs[0]["wall"] if runs[0]["kind"] == "cold" else None,
            "precision": precision_of(root),
            "runs": [{**b, "rows": [dict(zip(("stage", "status", "wall_s", "compute_s"), r)) for r in b["rows"]]}
                     for b in runs]}
        out.write(args.json)


if __name__ == "__main__":
    main()
