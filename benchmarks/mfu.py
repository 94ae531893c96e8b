"""Model FLOP utilisation of the default pretraining step, against a large matmul measured in the same run.

    .venv/bin/python benchmarks/mfu.py                                 # fp32 and bf16 (~3 min, 2 cores)
    .venv/bin/python benchmarks/mfu.py --windows 2 --steps 2 --profile-steps 1   # smoke run

FLOPs of one training step (forward + backward = 3 x forward, 2 FLOPs per multiply-add),
counted from the config, per micro-batch of B sequences x T positions with M masked. The
MLM loss reads only the M masked positions, so the step computes the last block's
queries, out projection, FFN and the head there only (keys / values at all positions):

    step FLOPs = 6 * N_all * B*T                   # weights every position goes through
               + 6 * N_masked * M                  # weights only masked positions go through
               + 12 * d * T * ((L-1) * B*T + M)    # attention q.k and p.v (last block: M queries)
    N_all    = (L-1) * (4 d^2 + 2 d f) + 2 d^2     # blocks 1..L-1 whole; last block's K, V
    N_masked = 2 d^2 + 2 d f + d^2 + V d           # last block's Q, out proj, FFN; head dense
                                                   # + (tied) vocab projection
    (N_all + N_masked = L (4 d^2 + 2 d f) + d^2 + V d: every matrix weight counted once)

N counts matrix weights only: the token embedding is a lookup (0 FLOPs) and is counted
once, as the vocab projection, for the M projected positions only; biases and LayerNorm
(< 0.1%) are left out. Padding positions are counted in B*T (packing leaves almost none);
the last block's padding of ragged per-row query lists is NOT counted (not useful work).

Peak: FLOP/s of an n x n @ n x n matmul (default 2048) in the step's compute dtype (fp32,
or bf16 for bf16-mixed), timed in windows interleaved with the training windows, so both
see the same CPU. MFU = achieved step FLOP/s / that peak (target >= 50%). A torch.profiler
pass then splits the step time by kind (GEMM, attention, softmax + loss, casts/copies,
elementwise, optimizer) and gives the GEMMs' own FLOP/s: that is where the gap is.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # benchmarks/tokenize.py shadows stdlib

import statistics  # noqa: E402
import time  # noqa: E402

from benchmarks import _mlm_step as M  # noqa: E402
from benchmarks import _report  # noqa: E402

TARGET = 0.5
KINDS = [  # (kind, substrings of aten op names), first match wins
    ("GEMM (mm/addmm/bmm)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("attention kernel (SDPA)", ("scaled_dot_product",)),
    ("softmax + cross-entropy", ("softmax", "nll_loss")),
    ("dtype casts / copies", ("aten::copy_", "aten::to", "aten::_to_copy", "aten::clone", "aten::contiguous",
                              "aten::cat", "aten::flip", "aten::index", "aten::fill_", "aten::zero_")),
    ("GELU / LayerNorm", ("gelu", "layer_norm")),
    ("optimizer + clip (AdamW, norms)", ("addcdiv", "addcmul", "lerp", "sqrt", "norm", "_foreach", "clamp")),
]


def step_flops(cfg, info, batch: dict) -> dict:
    """The formula of the docstring for one micro-batch; returns each term."""
    m = cfg.model
    B, T = batch["input_ids"].shape
    M = int((batch["labels"] != -100).sum())
    L, d, f, V = m.num_layers, m.hidden_size, m.ffn_size, info["vocab_size"]
    n_all = (L - 1) * (4 * d * d + 2 * d * f) + 2 * d * d
    n_masked = 2 * d * d + 2 * d * f + d * d + V * d
    terms = {"all": 6 * n_all * B * T, "masked": 6 * n_masked * M,
             "attention": 12 * d * T * ((L - 1) * B * T + M)}
    return {**terms, "total": sum(terms.values()), "N_all": n_all, "N_masked": n_masked, "M": M, "BT": B * T}


def matmul_window(n: int, dtype, reps: int) -> float:
    """FLOP/s of `reps` n x n matmuls."""
    import torch

    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def breakdown(stepper, batches, steps: int) -> list[tuple[str, float]]:
    """Self CPU ms per step by kind, from torch.profiler over `steps` steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches[:steps]:
            stepper(b)
    totals: dict[str, float] = {}
    for ev in prof.key_averages():
        if not ev.key.startswith("aten::"):
            continue
        kind = next((k for k, subs in KINDS if any(s in ev.key for s in subs)), "other elementwise / misc")
        totals[kind] = totals.get(kind, 0.0) + ev.self_cpu_time_total / 1e3 / steps
    return sorted(totals.items(), key=lambda kv: -kv[1])


def main() -> None:
    ap = M.parser(__doc__)
    ap.add_argument("--precision", choices=["32", "bf16-mixed", "both"], default="both")
    ap.add_argument("--windows", type=int, default=5, help="timed windows (median reported)")
    ap.add_argument("--steps", type=int, default=5, help="training steps per window")
    ap.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    ap.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n peak matmul")
    ap.add_argument("--matmul-reps", type=int, default=5, help="matmuls per peak window")
    ap.add_argument("--profile-steps", type=int, default=3, help="steps under torch.profiler (0: skip)")
    args = ap.parse_args()

    import torch

    cfg, paths = M.start(args, "MFU of the default pretraining step")
    p = cfg.pretrain
    info, train, _ = M.load_blocks(cfg, paths, p.seq_len)
    total = args.warmup + args.windows * args.steps + args.profile_steps
    batches = M.make_batches(info, train, p.batch_size, total, args.seed, p.mask_rate)
    fl = [step_flops(cfg, info, b) for b in batches]
    f0 = fl[0]
    m = cfg.model
    print(f"config: L={m.num_layers} d={m.hidden_size} f={m.ffn_size} V={info['vocab_size']} "
          f"B={p.batch_size} T={p.seq_len} mask rate {p.mask_rate}")
    print("FLOPs/step = 6*N_all*B*T + 6*N_masked*M + 12*d*T*((L-1)*B*T + M) with "
          f"N_all = (L-1)(4d^2+2df)+2d^2 = {f0['N_all']:,}, N_masked = 3d^2+2df+Vd = {f0['N_masked']:,}, "
          f"B*T = {f0['BT']:,}, M (masked, first batch) = {f0['M']:,}")
    print(f"  = {f0['all'] / 1e9:.2f} (all positions) + {f0['masked'] / 1e9:.2f} (masked positions: last block "
          f"+ MLM head) + {f0['attention'] / 1e9:.2f} (attention) = {f0['total'] / 1e9:.2f} GFLOP (first batch)\n",
          flush=True)

    precisions = ["32", "bf16-mixed"] if args.precision == "both" else [args.precision]
    out = _report.Report("mfu")
    out.results = {"gflop_per_step_first_batch": f0["total"] / 1e9, "matmul_size": args.matmul_size,
                   "target_mfu": TARGET, "precisions": []}
    rows, gaps = [], {}
    for prec in precisions:
        dtype = torch.bfloat16 if prec == "bf16-mixed" else torch.float32
        s = M.build_ours(cfg, info, p.seq_len, prec, args.seed, total)
        M.warm_up(s, batches, args.warmup)
        achieved, peaks = [], []
        for w in range(args.windows):
            i0 = s.next_batch
            win = M.window(s, batches, args.steps)
            achieved.append(sum(f["total"] for f in fl[i0:i0 + args.steps]) / win["seconds"])
            peaks.append(matmul_window(args.matmul_size, dtype, args.matmul_reps))
            print(f"  [{prec}] window {w + 1}/{args.windows}: step {achieved[-1] / 1e9:.1f} GFLOP/s, "
                  f"{args.matmul_size}^3 matmul {peaks[-1] / 1e9:.1f} GFLOP/s", flush=True)
        a, pk = statistics.median(achieved), statistics.median(peaks)
        out.results["precisions"].append({"precision": prec, "step_flops_per_s": a, "peak_flops_per_s": pk,
                                          "mfu": a / pk})
        rows.append([prec, f"{a / 1e9:.1f}", f"{pk / 1e9:.1f} (max {max(peaks) / 1e9:.1f})", f"{a / pk:.1%}",
                     f"{statistics.median(x / y for x, y in zip(achieved, peaks)):.1%}",
                     "met" if a / pk >= TARGET else "NOT met"])
        if args.profile_steps:
            i0 = s.next_batch
            gaps[prec] = (breakdown(s, batches[i0:], args.profile_steps), pk, fl[i0:i0 + args.profile_steps])

    out.table(f"MFU of the default training step ({f0['total'] / 1e9:.1f} GFLOP per step, first batch; median of "
              f"{args.windows} windows x {args.steps} steps, each next to a {args.matmul_size}^3 matmul)",
              ["precision", "step GFLOP/s", f"peak: {args.matmul_size}^3 matmul GFLOP/s", "MFU (medians)",
               "MFU (paired windows)", f"target >= {TARGET:.0%}"], rows)
    for prec, (kinds, pk, prof_fl) in gaps.items():
        step_ms = sum(ms for _, ms in kinds)
        out.table(f"[{prec}] where a step's time goes (torch.profiler self CPU time, {args.profile_steps} steps; "
                  f"step {step_ms:.0f} ms)",
                  ["kind", "ms/step", "share"], [[k, f"{ms:.1f}", f"{ms / step_ms:.0%}"] for k, ms in kinds])
        gemm_ms = dict(kinds).get(KINDS[0][0], 0.0)
        sdpa = KINDS[1][0] in dict(kinds)  # fp32 uses SDPA; bf16 on CPU does attention with bmm
        gemm_flops = statistics.mean(f["total"] - (f["attention"] if sdpa else 0) for f in prof_fl)
        if gemm_ms:
            rate = gemm_flops / (gemm_ms / 1e3)
            what = "all but the attention term, which the SDPA kernel does" if sdpa else \
                "all model FLOPs, attention included"
            print(f"GEMMs alone: {gemm_flops / 1e9:.1f} GFLOP ({what}) in {gemm_ms:.0f} ms = "
                  f"{rate / 1e9:.1f} GFLOP/s = {rate / pk:.0%} of the {args.matmul_size}^3 peak; the rest of "
                  f"the step ({step_ms - gemm_ms:.0f} ms) runs at 0 model FLOPs.")
            out.results.setdefault("gemm", {})[prec] = {"gemm_flops_per_s": rate, "share_of_peak": rate / pk}
    out.write(args.json)


if __name__ == "__main__":
    main()
