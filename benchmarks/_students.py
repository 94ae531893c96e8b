"""Training, caching and scoring students for quality.py's frontier and label_efficiency.py.

- pretrained encoders cached under PATH/.cache/encoderflow/bench/pretrained/<key>, where
  <key> is the pretrain stage's own checkpoint key (params, seed, tokenizer, tokenized data
  and the stage's code): a rerun, or the other script, reuses them;
- fine-tuning through the finetune stage's `fit_classifier`, and test accuracy.
The folder they run in is a benchmarks/_workspace.Workspace.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from benchmarks import _common as C
from benchmarks._shapes import shape_of
from benchmarks._workspace import Workspace, run_stage

CACHE = Path(".cache") / "encoderflow" / "bench" / "pretrained"  # under the --project (or scratch) folder


def main(fn, args) -> None:
    """fn(args), with the project's expected errors as one `error: ...` line (exit 1)."""
    from components.core.errors import EncoderflowError

    try:
        fn(args)
    except EncoderflowError as e:
        raise SystemExit(f"error: {e}") from None


def pretrained(ws: Workspace, cfg, root: Path | None = None) -> Path:
    """The cached pretrained encoder for cfg (model, pretrain, seed) on the workspace's tokenizer
    and tokenized data: pretrains it with the pretrain stage when it is not cached yet. Returns
    the cache folder (a models/pretrained folder); `root`'s models/pretrained becomes a copy."""
    from components.stages.pretrain import run_key

    paths = ws.paths
    key = run_key(cfg, paths)
    cached = ws.source / CACHE / key
    if not (cached / "config.json").is_file():
        ws.stage_seconds[f"pretrain {shape_of(cfg).name} seed {cfg.project.seed}"] = run_stage(
            "pretrain", cfg, ws.root)
        tmp = cached.with_name(f".{key}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(paths.pretrained, tmp)
        shutil.copyfile(paths.report("pretrain"), tmp / "pretrain.json")
        os.replace(tmp, cached)
    else:
        print(f"pretrain {shape_of(cfg).name} seed {cfg.project.seed}: cached {cached}", flush=True)
    if root is not None:
        target = root / "models" / "pretrained"
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        shutil.copytree(cached, target)
    return cached


def split(paths, name: str, n_classes: int):
    from components.data.splits import text_split

    return text_split(paths.split(name), n_classes)


def accuracy(probs, y) -> float:
    import numpy as np

    return float((np.asarray(probs).argmax(axis=1) == np.asarray(y)).mean())


def fit(cfg, root: Path, init: str, tag: str):
    """finetune's fit_classifier (the stage's training) in `root`; (classifier, seconds, epochs run)."""
    from components.core.paths import Paths
    from components.training.fit_classifier import fit_classifier

    t0 = time.perf_counter()
    with C.in_dir(root):
        res = fit_classifier(cfg, Paths.at(root), init, tag=tag, progress=False)
    seconds = time.perf_counter() - t0
    print(f"[{time.strftime('%H:%M:%S')}] fit {tag}: {res.epochs} epochs, {res.steps} steps, "
          f"best val F1 {res.best_val_f1 if res.best_val_f1 is None else round(res.best_val_f1, 4)}, "
          f"{seconds:.1f} s", flush=True)
    return res.classifier, seconds, res.epochs
