"""Levers for a student: test accuracy of the finetune stage's recipe with one `--set` change at a time.

    .venv/bin/python benchmarks/levers.py --project .                        # the static student's default levers
    .venv/bin/python benchmarks/levers.py --project . --student transformer  # the transformer student's
    .venv/bin/python benchmarks/levers.py --project . --lever "8 epochs=finetune.static.max_epochs=8"
    .venv/bin/python benchmarks/levers.py --smoke --threads 1                # tiny synthetic project, ~1 min
    .venv/bin/python benchmarks/levers.py --project . --json reports/benchmarks/levers.json   # for the docs

One workspace (benchmarks/_workspace.py): with --project PATH the data/prepared, data/teacher,
models/teacher and models/model2vec of PATH, read only (the transformer student also reads
PATH's models/pretrained: the levers here change fine-tuning, not pretraining); without it a
scratch project of the built-in sample where ingest, validate, teacher and tokenize run once.

Each lever is a name and one or more KEY=VALUE overrides on top of the project's params.yaml
(and --set). The anchor row is the recipe with no lever. Every row trains the student the way
the finetune stage does (`fit_classifier`; the static student through finetune's own
`static_params`), with the same seed, and is scored on the whole test split with evaluate's
metric code (accuracy with its bootstrap CI, macro-F1) and on the val split. Early stopping
(finetune.patience) applies as in the stage, so a row may run fewer epochs than it allows. One seed per row:
a difference inside the anchor's CI is noise. A lever that fails (a bad value) is a row that
says so; the others still run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/: its tokenize.py would shadow the stdlib module
from benchmarks import _common as C  # noqa: E402
from benchmarks import _report  # noqa: E402
from benchmarks import _students as S  # noqa: E402
from benchmarks import _workspace as W  # noqa: E402

ANCHOR = "the default recipe"
# (name, overrides): the levers the issue names that change fine-tuning only, one at a time.
LEVERS = {
    "static": [
        ("longer distillation: 8 epochs", ["finetune.static.max_epochs=8"]),
        ("no vector term", ["finetune.distill.vector_weight=0"]),
        ("no distillation: gold labels only", ["finetune.distill.enabled=false"]),
    ],
    "transformer": [
        ("longer distillation: 8 epochs", ["finetune.max_epochs=8"]),
        ("no vector term", ["finetune.distill.vector_weight=0"]),
        ("no distillation: gold labels only", ["finetune.distill.enabled=false"]),
    ],
}
SMOKE_LEVERS = {"static": [("2 epochs", ["finetune.static.max_epochs=2"])],
                "transformer": [("1 epoch", ["finetune.max_epochs=1"])]}


def parse_lever(text: str) -> tuple[str, list[str]]:
    """ "NAME=KEY=VALUE[,KEY=VALUE...]" -> (NAME, [KEY=VALUE, ...]).

    >>> parse_lever("8 epochs=finetune.static.max_epochs=8,finetune.static.lr=0.001")
    ('8 epochs', ['finetune.static.max_epochs=8', 'finetune.static.lr=0.001'])
    """
    name, sep, rest = text.partition("=")
    sets = [s.strip() for s in rest.split(",") if s.strip()]
    if not sep or not name.strip() or not sets or any("=" not in s for s in sets):
        raise SystemExit(f"error: --lever {text!r}: expected NAME=KEY=VALUE[,KEY=VALUE...]")
    return name.strip(), sets


def student_cfg(ws, student: str, sets: list[str]):
    """(cfg, init) the finetune stage would train this student with, under `sets`."""
    cfg = ws.cfg(*sets)
    if student == "static":
        from components.stages.finetune import static_params

        return static_params(cfg), "model2vec"
    return cfg, cfg.finetune.init


def link_pretrained(ws, student: str) -> None:
    """The transformer student starts from the project's models/pretrained (read only)."""
    if student != "transformer" or (ws.root / "models" / "pretrained").exists():
        return
    src = ws.source / "models" / "pretrained"
    if ws.source != ws.root and (src / "config.json").is_file():
        (ws.root / "models" / "pretrained").symlink_to(src)
    else:
        S.pretrained(ws, ws.cfg(), ws.root)


def measure(args) -> None:
    from components.core.errors import EncoderflowError
    from components.data.labels import read_labels
    from components.evaluation.metrics import classification_metrics

    levers = [(ANCHOR, [])] + ([parse_lever(t) for t in args.lever] if args.lever else
                               (SMOKE_LEVERS if args.smoke else LEVERS)[args.student])
    C.set_threads(args.threads)
    C.header(f"levers for the {args.student} student")
    ws = W.open_workspace(args, need_teacher=True)
    try:
        base = ws.cfg()
        paths = ws.paths
        labels = read_labels(paths.labels)
        _, (val_x, val_y), (test_x, test_y) = (S.split(paths, s, len(labels)) for s in ("train", "val", "test"))
        link_pretrained(ws, args.student)
        rows = []
        for i, (name, sets) in enumerate(levers):
            row = {"lever": name, "set": sets}
            try:
                cfg, init = student_cfg(ws, args.student, sets)
                clf, seconds, epochs = S.fit(cfg, ws.root, init, f"lever-{i}")
            except (EncoderflowError, ValueError) as e:
                row["error"] = str(e).splitlines()[0]
                print(f"{name}: failed: {row['error']}", flush=True)
                rows.append(row)
                continue
            m = classification_metrics(clf.predict_proba(test_x), test_y, labels, ece_bins=base.evaluate.ece_bins,
                                       bootstrap_samples=base.evaluate.bootstrap_samples, seed=base.project.seed)
            row.update(accuracy=m["accuracy"], accuracy_ci=[m["accuracy_ci_low"], m["accuracy_ci_high"]],
                       macro_f1=m["macro_f1"], val_accuracy=S.accuracy(clf.predict_proba(val_x), val_y),
                       epochs=epochs, train_s=round(seconds, 1))
            print(f"[{time.strftime('%H:%M:%S')}] {name}: test {row['accuracy']:.4f} "
                  f"val {row['val_accuracy']:.4f}", flush=True)
            rows.append(row)
        report(args, base, rows, len(test_y))
    finally:
        ws.close(args.keep)


def report(args, base, rows: list[dict], n_test: int) -> None:
    anchor = rows[0].get("accuracy")
    out = _report.Report("levers")
    out.results.update(student=args.student, seed=base.project.seed, n_test=n_test, levers=rows)
    table = []
    for r in rows:
        how = ", ".join(f"`--set {s}`" for s in r["set"]) or "params.yaml as it is"
        if "error" in r:
            table.append([r["lever"], how, f"failed: {r['error']}", "", "", "", ""])
            continue
        lo, hi = r["accuracy_ci"]
        delta = "anchor" if r is rows[0] else ("" if anchor is None else f"{100 * (r['accuracy'] - anchor):+.1f}")
        table.append([r["lever"], how, f"{r['accuracy']:.3f} ({lo:.3f}–{hi:.3f})", f"{r['val_accuracy']:.3f}",
                      delta, r["epochs"], f"{r['train_s']:.0f}"])
    columns = ["lever", "how", "test accuracy (CI)", "val accuracy", "points vs anchor", "epochs run", "train s"]
    out.table(f"{args.student} student: test accuracy ({n_test} texts, 95% bootstrap CI), one seed per row",
              columns, table)
    out.write(args.json)  # the lineage's threads: torch's, as set by --threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    W.add_workspace_args(ap, "tiny synthetic CSV project with a tiny BERT teacher and one tiny lever: "
                         "checks that everything runs, measures nothing")
    ap.add_argument("--student", choices=sorted(LEVERS), default="static",
                    help="which student of the finetune stage (default static)")
    ap.add_argument("--lever", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]",
                    help="a lever to try instead of the default list (repeatable); the anchor always runs")
    args = ap.parse_args()
    S.main(measure, args)


if __name__ == "__main__":
    main()
