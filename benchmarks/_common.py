"""Shared parts of the training-speed benchmarks (pretrain_throughput, mfu, scaling).

Scripts import this after putting the repository root first on sys.path (running
`python benchmarks/x.py` puts benchmarks/ there, where tokenize.py would shadow the
stdlib module):

    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from benchmarks import _common as C

- the machine / command header every script prints;
- the project's real data: packed + masked batches from data/tokenized and the
  trained tokenizer (built in a scratch project by ingest + tokenize if missing);
- one training step object per model: ours is LitMLM.mlm_loss + the AdamW/LambdaLR
  that LitMLM.configure_optimizers returns + grad-norm clipping, under the same
  torch.autocast the stage's Lightning precision plugin uses; HF's is
  BertForMaskedLM of the same size with the same optimizer recipe;
- interleaved timed windows (A, B, A, B, ...) so shared-CPU noise hits both.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- header


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(title: str) -> None:
    """Print what ran where: the exact command, CPU, cores, torch / transformers, threads."""
    import torch

    cpu = torch.cpu
    bf16 = getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
    amx = getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    try:
        import transformers
        tf = transformers.__version__
    except ImportError:
        tf = "not installed"
    print(f"# {title}")
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {cpu_model()} | {os.cpu_count()} logical cores | avx512_bf16={bf16} amx={amx}")
    print(f"software: python {platform.python_version()} | torch {torch.__version__} | "
          f"transformers {tf} | torch threads {torch.get_num_threads()}")
    try:
        load = os.getloadavg()
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              "(above 0 means other processes share the CPU)")
    except OSError:
        pass
    print(flush=True)


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (None where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def lineage() -> dict:
    """Where and when a benchmark's numbers were measured: the block every `--json` file
    carries, so a docs page rendered from it can say so."""
    import datetime

    import torch

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""

    flags = cpu_flags()
    return {
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "avx512_bf16": None if flags is None else "avx512_bf16" in flags,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),  # what a stage process here starts with
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }


def write_json(path: Path, numbers: dict) -> None:
    """`numbers` plus the lineage block, as JSON at `path` (docs are rendered from it)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**numbers, "lineage": lineage()}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def parser(doc: str):
    """A benchmark script's argparse parser: the first line of `doc` as description, the rest
    as epilog (shown as written), and the options every training benchmark shares."""
    import argparse

    lines = doc.splitlines()
    ap = argparse.ArgumentParser(description=lines[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(lines[1:]))
    add_common_args(ap)
    return ap


def start(args, title: str):
    """Threads, the header, params and data for a parsed command line: (cfg, paths)."""
    set_threads(args.threads)
    header(title)
    cfg = load_cfg(args.project, args.overrides)
    return cfg, ensure_data(cfg, args.project)


def add_common_args(ap) -> None:
    ap.add_argument("--project", type=Path, default=ROOT,
                    help="project with params.yaml, data/tokenized and models/tokenizer (default: this "
                         "checkout); without them ingest + tokenize run in a scratch project")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="params override, e.g. model.num_layers=4 (repeatable)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0, help="init seed and batch seed")


# --------------------------------------------------------------------------- data


def load_cfg(project: Path, overrides: list[str]):
    from components.core import env
    from components.core.config import load_params

    env.configure()
    params = project / "params.yaml"
    return load_params(params if params.is_file() else ROOT / "params.yaml", overrides)


def ensure_data(cfg, project: Path):
    """Paths of a project holding the tokenizer + tokenized corpus; builds one if needed."""
    from components.core.paths import Paths

    paths = Paths.at(project)
    if paths.tokenizer.is_file() and paths.tokenized.is_dir():
        return paths
    import shutil
    import tempfile

    from components.stages import table as stages

    scratch = Path(tempfile.mkdtemp(prefix="encoderflow-bench-"))
    shutil.copyfile(project / "params.yaml" if (project / "params.yaml").is_file() else ROOT / "params.yaml",
                    scratch / "params.yaml")
    print(f"{paths.tokenized} or {paths.tokenizer} missing: running ingest + tokenize in {scratch} ...",
          flush=True)
    cwd = os.getcwd()
    os.chdir(scratch)  # stages log to a project-relative MLflow store
    try:
        for name in ("ingest", "tokenize"):
            stages.get(name).load()(cfg, Paths.at(scratch))
    finally:
        os.chdir(cwd)
    return Paths.at(scratch)


def load_blocks(cfg, paths, seq_len: int):
    """(info, train (ids [N, seq_len], mask [N, seq_len]), val blocks): the pretrain stage's
    own loading and packing (train + unlabeled splits; val capped at val_sequences)."""
    from components.stages.pretrain import load_data

    cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, seq_len=seq_len))
    return load_data(cfg, paths)


def masking(info, mask_rate: float) -> dict:
    return {"rate": mask_rate, "mask_id": info["mask_id"], "special_ids": info["special_ids"],
            "vocab_size": info["vocab_size"]}


def make_batches(info, blocks, batch_size: int, n: int, seed: int, mask_rate: float) -> list[dict]:
    """n masked micro-batches exactly as the stage draws them (MLMBatches.batch(b), b = 0..n-1)."""
    from components.model.data import MLMBatches

    ds = MLMBatches(*blocks, batch_size, seed, masking(info, mask_rate))
    return [ds.batch(b) for b in range(n)]


def real_tokens(batch: dict) -> int:
    return int(batch["attention_mask"].sum())


# --------------------------------------------------------------------------- models


class Stepper:
    """One optimizer step per call: zero_grad, forward+loss (autocast as the stage), backward,
    clip_grad_norm_, AdamW step, LambdaLR step (Lightning's automatic-optimization order)."""

    def __init__(self, name, module, loss_fn, optimizer, scheduler, precision: str, clip: float):
        self.name, self.module, self.loss_fn = name, module, loss_fn
        self.opt, self.sched, self.precision, self.clip = optimizer, scheduler, precision, clip
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.next_batch = 0  # index into the shared batch list (both models see the same order)

    def autocast(self):
        import torch

        if self.precision == "bf16-mixed":  # what Lightning's MixedPrecision plugin enters on CPU
            return torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)
        return nullcontext()

    def __call__(self, batch: dict) -> float:
        import torch

        self.module.train()
        self.opt.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.loss_fn(batch)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        self.sched.step()
        return float(loss.detach())

    def evaluate(self, batches: list[dict]) -> float:
        """Mean MLM loss over fixed batches (eval mode, no grad, same autocast)."""
        import torch

        self.module.eval()
        with torch.no_grad(), self.autocast():
            losses = [float(self.loss_fn(b)) for b in batches]
        return sum(losses) / max(1, len(losses))


def build_ours(cfg, info, seq_len: int, precision: str, seed: int, total_steps: int) -> Stepper:
    """LitMLM exactly as the pretrain stage builds it; its mlm_loss and configure_optimizers."""
    import torch

    from components.model.encoder import EncoderConfig
    from components.model.lit_mlm import LitMLM

    p = cfg.pretrain
    model_cfg = dataclasses.replace(cfg.model, max_length=max(cfg.model.max_length, seq_len))
    enc_cfg = EncoderConfig.from_params(model_cfg, info["vocab_size"], info["pad_id"], dropout=p.dropout)
    torch.manual_seed(seed)
    lit = LitMLM(enc_cfg, lr=p.lr, beta2=p.beta2, weight_decay=p.weight_decay, max_steps=total_steps,
                 warmup_fraction=p.warmup_fraction, schedule=p.schedule, seed=seed)
    conf = lit.configure_optimizers()
    return Stepper("encoderflow", lit, lit.mlm_loss, conf["optimizer"], conf["lr_scheduler"]["scheduler"],
                   precision, p.grad_clip)


def hf_config(cfg, info, seq_len: int):
    """BertConfig of the same size as params.model (layers, hidden, heads, FFN, vocab, length)."""
    from transformers import BertConfig

    m, p = cfg.model, cfg.pretrain
    return BertConfig(vocab_size=info["vocab_size"], hidden_size=m.hidden_size, num_hidden_layers=m.num_layers,
                      num_attention_heads=m.num_heads, intermediate_size=m.ffn_size,
                      max_position_embeddings=max(m.max_length, seq_len), pad_token_id=info["pad_id"],
                      hidden_dropout_prob=p.dropout, attention_probs_dropout_prob=p.dropout,
                      attn_implementation="sdpa")


def build_hf(cfg, info, seq_len: int, precision: str, seed: int, total_steps: int) -> Stepper:
    """transformers BertForMaskedLM (SDPA attention) with the same AdamW + schedule + clipping."""
    import torch
    from transformers import BertForMaskedLM

    from components.model.optim import lr_lambda, param_groups

    p = cfg.pretrain
    torch.manual_seed(seed)
    model = BertForMaskedLM(hf_config(cfg, info, seq_len))

    def loss_fn(batch: dict):
        # labels are -100 (IGNORE) except at masked positions: HF's loss is the same MLM loss
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long(),
                     labels=batch["labels"]).loss

    opt = torch.optim.AdamW(param_groups([model], p.weight_decay), lr=p.lr, betas=(0.9, p.beta2), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total_steps, p.warmup_fraction, p.schedule))
    return Stepper("HF BertForMaskedLM", model, loss_fn, opt, sched, precision, p.grad_clip)


def count_params(module) -> int:
    return sum(t.numel() for t in {id(t): t for t in module.parameters()}.values())


# --------------------------------------------------------------------------- timing


def warm_up(stepper: Stepper, batches: list[dict], steps: int) -> None:
    for _ in range(steps):
        stepper(batches[stepper.next_batch % len(batches)])
        stepper.next_batch += 1


def window(stepper: Stepper, batches: list[dict], steps: int) -> dict:
    """`steps` consecutive training steps: {"seconds", "tokens" (real), "losses"}."""
    todo = [batches[(stepper.next_batch + i) % len(batches)] for i in range(steps)]
    tokens = sum(real_tokens(b) for b in todo)
    losses = []
    t0 = time.perf_counter()
    for b in todo:
        losses.append(stepper(b))
    seconds = time.perf_counter() - t0
    stepper.next_batch += steps
    return {"seconds": seconds, "tokens": tokens, "losses": losses}


def interleaved(steppers: list, batches: list[dict], windows: int, steps: int, warmup: int,
                label: str = "") -> dict:
    """Warm each up, then windows A, B, A, B, ...; returns {name: [window dicts]}."""
    for s in steppers:
        warm_up(s, batches, warmup)
    out = {s.name: [] for s in steppers}
    for w in range(windows):
        for s in steppers:
            out[s.name].append(window(s, batches, steps))
        rates = "  ".join(f"{s.name}: {tok_per_s(out[s.name][-1]):,.0f} tok/s" for s in steppers)
        print(f"  {label}window {w + 1}/{windows}  {rates}", flush=True)
    return out


def tok_per_s(w: dict) -> float:
    return w["tokens"] / w["seconds"]


def median_rate(ws: list[dict]) -> float:
    return statistics.median(tok_per_s(w) for w in ws)


def set_threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


def md_table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- peak RSS of a command

# Linux carries the forking process's RSS into a child's ru_maxrss (it is set from the old
# mm at exec), so a child of a big process would never report less than that process's size.
# A small launcher forks the measured command instead and reports its children's peak.
_LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
             "sys.exit(rc)")


def measure(cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one command in its own process; stderr goes
    to `log`, whose last lines a failure shows."""
    rss_file = log.with_suffix(".maxrss")
    t0 = time.perf_counter()
    with open(log, "wb") as err:
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(rss_file), *cmd], cwd=cwd,
                              stdout=subprocess.PIPE, stderr=err, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-8:]
        raise SystemExit(f"error: {' '.join(cmd[:4])} exited {proc.returncode} (log {log}):\n" + "\n".join(tail))
    return wall, int(rss_file.read_text()) / 1024, proc.stdout.decode()  # ru_maxrss: KiB on Linux
