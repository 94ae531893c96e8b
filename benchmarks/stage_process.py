"""Pretraining speed by how the stage is started: by hand, by `dvc repro`, or by the flow.

    .venv/bin/python benchmarks/stage_process.py                   # default model, 120 steps, 2 rounds
    .venv/bin/python benchmarks/stage_process.py --steps 40 --rounds 1   # smoke test
    .venv/bin/python benchmarks/stage_process.py --json stage_process.json   # + numbers, lineage

One scratch project (git + DVC; the flow tests' CSV generator, --rows rows; the
default model shape of params.yaml) is built and run up to tokenize once. Then
the pretrain stage alone is run again and again, each time from nothing, started
three ways, in rotating order so that a busy CPU hits them alike:

    stage      `encoderflow stage pretrain`: a fresh process that runs only the stage (anchor)
    dvc        `dvc repro -f -s pretrain`: DVC's CLI starts `encoderflow stage pretrain` in a subprocess
    flow       `encoderflow run --force`: the Prefect flow; DVC (in the flow's process) starts
               `encoderflow stage pretrain` in a subprocess; every stage reruns, only
               pretrain's tokens/s is read

Every way forces the stage (`dvc repro -f -s`, `encoderflow run --force`):
otherwise DVC would check the cached outputs out
instead of training. Each run reports the stage's own `tokens_per_s` (reports/pretrain.json: real
tokens over the stage's training wall time), so start-up and import costs are
left out: what differs is only the process the training loop runs in. Printed
as the median per way and its ratio to `stage`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/: its tokenize.py would shadow the stdlib module
sys.path.insert(1, str(ROOT / "tests"))  # builders.flow_project: the flow tests' project builder

WAYS = ("stage", "dvc", "flow")


def build(root: Path, rows: int, steps: int) -> None:
    import dataclasses

    from components.core.config import ModelConfig, PretrainConfig

    from builders import flow_project as fp

    default_model = fp._plain(dataclasses.asdict(ModelConfig()))
    pre = PretrainConfig()
    fp.make(root, n=rows, overrides={
        "model": default_model,
        "pretrain": {"max_steps": steps, "batch_size": pre.batch_size, "seq_len": pre.seq_len,
                     "precision": pre.precision, "checkpoint_every": steps, "val_every": steps},
    })
    for stage in ("tokenize", "teacher"):  # pretrain's inputs (data/teacher: the base vectors, none here)
        fp.sh(root, "dvc", "repro", stage)


def reset(root: Path) -> None:
    """Pretrain's outputs gone (every way also forces the stage)."""
    for path in (root / "models" / "pretrained", root / "checkpoints"):
        shutil.rmtree(path, ignore_errors=True)


def command(way: str) -> list[str]:
    exe = str(Path(sys.executable).parent / "encoderflow")
    return {
        "stage": [exe, "stage", "pretrain"],
        "dvc": [sys.executable, "-m", "dvc", "repro", "-f", "-s", "pretrain"],
        "flow": [exe, "run", "--force"],
    }[way]


def once(root: Path, way: str) -> dict:
    reset(root)
    before = (root / "reports" / "pretrain.json").read_bytes() if (root / "reports" / "pretrain.json").is_file() else b""
    argv = command(way)
    env = {**os.environ, "PREFECT_HOME": str(root / ".prefect"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    t0 = time.perf_counter()
    out = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{way} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    raw = (root / "reports" / "pretrain.json").read_bytes()
    if raw == before:  # the stage did not train (a new run always has a new MLflow run id)
        raise SystemExit(f"{way}: pretrain did not run (reports/pretrain.json unchanged)")
    report = json.loads(raw)
    return {"way": way, "tokens_per_s": report["tokens_per_s"], "train_s": report["wall_seconds"],
            "wall_s": round(wall, 1), "steps": report["steps"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=120, help="pretraining steps per run (default 120)")
    ap.add_argument("--rows", type=int, default=4000, help="rows of the scratch project's CSV")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each way (default 2)")
    ap.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    ap.add_argument("--keep", action="store_true", help="keep the scratch project")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="also write every run, the medians and their lineage here")
    args = ap.parse_args(argv)

    import torch

    print(f"# {Path(__file__).name}: pretrain tokens/s by process, {args.steps} steps, "
          f"{args.rounds} round(s); torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="encoderflow-stage-process-"))
    try:
        root = tmp / "proj"
        build(root, args.rows, args.steps)
        results: list[dict] = []
        for r in range(args.rounds):
            order = args.ways[r % len(args.ways):] + args.ways[:r % len(args.ways)]
            for way in order:
                row = once(root, way)
                results.append(row)
                print(f"  round {r + 1} {way:9s} {row['tokens_per_s']:>9,.0f} tokens/s  "
                      f"train {row['train_s']:.1f}s  command {row['wall_s']:.1f}s", flush=True)
        med = {w: statistics.median(x["tokens_per_s"] for x in results if x["way"] == w) for w in args.ways}
        anchor = med.get("stage")
        print("\n| way | median tokens/s | vs `stage` |\n|---|---|---|")
        for way in args.ways:
            ratio = f"{med[way] / anchor:.2f}x" if anchor else "-"
            print(f"| {way} | {med[way]:,.0f} | {ratio} |")
        if args.json:
            from benchmarks import _report

            out = _report.Report("stage_process")
            out.results = {"steps": args.steps, "rows": args.rows,
                "rounds": args.rounds, "runs": results,
                "median_tokens_per_s": med,
                "vs_stage": {w: round(med[w] / anchor, 3) for w in args.ways} if anchor else None}
            out.write(args.json)
    finally:
        if args.keep:
            print(f"project kept at {tmp / 'proj'}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
