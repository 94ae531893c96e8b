"""Per-label decision thresholds for multi_label models, tuned on the val split.

A multi_label model scores each label with its own sigmoid; a label is predicted when its
probability reaches that label's threshold. finetune picks, for every label separately, the
threshold of THRESHOLD_GRID that maximizes the label's F1 on val, and saves the list in the
model folder's config.json ("thresholds", in labels.json order), so evaluate, register and
serving all decide the same way.

Ties (common on a small val split) go to the threshold nearest 0.5, then the lower one; a
label with no positive row in val has F1 0 everywhere and keeps 0.5.
"""

from __future__ import annotations

import numpy as np

DEFAULT = 0.5
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, ..., 0.95


def f1_per_label(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """F1 of each label column: 2tp / (2tp + fp + fn), 0 where that is 0/0.

    Not scikit-learn's f1_score(average=None): it reads a one-label (or one-row) indicator
    as binary and returns other values there; nor torchmetrics' (float32: it can tie two
    thresholds whose float64 F1s differ, and change the one chosen).

    >>> f1_per_label(np.array([[1, 0], [1, 0]]), np.array([[1, 0], [0, 0]])).round(3).tolist()
    [0.667, 0.0]
    """
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)  # [N, C]
    tp = (pred & target).sum(axis=0)
    denom = 2 * tp + (pred & ~target).sum(axis=0) + (~pred & target).sum(axis=0)  # 2tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def tune_thresholds(probs: np.ndarray, target: np.ndarray, grid=THRESHOLD_GRID) -> tuple[list[float], list[float]]:
    """(threshold per label, its val F1) maximizing each label's F1 over `grid`.

    probs [N, C] sigmoid probabilities, target [N, C] 0/1. With no rows: DEFAULT for all.

    >>> p = np.array([[0.9, 0.3], [0.4, 0.2], [0.2, 0.8]]); y = np.array([[1, 0], [1, 0], [0, 1]])
    >>> tune_thresholds(p, y, grid=(0.3, 0.5, 0.7))
    ([0.3, 0.5], [1.0, 1.0])
    """
    probs = np.asarray(probs, dtype=np.float64)
    target = np.asarray(target)
    n_labels = probs.shape[1] if probs.ndim == 2 else 0
    if len(probs) == 0:
        return [DEFAULT] * n_labels, [0.0] * n_labels
    # F1 of every (threshold, label): [T, C]
    scores = np.stack([f1_per_label(probs >= t, target) for t in grid])
    order = sorted(range(len(grid)), key=lambda i: (abs(grid[i] - DEFAULT), grid[i]))  # tie-break order
    best_t, best_f1 = [], []
    for c in range(n_labels):
        i = max(order, key=lambda i: scores[i, c])  # max() keeps the first of equal scores
        best_t.append(float(grid[i]))
        best_f1.append(round(float(scores[i, c]), 6))
    return best_t, best_f1


def apply_thresholds(probs: np.ndarray, thresholds) -> np.ndarray:
    """0/1 predictions [N, C]: probability >= the label's threshold.

    >>> apply_thresholds(np.array([[0.6, 0.3]]), [0.5, 0.25]).tolist()
    [[1, 1]]
    """
    return (np.asarray(probs) >= np.asarray(thresholds, dtype=np.float64)[None, :]).astype(np.int64)
