"""Pretraining step throughput: encoderflow's MLM step vs transformers BertForMaskedLM, same size.

    .venv/bin/python benchmarks/pretrain_throughput.py                       # defaults (~5-10 min, 2 cores)
    .venv/bin/python benchmarks/pretrain_throughput.py --windows 2 --steps 3  # smoke run
    .venv/bin/python benchmarks/pretrain_throughput.py --precision bf16-mixed --threads 1

Both models train on the SAME packed + masked batches of real tokens (the pretrain stage's
own packing and MLMBatches masking over data/tokenized, trained tokenizer; built in a
scratch project by ingest + tokenize when missing), in the same order, from the same init
seed, with the same optimizer recipe (AdamW with LitMLM's param groups, lr, betas, weight
decay, warmup + linear decay, grad-norm clip) and the same precision handling
(torch.autocast("cpu", bfloat16, cache_enabled=False), as Lightning's bf16-mixed plugin).

- ours: components/model/lit_mlm.LitMLM as the stage builds it; its mlm_loss (sparse: only
  masked positions leave the last block and reach the vocab projection) and the optimizer +
  scheduler its configure_optimizers returns. No Lightning Trainer loop around it.
- HF: BertForMaskedLM (SDPA attention) with params.model's layers / hidden / heads / FFN,
  the tokenizer's vocab and the sequence length as max positions; labels = -100 at
  unmasked positions, so its loss is the same masked-position MLM loss.

Timed windows alternate ours, HF, ours, HF... after warm-up, so CPU noise from other
processes hits both. Prints real (non-pad) tokens/s per model (median over windows),
the ratio (target >= 2.0x HF), and the MLM loss both reach on the same batches: the
mean train loss over the last --loss-windows windows and a loss on fixed val batches.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, sys.path[0] is benchmarks/, where tokenize.py would shadow the stdlib
# module of that name: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import statistics  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import _common as C  # noqa: E402
from benchmarks import _mlm_step as M  # noqa: E402
from benchmarks import _report  # noqa: E402

TARGET = 2.0


def run_precision(cfg, info, train, val, precision: str, args) -> dict:
    seq, bs = args.seq_len, args.batch_size
    total = args.warmup + args.windows * args.steps  # optimizer steps per model
    batches = M.make_batches(info, train, bs, total, args.seed, args.mask_rate)
    val_batches = M.make_batches(info, val, bs, args.val_batches, args.seed + 1, args.mask_rate) \
        if args.val_batches and len(val[0]) else []
    ours = M.build_ours(cfg, info, seq, precision, args.seed, total)
    hf = M.build_hf(cfg, info, seq, precision, args.seed, total)
    print(f"[{precision}] params: ours {C.count_params(ours.module):,} | HF {C.count_params(hf.module):,}; "
          f"{total} steps each on identical batches ({args.warmup} warm-up)", flush=True)
    wins = M.interleaved([ours, hf], batches, args.windows, args.steps, args.warmup, f"[{precision}] ")
    out = {"precision": precision}
    for s in (ours, hf):
        ws = wins[s.name]
        tail = [x for w in ws[-args.loss_windows:] for x in w["losses"]]
        out[s.name] = {"tok_s": M.median_rate(ws), "first_loss": statistics.mean(ws[0]["losses"]),
                       "final_loss": statistics.mean(tail),
                       "val_loss": s.evaluate(val_batches) if val_batches else None}
    paired = [M.tok_per_s(a) / M.tok_per_s(b) for a, b in zip(wins[ours.name], wins[hf.name])]
    out["ratio"] = out[ours.name]["tok_s"] / out[hf.name]["tok_s"]
    out["paired_ratio"] = statistics.median(paired)
    out["names"] = (ours.name, hf.name)
    return out


def main() -> None:
    ap = M.parser(__doc__)
    ap.add_argument("--precision", choices=["32", "bf16-mixed", "both"], default="both")
    ap.add_argument("--batch-size", type=int, help="default: pretrain.batch_size")
    ap.add_argument("--seq-len", type=int, help="default: pretrain.seq_len")
    ap.add_argument("--mask-rate", type=float, help="default: pretrain.mask_rate")
    ap.add_argument("--windows", type=int, default=7, help="timed windows per model (median reported)")
    ap.add_argument("--steps", type=int, default=10, help="optimizer steps per window")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    ap.add_argument("--loss-windows", type=int, default=2, help="final loss = mean over the last N windows")
    ap.add_argument("--val-batches", type=int, default=4, help="fixed val batches for the end-of-run loss")
    args = ap.parse_args()

    cfg, paths = M.start(args, "pretrain step throughput: encoderflow vs HF BertForMaskedLM")
    p, m = cfg.pretrain, cfg.model
    args.batch_size = args.batch_size or p.batch_size
    args.seq_len = args.seq_len or p.seq_len
    args.mask_rate = args.mask_rate or p.mask_rate
    info, train, val = M.load_blocks(cfg, paths, args.seq_len)
    print(f"data: {paths.tokenized} packed into {len(train[0]):,} blocks of {args.seq_len} "
          f"({np.asarray(train[1]).mean():.2%} real tokens); tokenizer {paths.tokenizer} (vocab {info['vocab_size']})")
    print(f"model: {m.family} layers={m.num_layers} hidden={m.hidden_size} heads={m.num_heads} ffn={m.ffn_size} "
          f"positions={m.positions} bias={m.bias} | batch {args.batch_size} x seq {args.seq_len}, "
          f"mask rate {args.mask_rate}, lr {p.lr}, clip {p.grad_clip}, dropout {p.dropout}")
    print(f"timing: {args.windows} windows x {args.steps} steps per model, interleaved, after "
          f"{args.warmup} warm-up steps\n", flush=True)

    precisions = ["32", "bf16-mixed"] if args.precision == "both" else [args.precision]
    results = [run_precision(cfg, info, train, val, prec, args) for prec in precisions]

    out = _report.Report("pretrain_throughput")
    ours_name, hf_name = results[0]["names"]
    rows = []
    for r in results:
        o, h = r[ours_name], r[hf_name]
        val_o = "-" if o["val_loss"] is None else f"{o['val_loss']:.3f}"
        val_h = "-" if h["val_loss"] is None else f"{h['val_loss']:.3f}"
        rows.append([r["precision"], f"{o['tok_s']:,.0f}", f"{h['tok_s']:,.0f}", f"{r['ratio']:.2f}x",
                     f"{r['paired_ratio']:.2f}x", f"{o['final_loss']:.3f} / {h['final_loss']:.3f}",
                     f"{val_o} / {val_h}", "met" if r["ratio"] >= TARGET else "NOT met"])
    total = args.warmup + args.windows * args.steps
    out.table(f"real tokens/s of one training step, encoderflow vs HF BertForMaskedLM (batch {args.batch_size} x "
              f"seq {args.seq_len}, median of {args.windows} windows x {args.steps} steps; losses after {total} "
              "steps on identical batches)",
              ["precision", "ours real tok/s", "HF real tok/s", "ratio (medians)",
               "ratio (paired windows)", f"train MLM loss, last {args.loss_windows} windows (ours / HF)",
               "val MLM loss (ours / HF)", f"target >= {TARGET}x"], rows)
    out.results = {"batch_size": args.batch_size, "seq_len": args.seq_len, "mask_rate": args.mask_rate,
                   "windows": args.windows, "steps": args.steps, "warmup": args.warmup, "target_ratio": TARGET,
                   "precisions": [{"precision": r["precision"], "ratio": r["ratio"], "paired_ratio": r["paired_ratio"],
                                   "ours": r[ours_name], "hf": r[hf_name]} for r in results]}
    print(f"\nlosses after {total} steps = {total * args.batch_size * args.seq_len:,} positions on identical "
          f"batches from seed {args.seed}; first-window train loss: " + "; ".join(
              f"{r['precision']} ours {r[ours_name]['first_loss']:.3f} HF {r[hf_name]['first_loss']:.3f}"
              for r in results))
    out.write(args.json)


if __name__ == "__main__":
    main()
