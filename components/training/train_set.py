"""The rows finetune trains on: the teacher's transfer set, or gold train (+ augmented copies).

- finetune.distill.enabled and data/teacher/transfer.parquet has rows: every transfer row
  (source train, unlabeled or augmented) with the teacher's probabilities as soft targets
  and, on train rows, the gold label (SoftSeqs). The gold train split itself is not added:
  its texts are the transfer set's train rows.
- otherwise: the gold train split, plus finetune.augment_copies augmented copies of each
  train text (data/augment.py) carrying that text's gold label (LabelledSeqs).

Texts outside data/tokenized are tokenized here with the tokenizer the model starts from
(`tokens.encode_texts`: the same ids the tokenize stage writes for our tokenizer). No
training text may be a val or test text: a transfer set that holds one is a DataError, and
an augmented copy that happens to equal one is dropped (and counted).
"""

from __future__ import annotations

import numpy as np

from components.core.config import Params
from components.core.errors import DataError
from components.core.paths import Paths
from components.data.splits import text_split
from components.model.cls_data import LabelledSeqs, SoftSeqs
from components.model.tokens import encode_texts

HELD_OUT = ("val", "test")
MASK_TOKENS = ("[MASK]", "<mask>")  # ours and BERT's; RoBERTa-style HF tokenizers


def _rel(paths: Paths, path) -> str:
    return path.relative_to(paths.root).as_posix() if paths.root in path.parents else str(path)


def held_out_texts(paths: Paths) -> dict[str, list[str]]:
    """{"val": texts, "test": texts} from data/prepared."""
    import pandas as pd

    out = {}
    for split in HELD_OUT:
        path = paths.split(split)
        if not path.is_file():
            raise DataError(f"{_rel(paths, path)}: not found (run ingest first)", stage="finetune")
        out[split] = pd.read_parquet(path, columns=["text"])["text"].astype(str).tolist()
    return out


def mask_token(tok) -> str:
    """The tokenizer's mask token among MASK_TOKENS ("[MASK]" when it knows none)."""
    return next((t for t in MASK_TOKENS if tok.token_to_id(t) is not None), MASK_TOKENS[0])


def build(cfg: Params, paths: Paths, tok, n_classes: int, max_len: int,
          gold: tuple[list[list[int]], np.ndarray]) -> tuple[LabelledSeqs | SoftSeqs, dict]:
    """(training dataset, info for reports/finetune.json). `gold`: the train split's (ids, labels)."""
    from components.data.transfer import check_held_out, read_transfer

    ft = cfg.finetune
    d = ft.distill
    info = {"distill": {"enabled": d.enabled, "used": False, "alpha": d.alpha, "temperature": d.temperature,
                        "loss": d.loss, "vector_weight": d.vector_weight, "vector_dim": None,
                        "transfer_rows": None},
            "augment_copies": ft.augment_copies, "augmented_rows": 0, "augmented_dropped_held_out": 0}
    if d.enabled and cfg.ingest.task != "single_label":
        print(f"finetune: distillation is single_label only; training on the gold labels "
              f"(ingest.task: {cfg.ingest.task})", flush=True)
    elif d.enabled:
        where = _rel(paths, paths.teacher_transfer)
        transfer = read_transfer(paths.teacher_transfer, n_classes, where)
        info["distill"]["transfer_rows"] = transfer.rows_by_source()
        if len(transfer):
            check_held_out(transfer.texts, held_out_texts(paths), where)
            info["distill"]["used"] = True
            info["train_rows"] = len(transfer)
            seqs = encode_texts(tok, transfer.texts)
            vectors = transfer.vectors if d.vector_weight > 0 else None
            if d.vector_weight > 0 and vectors is None:
                raise DataError(f"{where}: finetune.distill.vector_weight is {d.vector_weight} but the "
                                "transfer set has no teacher vectors (re-run the teacher stage)",
                                stage="finetune")
            info["distill"]["vector_dim"] = None if vectors is None else int(vectors.shape[1])
            return SoftSeqs(seqs, transfer.probs, transfer.labels, max_len, vectors), info
        print(f"warning: finetune: {where} has 0 rows; training on the gold labels of train only")
    seqs, labels = gold
    if ft.augment_copies:
        seqs, labels, dropped = _with_augmented(cfg, paths, tok, n_classes, seqs, labels)
        info["augmented_rows"] = len(seqs) - len(gold[0])
        info["augmented_dropped_held_out"] = dropped
    info["train_rows"] = len(seqs)
    return LabelledSeqs(seqs, labels, max_len), info


def _with_augmented(cfg: Params, paths: Paths, tok, n_classes: int, seqs: list[list[int]],
                    labels: np.ndarray) -> tuple[list[list[int]], np.ndarray, int]:
    """Gold rows + augment_copies copies of each train text with its label; copies equal to a
    val/test text are dropped (their count is the third value)."""
    from components.data.augment import augment

    texts, text_labels = text_split(paths.split("train"), n_classes)
    try:
        pairs = augment(texts, cfg.finetune.augment_copies, cfg.project.seed, mask_token=mask_token(tok))
    except ValueError as e:  # an empty train text, named by its row
        raise DataError(f"{_rel(paths, paths.split('train'))}: {e}", stage="finetune") from None
    held = {t for split in held_out_texts(paths).values() for t in split}
    kept = [(i, t) for i, t in pairs if t not in held]
    src = np.asarray([i for i, _ in kept], dtype=np.int64)  # [A] source row of each copy
    return (list(seqs) + encode_texts(tok, [t for _, t in kept]), np.concatenate([labels, text_labels[src]]),
            len(pairs) - len(kept))
