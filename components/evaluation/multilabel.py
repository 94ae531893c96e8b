"""multi_label scoring: metrics from per-label probabilities and thresholds, and bootstraps
of metrics that are not a mean over rows (macro-F1, micro-F1).

Every multi_label scorer in evaluate (the model, the baselines) goes through
`multilabel_metrics`, torchmetrics' multilabel functions on the thresholded 0/1
predictions; keys are flat like the single_label ones (`macro_f1`,
`precision.<label>`), plus `micro_f1`, `subset_accuracy` (exact match of the whole
label set), `hamming_loss` and `f1.<label>`.

An F1 is a function of the summed tp / fp / fn counts, so a bootstrap resample is a sum of
per-row count vectors (`row_counts`). `resampled` draws the same rows as
metrics.bootstrap_ci (same seed -> same resamples); the gate's paired test on an F1 sums the
same count rows (components/evaluation/gate.py).

The multi_label baselines are in evaluation/multilabel_baselines.py.
"""

from __future__ import annotations

import math

import numpy as np

LOG_EPS = 1e-7  # log_loss below: mean BCE, clipped like metrics.log_loss (see there: why not sklearn's)


def row_counts(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-row count vectors [N, 3C + 1]: tp per label, fp per label, fn per label, exact match.

    >>> row_counts(np.array([[1, 0]]), np.array([[1, 1]])).tolist()
    [[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]]
    """
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)  # [N, C]
    exact = (pred == target).all(axis=1, keepdims=True)  # [N, 1]
    return np.concatenate([pred & target, pred & ~target, ~pred & target, exact], axis=1).astype(np.float64)


def _split(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """[..., 3C + 1] summed counts -> tp, fp, fn [..., C] and the exact-match count [...]."""
    c = (sums.shape[-1] - 1) // 3
    return sums[..., :c], sums[..., c:2 * c], sums[..., 2 * c:3 * c], sums[..., -1]


def macro_f1(sums: np.ndarray) -> np.ndarray:
    """Mean over labels of 2tp / (2tp + fp + fn) (0 where 0/0, as torchmetrics), from summed counts."""
    tp, fp, fn, _ = _split(sums)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0).mean(axis=-1)


def micro_f1(sums: np.ndarray) -> np.ndarray:
    """2 sum(tp) / (2 sum(tp) + sum(fp) + sum(fn)), from summed counts."""
    tp, fp, fn, _ = (x.sum(axis=-1) if x.ndim == sums.ndim else x for x in _split(sums))
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0)


def subset_accuracy(sums: np.ndarray, n: int) -> np.ndarray:
    return _split(sums)[3] / n


STATS = {"macro_f1": lambda sums, n: macro_f1(sums), "micro_f1": lambda sums, n: micro_f1(sums),
         "subset_accuracy": subset_accuracy}


def resampled(rows: list[np.ndarray], stat: str, samples: int, seed: int, chunk: int = 100) -> np.ndarray:
    """`stat` of each of `samples` bootstrap resamples of the rows, for every array in `rows`
    (each [N, 3C + 1], same N; resampled with the SAME row indices): [len(rows), samples].

    The indices are metrics.bootstrap_ci's: rng(seed).integers(0, N, (samples, N)).
    """
    n = len(rows[0])
    idx = np.random.default_rng(seed).integers(0, n, size=(samples, n))  # [S, N]
    out = np.empty((len(rows), samples))
    for k, r in enumerate(rows):
        for s in range(0, samples, chunk):  # [chunk, N, K] at a time
            out[k, s:s + chunk] = STATS[stat](r[idx[s:s + chunk]].sum(axis=1), n)
    return out


def stat_ci(rows: np.ndarray, stat: str, samples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of `stat` over the rows' count vectors."""
    values = resampled([rows], stat, samples, seed)[0]
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))


def multilabel_metrics(probs: np.ndarray, target: np.ndarray, label_names: list[str], thresholds, *,
                       ece_bins: int = 10, bootstrap_samples: int = 1000, seed: int = 0) -> dict[str, float]:
    """All evaluate metrics of one multi_label scorer: probs [N, C] per-label probabilities,
    target [N, C] 0/1, a threshold per label. ROC-AUC is the mean over labels with both
    classes in the split (left out when there is none); ece is the calibration error of
    every (row, label) probability as a binary prediction."""
    import torch
    import torchmetrics.functional.classification as tmf

    probs = np.asarray(probs, dtype=np.float64)
    target = np.asarray(target).astype(np.int64)
    n, c = probs.shape
    if c != len(label_names):
        raise ValueError(f"probs has {c} columns but there are {len(label_names)} labels")
    if n == 0:
        raise ValueError("no examples to score")
    pred = (probs >= np.asarray(thresholds, dtype=np.float64)[None, :]).astype(np.int64)  # [N, C]
    p, y, yhat = torch.tensor(probs), torch.tensor(target), torch.tensor(pred)
    out: dict[str, float] = {
        "n": float(n),
        "macro_f1": tmf.multilabel_f1_score(yhat, y, num_labels=c, average="macro").item(),
        "micro_f1": tmf.multilabel_f1_score(yhat, y, num_labels=c, average="micro").item(),
        "subset_accuracy": tmf.multilabel_exact_match(yhat, y, num_labels=c).item(),
        "hamming_loss": tmf.multilabel_hamming_distance(yhat, y, num_labels=c, average="micro").item(),
        "log_loss": float(-np.mean(target * np.log(np.clip(probs, LOG_EPS, 1.0))
                                   + (1 - target) * np.log(np.clip(1 - probs, LOG_EPS, 1.0)))),
        "ece": tmf.binary_calibration_error(p.flatten(), y.flatten(), n_bins=ece_bins, norm="l1").item(),
    }
    precision = tmf.multilabel_precision(yhat, y, num_labels=c, average=None)  # [C]
    recall = tmf.multilabel_recall(yhat, y, num_labels=c, average=None)  # [C]
    f1 = tmf.multilabel_f1_score(yhat, y, num_labels=c, average=None)  # [C]
    for i, name in enumerate(label_names):
        out[f"precision.{name}"] = precision[i].item()
        out[f"recall.{name}"] = recall[i].item()
        out[f"f1.{name}"] = f1[i].item()
    aucs = [tmf.binary_auroc(p[:, i], y[:, i]).item() for i in range(c) if 0 < target[:, i].sum() < n]
    if aucs:
        out["roc_auc"] = float(np.mean(aucs))
    rows = row_counts(pred, target)
    out["macro_f1_ci_low"], out["macro_f1_ci_high"] = stat_ci(rows, "macro_f1", bootstrap_samples, seed)
    out["subset_accuracy_ci_low"], out["subset_accuracy_ci_high"] = stat_ci(
        rows, "subset_accuracy", bootstrap_samples, seed)
    return {k: float(v) for k, v in out.items() if not math.isnan(v)}

