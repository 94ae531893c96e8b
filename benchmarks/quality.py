"""Student frontier: test accuracy and served speed of student shapes, with and without distillation, vs the teacher.

    .venv/bin/python benchmarks/quality.py                        # sample; d128x2, d256x2, d256x4; distill on + off
    .venv/bin/python benchmarks/quality.py --project P            # reuse P's data, teacher (and tokenizer)
    .venv/bin/python benchmarks/quality.py --shapes d256x2,cnn-d256x1,lstm-d256x1 --distill on --steps 2000
    .venv/bin/python benchmarks/quality.py --smoke --threads 1    # tiny synthetic project + tiny teacher, ~2 min
    .venv/bin/python benchmarks/quality.py --pipeline             # the default recipe through `encoderflow run`
    .venv/bin/python benchmarks/quality.py --pipeline --project . # just read an already-run project
    .venv/bin/python benchmarks/quality.py --project . --json reports/benchmarks/quality.json   # for the docs

Frontier (the default). One workspace (benchmarks/_students.py): without --project a
scratch project of the built-in sample (pipeline_overhead.make_sample_project) where
ingest, validate, teacher and tokenize run once, in-process, through their stage
functions; with --project PATH the data/prepared, data/teacher and models/teacher of
PATH (read only). Then per shape the pretrain stage runs once (the encoder shape
changes; the encoder is cached under PATH/.cache/encoderflow/bench/pretrained/ by the
stage's own checkpoint key, so a rerun reuses it), and per (shape, distill on/off)
finetune's fit_classifier trains the student exactly as the finetune stage would,
with params.yaml's finetune section (distill on: the teacher's transfer set; off:
gold train labels only). Shapes: dHxL is a transformer with hidden size H, L
layers, H/64 heads and FFN 4H; cnn-dHxL and lstm-dHxL the other families.

Every model is scored on the same test split with evaluate's metric code; TF-IDF+LR,
NB-LR and majority are evaluate's scikit-learn baselines on the same split; the
teacher is models/teacher. Speed is the served path (TextClassifier.predict_proba,
what the registered pyfunc calls: length-sorted batches of 64, fp32) on the same
test texts, in this process, with the same threads, each model warmed up, timed in
interleaved rounds (components/evaluation/speed.py, as evaluate's reports/speed.json).
A student's speed depends on its shape only, so each shape is timed once. The
ratio is student texts/s over teacher texts/s from the same rounds. `frontier`
marks the rows that no other row (teacher included) beats on both accuracy and speed.

--pipeline keeps the earlier behaviour: a scratch `encoderflow run` (or --project's
reports/metrics.json) and the model vs its baselines with the issue's targets.
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
from benchmarks import _common as C  # noqa: E402
from benchmarks import _lineage  # noqa: E402
from benchmarks import _report  # noqa: E402
from benchmarks import _shapes  # noqa: E402
from benchmarks import _students as S  # noqa: E402
from benchmarks import _workspace as W  # noqa: E402

DEFAULT_SHAPES = "d128x2,d256x2,d256x4"
SMOKE_SHAPES = "d16x1,d32x1,d32x2"
Q4_POINTS, Q4_SPEED = 3.0, 10.0  # Q4: within 3 points of the teacher and >= 10x its texts/s (aim 20x)
ROWS = [("model", "model"), ("teacher", "teacher"), ("random-init encoder", "baseline.random_init"),
        ("TF-IDF + LR", "baseline.tfidf_lr"), ("NB-LR (bigrams)", "baseline.nbsvm"),
        ("majority class", "baseline.majority")]


# --------------------------------------------------------------------------- --pipeline


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


def table(metrics: dict) -> list[list[str]]:
    """Rows of the model and its baselines: name, accuracy, 95% CI, macro-F1."""
    return [[name, f"{metrics[f'{key}.accuracy']:.4f}",
             f"{metrics[f'{key}.accuracy_ci_low']:.4f}–{metrics[f'{key}.accuracy_ci_high']:.4f}",
             f"{metrics[f'{key}.macro_f1']:.4f}"] for name, key in ROWS if f"{key}.accuracy" in metrics]


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


def pipeline(args) -> None:
    if args.smoke:
        raise SystemExit("error: --smoke builds the frontier's tiny project; for a tiny pipeline run use "
                         "benchmarks/pipeline_overhead.py --tiny 96")
    C.header("default recipe vs baselines (encoderflow run)")
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
    out = _report.Report("quality_pipeline")
    out.table(f"the default recipe vs its baselines ({path})", ["", "accuracy", "95% CI", "macro-F1"], table(metrics))
    print("\n".join(["", *verdicts(metrics, wall)]))
    out.results = {"metrics": metrics, "wall_s": wall}
    speed = root / "reports" / "speed.json"  # evaluate's timings (not byte-reproducible)
    if speed.is_file():
        from flows.summary import speed_line

        print("speed: " + speed_line(json.loads(speed.read_text())))
    out.write(args.json)
    if args.project is None and not args.keep:
        shutil.rmtree(root.parent, ignore_errors=True)
    elif args.project is None:
        print(f"scratch project kept: {root}")


# --------------------------------------------------------------------------- frontier


def on_frontier(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names whose (accuracy, texts/s) no other point matches or beats on both, better on one.

    >>> sorted(on_frontier({"a": (0.8, 100.0), "b": (0.7, 50.0), "c": (0.7, 500.0)}))
    ['a', 'c']
    """
    out = set()
    for name, (acc, tps) in points.items():
        if not any(a >= acc and t >= tps and (a > acc or t > tps)
                   for other, (a, t) in points.items() if other != name):
            out.add(name)
    return out


def frontier(args) -> None:
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.distill]
    spec = args.shapes or (SMOKE_SHAPES if args.smoke else DEFAULT_SHAPES)
    shapes = [_shapes.parse_shape(s) for s in spec.split(",")]
    C.set_threads(args.threads)
    C.header("student frontier: accuracy and served speed vs the teacher")
    ws = W.open_workspace(args, need_teacher=True)
    try:
        measure(ws, args, shapes, modes)
    finally:
        ws.close(args.keep)


def measure(ws, args, shapes, modes) -> None:
    from components.data.labels import read_labels
    from components.evaluation.baselines import sklearn_baselines
    from components.evaluation.metrics import classification_metrics
    from components.evaluation.speed import BATCH_SIZE, MAX_TEXTS, throughput
    from components.model.classifier import TextClassifier

    base = ws.cfg()
    paths, seed = ws.paths, base.project.seed
    steps = args.steps or base.pretrain.max_steps
    labels = read_labels(paths.labels)
    n = len(labels)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (S.split(paths, s, n) for s in ("train", "val", "test"))

    def score(probs) -> dict:
        return classification_metrics(probs, test_y, labels, ece_bins=base.evaluate.ece_bins,
                                      bootstrap_samples=base.evaluate.bootstrap_samples, seed=seed)

    t0 = time.perf_counter()
    scored = {f"baseline.{k}": score(p) for k, p in
              sklearn_baselines(train_x, train_y, val_x, val_y, test_x, n, seed).items()}
    timings = {"sklearn baselines": time.perf_counter() - t0}
    teacher = None
    if (paths.teacher_model / "config.json").is_file():
        teacher = TextClassifier.from_folder(paths.teacher_model)
        scored["teacher"] = score(teacher.predict_proba(test_x))
    elif True in modes:
        raise SystemExit(f"error: {paths.teacher_model}: no teacher model (teacher.enabled false?); "
                         "distillation needs one: pass --distill off")

    epochs = [f"finetune.max_epochs={args.epochs}"] if args.epochs else []
    students: list[dict] = []
    by_shape: dict[str, object] = {}  # shape name -> one trained classifier (speed depends on shape only)
    for shape in shapes:
        common = [*shape.overrides(), f"pretrain.max_steps={steps}", *epochs]
        S.pretrained(ws, ws.cfg(*common, "finetune.distill.enabled=false"), ws.root)
        for distill in modes:
            cfg = ws.cfg(*common, f"finetune.distill.enabled={str(distill).lower()}")
            name = f"{shape.name} {'distilled' if distill else 'gold labels'}"
            inits = [("pretrained", name)] + ([("random", f"{name}, random init")] if args.random_init else [])
            for init, label in inits:
                tag = f"bench-{shape.name}-{'distill' if distill else 'gold'}-{init}"
                clf, seconds, _ = S.fit(cfg, ws.root, init, tag)
                timings[f"finetune {label}"] = seconds
                clf.save(ws.root / "bench" / "quality" / tag)
                scored[label] = score(clf.predict_proba(test_x))
                by_shape.setdefault(shape.name, clf)
                students.append({"name": label, "shape": shape.name, "distill": distill, "init": init,
                                 "params": C.count_params(clf.net)})

    texts = list(test_x[:MAX_TEXTS])
    fns = {k: (lambda t, b, c=c: c.predict_proba(t, b)) for k, c in by_shape.items()}
    if teacher is not None:
        fns["teacher"] = lambda t, b: teacher.predict_proba(t, b)
    print(f"[{time.strftime('%H:%M:%S')}] timing {len(fns)} models on {len(texts)} test texts, batch "
          f"{BATCH_SIZE}, {args.rounds} interleaved rounds ...", flush=True)
    tps = throughput(fns, texts, BATCH_SIZE, args.rounds)
    report(ws, args, base, steps, scored, students, tps, teacher, len(texts), timings)


def report(ws, args, base, steps, scored, students, tps, teacher, n_timed, timings) -> None:
    t_acc = scored["teacher"]["accuracy"] if "teacher" in scored else None
    t_tps = tps.get("teacher")
    nb = scored["baseline.nbsvm"]["accuracy"]
    points = {s["name"]: (scored[s["name"]]["accuracy"], tps[s["shape"]]) for s in students}
    if teacher is not None:
        points["teacher"] = (t_acc, t_tps)
    best = on_frontier(points)
    fmt = lambda x, f="{:.4f}": "—" if x is None else f.format(x)  # noqa: E731
    rows = []
    for s in students:
        acc, speed = points[s["name"]]
        rows.append([s["shape"] + ("" if s["init"] == "pretrained" else " (random init)"),
                     f"{s['params'] / 1e6:.2f}", "on" if s["distill"] else "off", f"{acc:.4f}", f"{nb:.4f}",
                     fmt(t_acc), f"{speed:,.0f}", fmt(t_tps, "{:,.0f}"),
                     "—" if not t_tps else f"{speed / t_tps:.1f}×", "✓" if s["name"] in best else ""])
    if teacher is not None:
        rows.append([f"teacher ({Path(str(teacher.meta.get('init', 'models/teacher'))).name})",
                     f"{C.count_params(teacher.net) / 1e6:.2f}", "—", f"{t_acc:.4f}", f"{nb:.4f}",
                     f"{t_acc:.4f}", f"{t_tps:,.0f}", f"{t_tps:,.0f}", "1.0×", "✓" if "teacher" in best else ""])
    n_test = int(next(iter(scored.values()))["n"])
    ft = base.finetune
    out = _report.Report("quality")
    out.table(f"Student frontier ({n_test} test texts; pretraining {steps} steps per shape; fine-tuning "
              f"max {args.epochs or ft.max_epochs} epochs, lr {ft.lr:g}, distill alpha {ft.distill.alpha:g}, "
              f"T {ft.distill.temperature:g}, loss {ft.distill.loss}; speed: {n_timed} test texts, batch 64, "
              f"{args.rounds} rounds, torch threads {_lineage.torch_threads()})",
              ["shape", "params (M)", "distill", "test accuracy", "NB-LR accuracy", "teacher accuracy",
               "student texts/s", "teacher texts/s", "× teacher", "frontier"], rows)

    names = [s["name"] for s in students] + (["teacher"] if teacher is not None else []) + \
        ["baseline.tfidf_lr", "baseline.nbsvm", "baseline.majority"]
    pretty = {"baseline.tfidf_lr": "TF-IDF + LR", "baseline.nbsvm": "NB-LR (bigrams)",
              "baseline.majority": "majority class"}
    out.table("All models on the test split", ["model", "accuracy", "95% CI", "macro-F1"],
              [[pretty.get(k, k), f"{scored[k]['accuracy']:.4f}",
                f"{scored[k]['accuracy_ci_low']:.4f}–{scored[k]['accuracy_ci_high']:.4f}",
                f"{scored[k]['macro_f1']:.4f}"] for k in names])
    out.results = {"n_test": n_test, "pretrain_steps": steps, "rounds": args.rounds, "n_timed": n_timed,
                   "texts_per_s": tps, "frontier": sorted(best),
                   "students": [{**s, "accuracy": points[s["name"]][0], "texts_per_s": points[s["name"]][1]}
                                for s in students],
                   "scored": {k: {m: v for m, v in scored[k].items() if isinstance(v, (int, float))} for k in names}}

    tf = scored["baseline.tfidf_lr"]["accuracy"]
    print()
    for s in students:
        if s["init"] != "pretrained":
            continue
        acc, speed = points[s["name"]]
        line = (f"{s['name']}: {100 * (acc - tf):+.1f} points vs TF-IDF+LR (target > 0: "
                f"{'met' if acc > tf else 'NOT met'}), {100 * (acc - nb):+.1f} vs NB-LR")
        rand = scored.get(f"{s['name']}, random init")
        if rand is not None:
            gain = 100 * (acc - rand["accuracy"])
            line += f", pretraining gain {gain:+.1f} (target >= +3.0: {'met' if gain >= 3.0 else 'NOT met'})"
        if t_acc is not None:
            ratio = speed / t_tps
            q4 = 100 * (t_acc - acc) <= Q4_POINTS and ratio >= Q4_SPEED
            line += (f", {100 * (acc - t_acc):+.1f} vs the teacher at {ratio:.1f}× its texts/s "
                     f"(Q4, within {Q4_POINTS:g} points and >= {Q4_SPEED:g}×: {'met' if q4 else 'NOT met'})")
        print(line)
    print("\ntime (s): " + ", ".join(f"{k} {v:.0f}" for k, v in {**ws.stage_seconds, **timings}.items()))
    out.results["seconds"] = {**ws.stage_seconds, **timings}
    out.write(args.json)  # the lineage's threads: torch's, as set by --threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    W.add_workspace_args(ap, "tiny synthetic CSV project with a tiny BERT teacher and tiny shapes "
                         f"({SMOKE_SHAPES}): checks that everything runs, measures nothing")
    ap.add_argument("--shapes", help=f"comma-separated student shapes (default {DEFAULT_SHAPES})")
    ap.add_argument("--steps", type=int, help="pretraining steps per shape (default: params.yaml's "
                    "pretrain.max_steps)")
    ap.add_argument("--epochs", type=int, help="fine-tuning max epochs (default: params.yaml's)")
    ap.add_argument("--distill", choices=("on", "off", "both"), default="both",
                    help="students with distillation, without (gold train labels), or both (default)")
    ap.add_argument("--random-init", action="store_true",
                    help="also fine-tune each shape from random init (same budget): the pretraining gain")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    ap.add_argument("--pipeline", action="store_true",
                    help="the earlier benchmark: `encoderflow run` of the default recipe in a scratch project "
                         "(or --project's reports/metrics.json) and the model vs its baselines")
    args = ap.parse_args()
    S.main(pipeline if args.pipeline else frontier, args)


if __name__ == "__main__":
    main()
