"""Raw chunks -> clean, de-duplicated, label-mapped, hash-split rows (pure, in memory).

Invariants:
- A row's id is sha1(normalized text); its split depends on that id only, so
  adding rows never moves an old row, and identical texts share one split.
- De-duplication keeps the first occurrence in source order (files sorted,
  rows in file order); later copies with another label count as conflicts.
- Unlabeled text that equals any labelled text is dropped from `unlabeled`,
  so val/test text never leaks into tokenizer training or pretraining.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from components.core.config import IngestConfig
from components.core.errors import DataError
from components.data.readers import Chunk

_SPACE = re.compile(r"\s+")


def normalize(text: str | None) -> str:
    """Unicode NFC, every whitespace run -> one space, stripped.

    >>> normalize("  Cafe\\u0301 \\t au\\n lait ")
    'Café au lait'
    >>> normalize(None)
    ''
    """
    if not text:
        return ""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def text_id(text: str) -> str:
    """sha1 hex of the (normalized) text: the row id of the data contract.

    >>> text_id("hello")
    'aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d'
    """
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def pair_id(a: str, b: str) -> str:
    """pair: the row id of (a, b): sha1 of "a<US>b" (ordered; U+001F never survives normalize).

    >>> pair_id("a", "b") != pair_id("b", "a")
    True
    """
    return text_id(f"{a}\x1f{b}")


def pair_split_key(a: str, b: str) -> str:
    """pair: what the split is keyed on: the UNORDERED pair, so (a, b) and (b, a) share a split.

    >>> pair_split_key("a", "b") == pair_split_key("b", "a")
    True
    """
    return pair_id(*sorted((a, b)))


def split_of(row_id: str, val_fraction: float, test_fraction: float) -> str:
    """The split of a row from its id: first 8 bytes -> u in [0, 1).

    u < test -> test, u < test + val -> val, else train.
    >>> split_of("0" * 40, 0.1, 0.1), split_of("f" * 40, 0.1, 0.1)
    ('test', 'train')
    """
    u = int(row_id[:16], 16) / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def order_labels(names) -> list[str]:
    """Sorted label names; integer-like names sort as numbers ('2' < '10').

    >>> order_labels({"pos", "neg"}), order_labels({"10", "2", "0"})
    (['neg', 'pos'], ['0', '2', '10'])
    """
    names = set(names)
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


@dataclass
class Prepared:
    labels: list[str]  # index = label id
    splits: dict  # "train"/"val"/"test" -> list of (id, text, label_id), sorted by id
    # (pair: text is the tuple (text, text_pair), id = pair_id)
    # (multi_label: label_id is a sorted tuple of ids, possibly empty)
    unlabeled: list  # list of (id, text), sorted by id
    report: dict
    task: str = "single_label"


def _err(msg: str) -> DataError:
    return DataError(msg, stage="ingest")


def _frac(n: int, d: int) -> float:
    return round(n / d, 6) if d else 0.0


def prepare(chunks: list[Chunk], cfg: IngestConfig, source: str) -> Prepared:
    """Normalize, drop empties and duplicates, map labels, split by hash; check thresholds.

    multi_label: a chunk's label is a tuple of names (readers.label_set; a plain name counts
    as a 1-tuple); a duplicate text with another label SET is a conflict, like single_label.
    """
    multi = cfg.task == "multi_label"
    allowed = set(cfg.labels)
    labelled: dict[str, str] = {}  # text -> label name; insertion order = source order
    unlabeled: dict[str, None] = {}  # an ordered set
    rows = empty = dup_labelled = dup_unlabeled = conflicts = 0
    pair = cfg.task == "pair"
    for chunk in chunks:
        if pair and chunk.labels is not None and chunk.pairs is None:
            raise _err(f"{chunk.origin}: column {cfg.text_pair_column!r} not found (ingest.task is pair; "
                       f"columns: {', '.join(map(str, chunk.columns))})")
        for i, raw in enumerate(chunk.texts):
            rows += 1
            text = normalize(raw)
            second = normalize(chunk.pairs[i]) if pair and chunk.pairs is not None else None
            label = chunk.labels[i] if chunk.labels is not None else None
            if pair and label is None:  # unlabeled: each non-empty side is pretraining text
                for t in (text, second):
                    if t and len(t) <= cfg.max_text_chars:
                        dup_unlabeled += t in unlabeled
                        unlabeled.setdefault(t)
                empty += not (text or second)
                continue
            if not text or (pair and not second):  # pair: an empty side makes the row empty
                empty += 1
                continue
            for t in (text, second) if pair else (text,):
                if len(t) > cfg.max_text_chars:
                    raise _err(f"{chunk.where(i)}: text has {len(t)} characters (more than "
                               f"ingest.max_text_chars={cfg.max_text_chars})")
            if pair:
                text = (text, second)  # the key of dedup: the same (a, b) twice is a duplicate
            if multi and isinstance(label, str):
                label = (label,)
            elif not multi and isinstance(label, tuple):  # a reader of another task; never by default
                raise _err(f"{chunk.where(i)}: label is a list ({list(label)!r}); a set of labels per "
                           f"text needs ingest.task: multi_label")
            if multi and label is not None:
                label = tuple(sorted(set(label)))  # a set: order and repeats do not matter
            if label is None:
                dup_unlabeled += text in unlabeled
                unlabeled.setdefault(text)
            elif multi and allowed and not allowed.issuperset(label):
                bad = next(n for n in label if n not in allowed)
                raise _err(f"{chunk.where(i)}: label {bad!r} is not in ingest.labels "
                           f"({', '.join(cfg.labels)})")
            elif not multi and allowed and label not in allowed:
                raise _err(f"{chunk.where(i)}: label {label!r} is not in ingest.labels "
                           f"({', '.join(cfg.labels)})")
            elif text in labelled:
                dup_labelled += 1
                conflicts += labelled[text] != label
            else:
                labelled[text] = label
    sides = {t for k in labelled for t in k} if pair else labelled
    overlap = [t for t in unlabeled if t in sides]
    for text in overlap:
        del unlabeled[text]
    dupes = dup_labelled + dup_unlabeled + len(overlap)

    where = source
    if rows == 0:
        raise _err(f"{where}: no rows")
    if empty / rows > cfg.max_empty_fraction:
        raise _err(f"{where}: {empty} of {rows} rows are empty ({empty / rows:.1%}; more than "
                   f"ingest.max_empty_fraction={cfg.max_empty_fraction})")
    if rows > empty and dupes / (rows - empty) > cfg.max_duplicate_fraction:
        raise _err(f"{where}: {dupes} of {rows - empty} non-empty rows are duplicates "
                   f"({dupes / (rows - empty):.1%}; more than ingest.max_duplicate_fraction="
                   f"{cfg.max_duplicate_fraction})")
    if not labelled:
        if all(c.labels is None for c in chunks):
            found = "; ".join(f"{c.origin}: {', '.join(map(str, c.columns))}" for c in chunks[:3])
            raise _err(f"{where}: no labelled rows: column {cfg.label_column!r} not found in any "
                       f"input, and fine-tuning needs labels (columns found: {found})")
        raise _err(f"{where}: no labelled rows: every value of column {cfg.label_column!r} is empty")
    present = {n for v in labelled.values() for n in v} if multi else set(labelled.values())
    if multi and len(cfg.labels or present) < 2:
        found = f"only one ({next(iter(present))!r})" if present else "none"
        raise _err(f"{where}: multi_label needs at least 2 labels in the labelled rows, found {found}")
    if not multi and len(present) < 2:
        raise _err(f"{where}: only one class ({next(iter(present))!r}) in the labelled rows; "
                   f"fine-tuning needs at least 2")
    labels = list(cfg.labels) if cfg.labels else order_labels(present)
    label_id = {name: i for i, name in enumerate(labels)}

    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for text, name in labelled.items():
        rid = pair_id(*text) if pair else text_id(text)
        lid = tuple(sorted(label_id[n] for n in name)) if multi else label_id[name]
        key = pair_split_key(*text) if pair else rid
        splits[split_of(key, cfg.val_fraction, cfg.test_fraction)].append((rid, text, lid))
    for rows_ in splits.values():
        rows_.sort()
    unl = sorted((text_id(t), t) for t in unlabeled)

    counts = {s: {n: 0 for n in labels} for s in splits}
    for s, rows_ in splits.items():
        for _, _, lid in rows_:
            for i in (lid if multi else (lid,)):
                counts[s][labels[i]] += 1
    labelled_read = sum(sum(l is not None for l in c.labels) for c in chunks if c.labels is not None)
    report = {
        "source": source,
        "inputs": list(dict.fromkeys(c.origin for c in chunks)),
        "rows_read": rows,
        "labelled_rows_read": labelled_read,
        "unlabeled_rows_read": rows - labelled_read,
        "empty_dropped": empty,
        "duplicates_dropped": dupes,
        "duplicates": {"labelled": dup_labelled, "unlabeled": dup_unlabeled,
                       "unlabeled_equal_to_labelled": len(overlap)},
        "label_conflicts": conflicts,
        "empty_fraction": _frac(empty, rows),
        "duplicate_fraction": _frac(dupes, rows - empty),
        "labels": labels,
        "splits": {**{s: len(r) for s, r in splits.items()}, "unlabeled": len(unl)},
        "label_counts": counts,
    }
    if pair:
        report["task"] = cfg.task
        report["self_pairs"] = {s: sum(t[0] == t[1] for _, t, _ in r) for s, r in splits.items()}
    if multi:  # labels per row: rows with none are allowed and counted
        report["task"] = cfg.task
        report["no_label_rows"] = {s: sum(not lid for _, _, lid in r) for s, r in splits.items()}
        report["labels_per_row"] = {s: round(sum(map(len, (lid for _, _, lid in r))) / len(r), 6) if r else 0.0
                                    for s, r in splits.items()}
    return Prepared(labels, splits, unl, report, cfg.task)
