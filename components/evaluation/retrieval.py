"""Retrieval scores of the pair task's bi-encoder, and their TF-IDF cosine baseline.

The task: for each positive pair (a, b) of a split (label == finetune.bi_encoder.positive),
find b among the second texts of ALL the split's positive pairs, given a (the queries,
candidates and relevant matrix of data/pairs.retrieval_set). Per query, torchmetrics'
retrieval functions rank the candidates by similarity:
- recall_at_k: the share of its partners in the top k (with one partner: a 0/1 hit),
- mrr: 1 / rank of its best-ranked partner;
each averaged over the queries. The gate compares recall_at_10 per query (its mean is the
metric), so its paired bootstrap resamples queries. Used by evaluate (evaluation/biencoder.py)
and the gate; bi-encoder training logs the same MRR with torchmetrics' RetrievalMRR
(model/lit_biencoder.py).
"""

from __future__ import annotations

import numpy as np

KS = (1, 5, 10)
METRICS = tuple(f"recall_at_{k}" for k in KS) + ("mrr",)


def cosine(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Cosine similarities [Q, C] of query vectors [Q, H] and candidate vectors [C, H]."""
    q = np.asarray(q, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return q @ c.T


def per_query(sim: np.ndarray, relevant: np.ndarray, metric: str) -> np.ndarray:
    """One value per query [Q] of `metric` (recall_at_K or mrr), from similarities [Q, C].

    >>> per_query(np.eye(3), np.eye(3, dtype=bool), "mrr").tolist()    # identity: every partner first
    [1.0, 1.0, 1.0]
    >>> per_query(-np.eye(3), np.eye(3, dtype=bool), "mrr").round(4).tolist()  # every partner last
    [0.3333, 0.3333, 0.3333]
    >>> per_query(-np.eye(3), np.eye(3, dtype=bool), "recall_at_1").tolist()
    [0.0, 0.0, 0.0]
    """
    import torch
    from torchmetrics.functional.retrieval import retrieval_recall, retrieval_reciprocal_rank

    if metric == "mrr":
        fn = retrieval_reciprocal_rank
    elif metric.startswith("recall_at_"):
        k = int(metric[len("recall_at_"):])

        def fn(preds, target):
            return retrieval_recall(preds, target, top_k=k)
    else:
        raise ValueError(f"unknown retrieval metric {metric!r} (expected recall_at_K or mrr)")
    s = torch.as_tensor(np.asarray(sim, dtype=np.float64))  # [Q, C]
    # torchmetrics counts a candidate as retrieved only when its score is > 0; a cosine may be
    # <= 0, so each row is shifted to >= 1 first (the order, all these metrics use, is kept).
    s = s - s.min(dim=1, keepdim=True).values + 1.0
    r = torch.as_tensor(np.asarray(relevant, dtype=bool))  # [Q, C]
    return np.array([fn(s[i], r[i]).item() for i in range(len(s))], dtype=np.float64)


def retrieval_metrics(sim: np.ndarray, relevant: np.ndarray, *, bootstrap_samples: int = 0,
                      seed: int = 0) -> dict[str, float]:
    """recall_at_1/5/10 and mrr (means over queries) and, with bootstrap_samples, the 95%
    bootstrap CI of recall_at_10 (resampling queries).

    >>> m = retrieval_metrics(np.eye(4), np.eye(4, dtype=bool))
    >>> m["recall_at_1"], m["recall_at_10"], m["mrr"]
    (1.0, 1.0, 1.0)
    >>> m = retrieval_metrics(-np.eye(12), np.eye(12, dtype=bool))  # reversed: every partner ranked 12th
    >>> m["recall_at_10"], round(m["mrr"], 4)
    (0.0, 0.0833)
    """
    from components.evaluation.metrics import bootstrap_ci

    out = {name: float(per_query(sim, relevant, name).mean()) for name in METRICS}
    if bootstrap_samples:
        hits = per_query(sim, relevant, "recall_at_10")
        out["recall_at_10_ci_low"], out["recall_at_10_ci_high"] = bootstrap_ci(hits, bootstrap_samples, seed)
    return out
