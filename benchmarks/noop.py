"""How long a run takes when nothing changed (targets: dvc repro 5 s, flow 30 s).

    .venv/bin/python benchmarks/noop.py                   # builds a tiny project first (~2-3 min)
    .venv/bin/python benchmarks/noop.py --sample          # the sample with params.yaml (one full run first)
    .venv/bin/python benchmarks/noop.py --project PATH    # an already-run project
    .venv/bin/python benchmarks/noop.py --json noop.json  # also write the numbers + lineage

Prints wall seconds (best of --repeat) and the ratio to the target:
- `dvc repro` (one subprocess; every stage checked and skipped);
- `encoderflow run`: with nothing changed it ends after `dvc status`, without Prefect;
- the same no-op through the flow (`encoderflow run --set project.seed=<its value>`: a --set
  always goes through Prefect, as a scheduled run does): Prefect's ephemeral API, the MLflow
  parent run, the artifact, every stage checked and skipped;
- the two ways the flow could drive DVC per stage, for the record:
  in-process `Repo.reproduce` (what flows/stage_dvc.py does) vs one
  `dvc repro --single-item NAME` subprocess per stage.

A no-op runs no stage command, so how DVC would start one does not enter here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/: its tokenize.py would shadow the stdlib module
TARGETS = {"dvc repro (no-op)": 5.0, "encoderflow run (no-op)": 30.0}
FLOW = "the same no-op through the Prefect flow"


def _env(root: Path) -> dict:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"],
            "PREFECT_HOME": str(root / ".prefect"), "DVC_NO_ANALYTICS": "1"}


def timed(cmd: list[str], root: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return seconds, out.stdout + out.stderr


def best(fn, repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def build(sample: bool) -> Path:
    """A scratch project after one full `encoderflow run`: the flow tests' tiny CSV project,
    or with `sample` the built-in sample with this repo's params.yaml."""
    sys.path.insert(0, str(ROOT / "tests"))  # the test builders (tests/builders)
    workdir = Path(tempfile.mkdtemp(prefix="encoderflow-bench-"))
    if sample:
        from benchmarks.pipeline_overhead import make_sample_project

        root = make_sample_project(workdir / "p")
    else:
        from builders import flow_project

        root = flow_project.make(workdir / "p", n=96)
    print(f"building {'the sample' if sample else 'a tiny'} project in {root} (one full run)...", flush=True)
    timed([str(Path(sys.executable).parent / "encoderflow"), "run"], root)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--project", type=Path, help="an already-run encoderflow project")
    where.add_argument("--sample", action="store_true",
                       help="build the sample project with params.yaml (a full default run first)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="also write the numbers and their lineage (commit, date, CPU) here")
    args = ap.parse_args()

    from components.core import env
    from components.stages.table import NAMES

    env.configure()
    root = (args.project or build(args.sample)).resolve()

    def dvc_repro() -> float:
        seconds, out = timed([sys.executable, "-m", "dvc", "repro"], root)
        assert "Running stage" not in out, "not a no-op: run the pipeline once first"
        return seconds

    from components.core.config import load_params

    seed = load_params(root / "params.yaml").project.seed
    cli = str(Path(sys.executable).parent / "encoderflow")

    def cli_run() -> float:
        seconds, out = timed([cli, "run"], root)
        assert "Pipeline up to date" in out, "not a no-op: run the pipeline once first"
        return seconds

    def flow_run() -> float:
        seconds, out = timed([cli, "run", "--set", f"project.seed={seed}"], root)
        assert ": ran (" not in out and ": skipped (" in out, "not a no-op through the flow"
        return seconds

    def per_stage_in_process() -> float:
        from flows.stage_dvc import run_with_dvc

        t0 = time.perf_counter()
        for name in NAMES:
            assert run_with_dvc(name, root).status == "skipped"
        return time.perf_counter() - t0

    def per_stage_subprocess() -> float:
        return sum(timed([sys.executable, "-m", "dvc", "repro", "--single-item", name], root)[0]
                   for name in NAMES)

    rows = [("dvc repro (no-op)", best(dvc_repro, args.repeat)),
            ("encoderflow run (no-op)", best(cli_run, args.repeat)),
            (FLOW, best(flow_run, args.repeat)),
            ("stages via in-process Repo.reproduce", best(per_stage_in_process, args.repeat)),
            ("stages via `dvc repro --single-item` subprocesses", best(per_stage_subprocess, args.repeat))]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"project: {root}  ({len(NAMES)} stages, load average {load:.1f}, best of {args.repeat})")
    for label, seconds in rows:
        target = TARGETS.get(label)
        extra = f"  target {target:.0f} s, ratio {seconds / target:.2f}" if target else ""
        print(f"{label:52s} {seconds:6.2f} s{extra}")
    inproc, subproc = rows[3][1], rows[4][1]
    print(f"{'subprocess / in-process (per-stage DVC driving)':52s} {subproc / inproc:6.2f}x")
    if args.json:
        from benchmarks import _report

        kind = "given" if args.project else "sample" if args.sample else "tiny"
        out = _report.Report("noop")
        out.table(f"No-op runs on the {kind} project ({len(NAMES)} stages, best of {args.repeat}, load average "
                  f"{load:.1f})", ["what", "seconds", "target"],
                  [[label, f"{seconds:.1f}", "" if label not in TARGETS else
                    f"≤ {TARGETS[label]:.0f} s: {'met' if seconds <= TARGETS[label] else 'NOT met'}"]
                   for label, seconds in rows])
        out.results = {"project": kind, "stages": len(NAMES), "repeat": args.repeat,
            "rows": [{"label": label, "seconds": round(seconds, 3), "target_s": TARGETS.get(label),
                      "ratio": round(seconds / TARGETS[label], 3) if label in TARGETS else None}
                     for label, seconds in rows],
            "subprocess_over_in_process": round(subproc / inproc, 3)}
        out.write(args.json)


if __name__ == "__main__":
    main()
