"""The pair task's positive pairs, as retrieval sees them.

A positive pair (a, b) is a row labelled finetune.bi_encoder.positive. Retrieval asks, for each
distinct first text a, to find its partners among the distinct second texts of ALL the split's
positive pairs. These helpers build that set; bi-encoder training (its val MRR), evaluate and
the gate score on it (evaluation/retrieval.py).

    pos = positives(*text_split(paths.split("val"), n_classes), positive_id(labels, "duplicate"))
    queries, candidates, relevant = retrieval_set(pos)   # relevant [Q, C] bool
"""

from __future__ import annotations

import numpy as np

from components.core.errors import ConfigError


def positive_id(labels: list[str], positive: str, paths=None) -> int:
    """The id of finetune.bi_encoder.positive in labels.json's labels (one-line ConfigError if absent).

    >>> positive_id(["different", "duplicate"], "duplicate")
    1
    """
    if positive not in labels:
        where = paths.labels.relative_to(paths.root) if paths is not None else "labels.json"
        raise ConfigError(f"finetune.bi_encoder.positive: expected the label of matching pairs, one of "
                          f"{', '.join(labels)} (the labels in {where}), got {positive!r}")
    return labels.index(positive)


def positives(pairs, labels, positive_id: int) -> list[tuple[str, str]]:
    """The (a, b) pairs whose label id is `positive_id`.

    >>> positives([("a", "b"), ("c", "d")], np.array([1, 0]), 1)
    [('a', 'b')]
    """
    return [p for p, y in zip(pairs, np.asarray(labels)) if int(y) == positive_id]


def retrieval_set(pairs) -> tuple[list[str], list[str], np.ndarray]:
    """(queries, candidates, relevant [Q, C] bool) of positive (a, b) pairs; first-seen order.
    A query's relevant candidates are its partners (usually one; a text in two positive pairs
    has two).

    >>> q, c, rel = retrieval_set([("a", "x"), ("b", "y"), ("a", "z")])
    >>> q, c, rel.astype(int).tolist()
    (['a', 'b'], ['x', 'y', 'z'], [[1, 0, 1], [0, 1, 0]])
    """
    queries = list(dict.fromkeys(a for a, _ in pairs))
    candidates = list(dict.fromkeys(b for _, b in pairs))
    qi, ci = {t: i for i, t in enumerate(queries)}, {t: i for i, t in enumerate(candidates)}
    relevant = np.zeros((len(queries), len(candidates)), dtype=bool)
    for a, b in pairs:
        relevant[qi[a], ci[b]] = True
    return queries, candidates, relevant
