"""Label efficiency: when does pretraining your own encoder pay? Test accuracy vs the share of train labels used.

    .venv/bin/python benchmarks/label_efficiency.py                      # sample; 5-100% of the labels, 3 seeds at 5/10%
    .venv/bin/python benchmarks/label_efficiency.py --project P          # reuse P's data (and teacher, tokenizer)
    .venv/bin/python benchmarks/label_efficiency.py --rows tfidf,nblr,random,pretrained --fractions 0.05,0.25,1
    .venv/bin/python benchmarks/label_efficiency.py --teacher full       # cheaper, LEAKS labels (see below)
    .venv/bin/python benchmarks/label_efficiency.py --smoke --threads 1  # tiny synthetic project, about a minute
    .venv/bin/python benchmarks/label_efficiency.py --project . --json reports/benchmarks/label_efficiency.json

For each fraction f of the train labels and each seed s, a cell folder is built from
the workspace's data/prepared (benchmarks/_students.py): train keeps the rows whose
hash u = sha1("s:<row id>") (row id = components.data.prepare.text_id of the text)
falls below f, so the subset is stable as data grows (an old row never changes its
u) and nested (5% of seed s is inside its 10%); the other train texts become
unlabeled text, as they would be for a user who labelled only f of them. With
--val subset (the default) the val split is cut the same way, because early
stopping, the checkpoint choice and the baselines' C/analyzer choice are uses of
labels too; --val full keeps every val label. The test split is always whole.
The seed picks the subset and every training seed (init, batches, augmentation).

Pretraining uses ALL the text (train + unlabeled, as the pretrain stage reads the
workspace's data/tokenized) and runs once per seed, whatever f: the encoder is the
pretrain stage's output, cached under <project>/.cache/encoderflow/bench/pretrained/
(quality.py shares that cache). Rows (--rows):
- tfidf, nblr: evaluate's TF-IDF+LR and NB-LR baselines fit on the cell's labels;
- random: the encoder architecture from random init, fine-tuned on the cell's gold labels;
- pretrained: the encoder pretrained with MLM alone (pretrain.vector_weight 0), fine-tuned on
  the cell's gold labels;
- pretrained_vec: the encoder pretrained with MLM plus the label-free vector term (general
  distillation from the teacher's BASE sentence vectors: pretrain.vector_weight of params.yaml,
  1 when that is 0), fine-tuned on the cell's gold labels;
- distilled: the encoder params.yaml pretrains (either of the two above) fine-tuned on the
  teacher's transfer set (finetune.distill, as the finetune stage does);
- teacher: the teacher on the test split.
All fine-tuning is finetune's fit_classifier with params.yaml's finetune section
(--epochs overrides max_epochs); the teacher is the teacher stage with its params.

The teacher (--teacher). honest (default): the teacher stage runs in every cell, so
the teacher is fine-tuned on the cell's labels only and labels that cell's transfer
set (the cell's train + unlabeled texts and their augmented copies). At 100% with the
first seed the workspace's own teacher is that same teacher and is reused. full
(cheaper, clearly marked in the output): the workspace's teacher, fine-tuned on ALL
train labels, is used in every cell; its transfer set keeps gold labels only on the
cell's train rows. That teacher has seen every label, so the distilled row and the
teacher row LEAK labels: an upper bound, not what a user with f of the labels gets.

Seeds: --seeds N runs seeds project.seed .. project.seed+N-1 at the fractions up to
--multi-seed-upto (default 0.10) and the first seed only above it. Cells show the
mean ± sd (sample sd) over seeds. Prints a markdown table (and per-seed numbers) and
writes the plot (--plot, default reports/benchmarks/label_efficiency.png of this checkout, outside
evaluate's DVC output folder reports/plots;
matplotlib, Agg backend).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/: its tokenize.py would shadow the stdlib module
from benchmarks import _common as C  # noqa: E402
from benchmarks import _report  # noqa: E402
from benchmarks import _shapes  # noqa: E402
from benchmarks import _students as S  # noqa: E402
from benchmarks import _workspace as W  # noqa: E402

ROWS = ("tfidf", "nblr", "random", "pretrained", "pretrained_vec", "distilled", "teacher")
NAMES = {"tfidf": "TF-IDF + LR", "nblr": "NB-LR (bigrams)", "random": "random init, gold labels",
         "pretrained": "own-pretrained (MLM), gold labels",
         "pretrained_vec": "own-pretrained (MLM + vector term), gold labels", "distilled": "own-pretrained, distilled",
         "teacher": "teacher"}
DEFAULT_FRACTIONS = "0.05,0.1,0.25,0.5,1.0"
SMOKE = {"fractions": "0.25,1.0", "seeds": 2, "multi_seed_upto": 0.25}
DEFAULT_PLOT = ROOT / "reports" / "benchmarks" / "label_efficiency.png"


def unit(ids: list[str], seed: int):
    """u in [0, 1) per row id: the first 8 bytes of sha1("seed:id"); a row is in the f subset when u < f.

    >>> [round(float(x), 3) for x in unit(["a", "b"], 0)]
    [0.274, 0.565]
    """
    import numpy as np

    return np.array([int.from_bytes(hashlib.sha1(f"{seed}:{i}".encode()).digest()[:8], "big") / 2.0 ** 64
                     for i in ids], dtype=np.float64)


def row_ids(table) -> list[str]:
    from components.data.prepare import text_id

    if "id" in table.column_names:
        return table.column("id").to_pylist()
    return [text_id(t) for t in table.column("text").to_pylist()]


# --------------------------------------------------------------------------- one cell


def make_cell(ws, cfg, frac: float, seed: int, val_subset: bool, pretrained: Path | None) -> tuple[Path, dict]:
    """A fine-tune-only project: the subset train, val (cut or whole), test, unlabeled + the rest of train,
    labels.json, the workspace's tokenizer, data/tokenized encoded with it, models/pretrained -> `pretrained`."""
    import datasets
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer

    from components.core.paths import Paths
    from components.data.split_encode import encode_splits

    base = ws.paths
    root = ws.root / "bench" / "label_efficiency" / f"f{frac:g}-s{seed}"
    shutil.rmtree(root, ignore_errors=True)
    paths = Paths.at(root)
    paths.prepared.mkdir(parents=True)
    train = pq.read_table(base.split("train"))
    keep = unit(row_ids(train), seed) < frac
    pq.write_table(train.filter(pa.array(keep)), paths.split("train"))
    unlabeled = pq.read_table(base.split("unlabeled"))
    rest = train.filter(pa.array(~keep)).select(unlabeled.column_names).cast(unlabeled.schema)
    pq.write_table(pa.concat_tables([unlabeled, rest]), paths.split("unlabeled"))
    val = pq.read_table(base.split("val"))
    if val_subset:
        val = val.filter(pa.array(unit(row_ids(val), seed) < frac))
    pq.write_table(val, paths.split("val"))
    shutil.copyfile(base.split("test"), paths.split("test"))
    shutil.copyfile(base.labels, paths.labels)
    labels_kept = np.asarray(train.filter(pa.array(keep)).column("label").to_pylist())
    n_classes = len(json.loads(base.labels.read_text())["labels"])
    missing = sorted(set(range(n_classes)) - set(labels_kept.tolist()))
    if missing:
        raise SystemExit(f"error: {frac:g} of the labels with seed {seed} leaves class id {missing[0]} without "
                         f"a train row ({len(labels_kept)} rows); use larger --fractions")

    paths.tokenizer_dir.parent.mkdir(parents=True)
    paths.tokenizer_dir.symlink_to(base.tokenizer_dir.resolve())
    cache = root / ".tokenize-cache"
    dd = encode_splits(Tokenizer.from_file(str(base.tokenizer)), paths, cfg.tokenize.batch_size, cache_dir=cache)
    datasets.disable_progress_bars()  # encode_splits restores them
    dd.save_to_disk(str(paths.tokenized), num_shards={k: 1 for k, d in dd.items() if len(d) == 0})
    del dd
    shutil.rmtree(cache, ignore_errors=True)
    if pretrained is not None:
        paths.pretrained.symlink_to(pretrained)
    return root, {"train_labels": int(keep.sum()), "val_labels": val.num_rows}


def full_teacher_transfer(ws, root: Path, frac: float, seed: int) -> None:
    """--teacher full: the workspace's teacher (all labels) and its transfer set, gold labels kept
    only on this cell's train rows (the other train rows become unlabeled rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.core.paths import Paths
    from components.data.transfer_write import schema

    paths, base = Paths.at(root), ws.paths
    paths.teacher_model.symlink_to(base.teacher_model.resolve())
    table = pq.read_table(base.teacher_transfer)
    texts, sources = table.column("text").to_pylist(), table.column("source").to_pylist()
    kept = set(pq.read_table(paths.split("train"), columns=["text"]).column("text").to_pylist())
    moved = [s == "train" and t not in kept for t, s in zip(texts, sources)]
    source = [("unlabeled" if m else s) for m, s in zip(moved, sources)]
    label = [None if m else v for m, v in zip(moved, table.column("label").to_pylist())]
    vector = (table.column("vector") if "vector" in table.column_names
              else pa.nulls(len(texts), pa.list_(pa.float32())))  # a transfer set from before vectors
    out = pa.table({"text": texts, "probabilities": table.column("probabilities"), "source": source,
                    "label": label, "vector": vector}, schema=schema())
    paths.teacher_transfer.parent.mkdir(parents=True)
    pq.write_table(out, paths.teacher_transfer)


def run_cell(ws, args, rows: set[str], frac: float, seed: int, pretrained: dict[str, Path],
             test: tuple, teacher_cache: dict) -> dict:
    """{row: test accuracy} + the cell's label counts and seconds."""
    from components.core.paths import Paths
    from components.data.labels import read_labels
    from components.evaluation.baselines import sklearn_baselines
    from components.model.classifier import TextClassifier

    common = [f"project.seed={seed}", f"pretrain.max_steps={args.steps_}",
              *([f"finetune.max_epochs={args.epochs}"] if args.epochs else [])]
    cfg_gold = ws.cfg(*common, "finetune.distill.enabled=false")
    t0 = time.perf_counter()
    first = next(iter(pretrained.values()), None)
    root, out = make_cell(ws, cfg_gold, frac, seed, args.val == "subset", first)
    paths = Paths.at(root)
    labels = read_labels(paths.labels)
    test_x, test_y = test
    acc = {}
    if rows & {"tfidf", "nblr"}:
        tr, va = S.split(paths, "train", len(labels)), S.split(paths, "val", len(labels))
        probs = sklearn_baselines(*tr, *va, test_x, len(labels), seed)
        acc.update({"tfidf": S.accuracy(probs["tfidf_lr"], test_y), "nblr": S.accuracy(probs["nbsvm"], test_y)})
    if rows & {"teacher", "distilled"}:
        if args.teacher == "full":
            full_teacher_transfer(ws, root, frac, seed)
        elif frac >= 1 and seed == ws.cfg().project.seed and reusable_teacher(ws, args):
            paths.teacher_model.symlink_to(ws.paths.teacher_model.resolve())
            paths.teacher_transfer.parent.symlink_to(ws.paths.teacher_transfer.parent.resolve())
            print(f"teacher f={frac:g} seed {seed}: the workspace's teacher (same labels, same seed)", flush=True)
        else:
            out["teacher_s"] = W.run_stage("teacher", ws.cfg(*common), root)
        if "teacher" in rows:
            key = str(paths.teacher_model.resolve())
            if key not in teacher_cache:
                teacher_cache[key] = S.accuracy(TextClassifier.from_folder(paths.teacher_model)
                                                .predict_proba(test_x), test_y)
            acc["teacher"] = teacher_cache[key]
    fits = [("random", "random", cfg_gold, None), ("pretrained", "pretrained", cfg_gold, "mlm"),
            ("pretrained_vec", "pretrained", cfg_gold, "vec"),
            ("distilled", "pretrained", ws.cfg(*common, "finetune.distill.enabled=true"), "default")]
    for row, init, cfg, encoder in fits:
        if row in rows:
            if encoder is not None:  # models/pretrained -> that row's cached encoder
                paths.pretrained.unlink()
                paths.pretrained.symlink_to(pretrained[encoder])
            clf, _, _ = S.fit(cfg, root, init, f"bench-le-{row}")
            acc[row] = S.accuracy(clf.predict_proba(test_x), test_y)
    out["seconds"] = time.perf_counter() - t0
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"[{time.strftime('%H:%M:%S')}] cell {frac:g} seed {seed} ({out['train_labels']} train labels, "
          f"{out['val_labels']} val): " + ", ".join(f"{r} {a:.4f}" for r, a in acc.items())
          + f" ({out['seconds']:.0f} s)", flush=True)
    return {**out, "accuracy": acc}


def reusable_teacher(ws, args) -> bool:
    """The workspace's teacher is the honest 100% teacher of the first seed when it exists and
    no --set changed the teacher's params or the seed."""
    return ((ws.paths.teacher_model / "config.json").is_file() and ws.paths.teacher_transfer.is_file()
            and not any(o.startswith(("teacher.", "project.seed")) for o in args.overrides))


# --------------------------------------------------------------------------- report


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def cell_text(values: list[float], scale: float = 1.0, sign: bool = False) -> str:
    """'mean ± sd' (sd over seeds; the mean alone for one seed); points with sign=True.

    >>> cell_text([0.80, 0.82]), cell_text([0.01, -0.03], 100.0, sign=True), cell_text([0.5])
    ('0.8100 ± 0.0141', '-1.0 ± 2.8', '0.5000')
    """
    if not values:
        return "—"
    m, sd = mean_sd([v * scale for v in values])
    mean = f"{m:+.1f}" if sign else f"{m:.4f}"
    return mean + ("" if sd is None else (f" ± {sd:.1f}" if sign else f" ± {sd:.4f}"))


def report(args, rows: list[str], fractions: list[float], results: dict, leaky: bool) -> _report.Report:
    """results[(frac, seed)] = run_cell's dict; prints the tables and returns them for --json."""
    seeds_at = {f: [s for (g, s) in results if g == f] for f in fractions}
    n_labels = {f: statistics.fmean(results[(f, s)]["train_labels"] for s in seeds_at[f]) for f in fractions}
    head = ["row"] + [f"{f:.0%} (≈{n_labels[f]:,.0f} labels, {len(seeds_at[f])} seed"
                      f"{'s' if len(seeds_at[f]) > 1 else ''})" for f in fractions]

    def values(row: str, f: float) -> list[float]:
        return [results[(f, s)]["accuracy"][row] for s in seeds_at[f] if row in results[(f, s)]["accuracy"]]

    def name(row: str) -> str:
        return NAMES[row] + (" (teacher saw ALL labels: leaks)" if leaky and row in ("teacher", "distilled") else "")

    body = [[name(r)] + [cell_text(values(r, f)) for f in fractions] for r in rows]
    pairs = [("pretrained", "random"), ("pretrained_vec", "random"), ("pretrained_vec", "pretrained"),
             ("pretrained", "nblr"), ("distilled", "nblr"), ("distilled", "pretrained")]
    for a, b in pairs:
        if a in rows and b in rows:
            diffs = {f: [results[(f, s)]["accuracy"][a] - results[(f, s)]["accuracy"][b] for s in seeds_at[f]]
                     for f in fractions}
            body.append([f"Δ {NAMES[a]} − {NAMES[b]} (points)"] +
                        [cell_text(diffs[f], 100.0, sign=True) for f in fractions])
    out = _report.Report("label_efficiency")
    out.table(f"Label efficiency: test accuracy (mean ± sd over seeds; teacher: {args.teacher}"
              f"{' — LEAKS labels' if leaky else ''}; val labels: {args.val})", head, body)
    per = [[f"{f:g}", str(s), str(results[(f, s)]["train_labels"]), str(results[(f, s)]["val_labels"])]
           + [f"{results[(f, s)]['accuracy'][r]:.4f}" if r in results[(f, s)]["accuracy"] else "—" for r in rows]
           for (f, s) in sorted(results)]
    out.table("per seed", ["fraction", "seed", "train labels", "val labels", *rows], per)
    out.results = {"teacher": args.teacher, "val": args.val, "leaky": leaky, "rows": rows,
                   "cells": [{"fraction": f, "seed": s, **results[(f, s)]} for (f, s) in sorted(results)]}
    if "pretrained" in rows:
        others = [r for r in ("tfidf", "nblr", "random") if r in rows]
        pays = [f for f in fractions if others and statistics.fmean(values("pretrained", f)) >
                max(statistics.fmean(values(r, f)) for r in others)]
        print(f"\nown-pretrained (gold labels) beats {', '.join(NAMES[r] for r in others) or 'nothing measured'} "
              f"on the mean at: {', '.join(f'{f:.0%}' for f in pays) or 'no fraction'}")
    return out


def plot(path: Path, rows: list[str], fractions: list[float], results: dict, leaky: bool, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ticks = {}
    for row in rows:
        xs, ys, es = [], [], []
        for f in fractions:
            cells = [results[(g, s)] for (g, s) in results if g == f and row in results[(g, s)]["accuracy"]]
            if not cells:
                continue
            m, sd = mean_sd([c["accuracy"][row] for c in cells])
            xs.append(statistics.fmean(c["train_labels"] for c in cells))
            ticks[f] = xs[-1]
            ys.append(m)
            es.append(sd or 0.0)
        label = NAMES[row] + (" (leaks labels)" if leaky and row in ("teacher", "distilled") else "")
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label,
                    linestyle="--" if row in ("tfidf", "nblr", "teacher") else "-")
    ax.set_xscale("log")
    ax.set_xticks(list(ticks.values()), [f"{n:,.0f}\n({f:.0%})" for f, n in ticks.items()])
    ax.minorticks_off()
    ax.set_xlabel("labelled train texts (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot: {path}")


# --------------------------------------------------------------------------- main


def run(args) -> None:
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad or not rows:
        raise SystemExit(f"error: --rows: expected some of {', '.join(ROWS)}, got {args.rows!r}")
    for key, value in SMOKE.items():
        if getattr(args, key) is None:
            setattr(args, key, value if args.smoke else {"fractions": DEFAULT_FRACTIONS, "seeds": 3,
                                                          "multi_seed_upto": 0.10}[key])
    fractions = sorted({float(f) for f in args.fractions.split(",")})
    if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
        raise SystemExit(f"error: --fractions: expected values in (0, 1], got {args.fractions!r}")
    if args.seeds < 1:
        raise SystemExit(f"error: --seeds: expected at least 1, got {args.seeds}")
    plot_path = args.plot or (Path(tempfile.gettempdir()) / "encoderflow-label-efficiency-smoke.png"
                              if args.smoke else DEFAULT_PLOT)

    C.set_threads(args.threads)
    import datasets

    datasets.disable_progress_bars()
    C.header("label efficiency: test accuracy vs the share of train labels")
    needs_teacher = bool({"teacher", "distilled"} & set(rows))
    leaky = args.teacher == "full" and needs_teacher
    if leaky:
        print("NOTE: --teacher full: the teacher was fine-tuned on ALL train labels; the distilled and teacher "
              "rows leak labels (an upper bound)\n", flush=True)
    ws = W.open_workspace(args, need_teacher=leaky, run_teacher=leaky)
    try:
        base = ws.cfg()
        args.steps_ = args.steps or base.pretrain.max_steps
        first = base.project.seed
        seeds = [first + i for i in range(args.seeds)]
        from components.data.labels import read_labels

        test = S.split(ws.paths, "test", len(read_labels(ws.paths.labels)))
        results, teacher_cache = {}, {}
        for seed in seeds:
            todo = [f for f in fractions if seed == first or f <= args.multi_seed_upto + 1e-12]
            if not todo:
                continue
            pre = {}
            common = (f"project.seed={seed}", f"pretrain.max_steps={args.steps_}", "finetune.distill.enabled=false")
            vec = base.pretrain.vector_weight or 1.0
            if {"pretrained"} & set(rows) or ("distilled" in rows and not base.pretrain.vector_weight):
                pre["mlm"] = S.pretrained(ws, ws.cfg(*common, "pretrain.vector_weight=0"))
            if {"pretrained_vec"} & set(rows) or ("distilled" in rows and base.pretrain.vector_weight):
                pre["vec"] = S.pretrained(ws, ws.cfg(*common, f"pretrain.vector_weight={vec}"))
            if "distilled" in rows:
                pre["default"] = pre["vec" if base.pretrain.vector_weight else "mlm"]
            for f in todo:
                results[(f, seed)] = run_cell(ws, args, set(rows), f, seed, pre, test, teacher_cache)
        out = report(args, rows, fractions, results, leaky)
        ft = base.finetune
        title = (f"label efficiency: {shape_text(base)}, {args.steps_} pretraining steps, fine-tune max "
                 f"{args.epochs or ft.max_epochs} epochs; teacher {args.teacher}; val {args.val}")
        plot(plot_path, rows, fractions, results, leaky, title)
        spent = {**ws.stage_seconds, "cells": sum(r["seconds"] for r in results.values())}
        print("\ntime (s): " + ", ".join(f"{k} {v:.0f}" for k, v in spent.items()))
        out.results.update(plot=_plot_name(plot_path), seconds=spent)
        out.write(args.json)
    finally:
        ws.close(args.keep)


def _plot_name(path: Path) -> str:
    """The plot as the docs link it: relative to this checkout when inside it."""
    path = path.resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def shape_text(cfg) -> str:
    return _shapes.shape_of(cfg).name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    W.add_workspace_args(ap, f"tiny synthetic CSV project with a tiny BERT teacher; fractions "
                         f"{SMOKE['fractions']}, {SMOKE['seeds']} seeds, the project's tiny model and steps: "
                         "checks that everything runs (about a minute), measures nothing")
    ap.add_argument("--fractions", help=f"comma-separated shares of the train labels (default {DEFAULT_FRACTIONS})")
    ap.add_argument("--seeds", type=int, help="seeds at the small fractions (default 3)")
    ap.add_argument("--multi-seed-upto", type=float, help="fractions up to this run every seed, larger ones "
                    "the first seed only (default 0.10)")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"which rows (default all: {','.join(ROWS)})")
    ap.add_argument("--teacher", choices=("honest", "full"), default="honest",
                    help="honest (default): the teacher is fine-tuned on each cell's labels only; full: the "
                         "workspace's teacher fine-tuned on ALL labels (cheaper, LEAKS labels)")
    ap.add_argument("--val", choices=("subset", "full"), default="subset",
                    help="val labels: the same share as train (default) or all of them")
    ap.add_argument("--steps", type=int, help="pretraining steps (default: params.yaml's pretrain.max_steps)")
    ap.add_argument("--epochs", type=int, help="fine-tuning max epochs (default: params.yaml's)")
    ap.add_argument("--plot", type=Path, help=f"plot file (default {DEFAULT_PLOT.relative_to(ROOT)} of this "
                    "checkout; with --smoke a file in the temp folder)")
    args = ap.parse_args()
    S.main(run, args)


if __name__ == "__main__":
    main()
