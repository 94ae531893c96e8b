"""Scaling curve: real tokens/s of the default pretraining step by batch size, sequence length and threads.

    .venv/bin/python benchmarks/scaling.py                         # 8/32/64 x 64/128/256 x 1/2 threads
    .venv/bin/python benchmarks/scaling.py --batch-sizes 8,32 --seq-lens 64 --windows 2 --steps 2   # smoke
    .venv/bin/python benchmarks/scaling.py --precision 32 --thread-counts 1,2,4

The step is the pretrain stage's own (LitMLM.mlm_loss + its AdamW/LambdaLR + grad clip,
under the stage's precision: params' pretrain.precision resolved as the stage does, "auto"
-> bf16-mixed on CPUs with native bf16), on packed + masked batches of the project's real
tokens, re-packed for each sequence length. Sequence lengths above model.max_length
build the model with a longer max_length (rotary / sinusoidal tables; same weights
count). For each (batch, seq) the thread counts are timed in alternating windows
(torch.set_num_threads), so CPU noise hits them alike; the median window is reported.
Use it to size a run: steps/hour = 3.6e6 / (ms/step), tokens/hour = 3600 * tok/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # benchmarks/tokenize.py shadows stdlib

import statistics  # noqa: E402

from benchmarks import _mlm_step as M  # noqa: E402
from benchmarks import _report  # noqa: E402


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    ap = M.parser(__doc__)
    ap.add_argument("--batch-sizes", type=ints, default=[8, 32, 64], help="comma list (default 8,32,64)")
    ap.add_argument("--seq-lens", type=ints, default=[64, 128, 256], help="comma list (default 64,128,256)")
    ap.add_argument("--thread-counts", type=ints, default=[1, 2], help="comma list (default 1,2)")
    ap.add_argument("--precision", choices=["auto", "32", "bf16-mixed"], default=None,
                    help="default: pretrain.precision, resolved as the stage does")
    ap.add_argument("--windows", type=int, default=3, help="timed windows per cell (median reported)")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per window")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per cell and thread count")
    args = ap.parse_args()

    import torch

    from components.model.precision import resolve_precision

    cfg, paths = M.start(args, "pretraining throughput by batch size, sequence length and threads")
    p, m = cfg.pretrain, cfg.model
    precision = resolve_precision(args.precision or p.precision, p.accelerator)
    print(f"model: {m.family} layers={m.num_layers} hidden={m.hidden_size} heads={m.num_heads} ffn={m.ffn_size} "
          f"positions={m.positions} | precision {precision} | mask rate {p.mask_rate}")
    print(f"timing: {args.windows} windows x {args.steps} steps per cell, thread counts alternating\n", flush=True)

    per_cell = args.warmup * len(args.thread_counts) + args.windows * args.steps * len(args.thread_counts)
    results = {}  # (threads, batch, seq) -> (tok/s, ms/step)
    for seq in args.seq_lens:
        info, train, _ = M.load_blocks(cfg, paths, seq)
        for bs in args.batch_sizes:
            batches = M.make_batches(info, train, bs, per_cell, args.seed, p.mask_rate)
            s = M.build_ours(cfg, info, seq, precision, args.seed, per_cell)
            for th in args.thread_counts:
                torch.set_num_threads(th)
                M.warm_up(s, batches, args.warmup)
            wins = {th: [] for th in args.thread_counts}
            for _ in range(args.windows):
                for th in args.thread_counts:
                    torch.set_num_threads(th)
                    wins[th].append(M.window(s, batches, args.steps))
            for th, ws in wins.items():
                ms = statistics.median(w["seconds"] / args.steps for w in ws) * 1e3
                results[(th, bs, seq)] = (M.median_rate(ws), ms)
            print(f"  batch {bs:3d} x seq {seq:3d}: " + "  ".join(
                f"{th} thread(s) {results[(th, bs, seq)][0]:,.0f} tok/s" for th in args.thread_counts), flush=True)

    out = _report.Report("scaling")
    head = ["threads", "batch"] + [f"seq {s}" for s in args.seq_lens]
    rows = [[th, bs] + [f"{results[(th, bs, s)][0]:,.0f} ({results[(th, bs, s)][1]:.0f} ms)" for s in args.seq_lens]
            for th in args.thread_counts for bs in args.batch_sizes]
    out.table(f"real tokens/s (ms per optimizer step), {precision}, median of {args.windows} windows", head, rows)
    out.results = {"precision": precision, "windows": args.windows, "steps": args.steps,
                   "cells": [{"threads": th, "batch_size": bs, "seq_len": seq, "tokens_per_s": tps, "ms_per_step": ms}
                             for (th, bs, seq), (tps, ms) in sorted(results.items())]}
    out.write(args.json, threads=max(args.thread_counts))


if __name__ == "__main__":
    main()
