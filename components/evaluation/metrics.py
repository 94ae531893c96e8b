"""Classification metrics from predicted probabilities (torchmetrics where it has them).

Every scorer in evaluate (the model, each baseline) goes through
`classification_metrics`, so all of them are measured the same way on the same
split. Keys are flat and label names are embedded, e.g. `precision.positive`;
evaluate prefixes them (`model.`, `baseline.tfidf_lr.`).
"""

from __future__ import annotations

import math

import numpy as np

LOG_EPS = 1e-7  # probabilities are clipped to [eps, 1] before log-loss


def _tensors(probs: np.ndarray, labels: np.ndarray):
    import torch

    p = torch.tensor(np.asarray(probs, dtype=np.float64))  # [N, C] (a copy: inputs may be read-only)
    y = torch.tensor(np.asarray(labels, dtype=np.int64))  # [N]
    return p, y


def log_loss(probs: np.ndarray, labels: np.ndarray, eps: float = LOG_EPS) -> float:
    """Mean negative log-probability of the true class (torchmetrics has none).

    Not scikit-learn's log_loss: it clips at float64 eps, not LOG_EPS (a true class at p = 0
    costs 36.0 there, 16.1 here, and metrics.json would move), and warns on every float32
    softmax row that misses 1 by an ulp; elsewhere the two agree to the last bit.

    >>> round(log_loss(np.array([[0.5, 0.5], [0.2, 0.8]]), np.array([0, 1])), 6)
    0.458145
    """
    probs = np.asarray(probs, dtype=np.float64)
    picked = probs[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.mean(np.log(np.clip(picked, eps, 1.0))))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> list[dict]:
    """Top-1 confidence vs accuracy in `n_bins` equal-width bins (reliability diagram).

    Same binning as torchmetrics' calibration error ([lo, hi) bins); a confidence
    of exactly 1.0 goes into the last bin here. Empty bins are kept (count 0).

    >>> [b["count"] for b in reliability_bins(np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([0, 0]), 2)]
    [0, 2]
    """
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)  # [N]
    correct = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        sel = idx == b
        n = int(sel.sum())
        bins.append({"bin": b, "lower": float(edges[b]), "upper": float(edges[b + 1]), "count": n,
                     "confidence": float(conf[sel].mean()) if n else 0.0,
                     "accuracy": float(correct[sel].mean()) if n else 0.0})
    return bins


def bootstrap_ci(correct: np.ndarray, samples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of a vector (0/1 correctness per row).

    Seeded, so deterministic. Kept rather than scipy.stats.bootstrap (which the gate uses): scipy
    draws the same resamples, but its quantiles differ in the last bit (up to ~1e-17 measured),
    enough to move a 6th decimal of metrics.json now and then.

    >>> bootstrap_ci(np.ones(20), 100, seed=0)
    (1.0, 1.0)
    """
    correct = np.asarray(correct, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(correct), size=(samples, len(correct)))  # [S, N]
    means = correct[idx].mean(axis=1)  # [S]
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def classification_metrics(probs: np.ndarray, labels: np.ndarray, label_names: list[str], *,
                           ece_bins: int = 10, bootstrap_samples: int = 1000,
                           seed: int = 0) -> dict[str, float]:
    """All evaluate metrics for one scorer: probs [N, C] (rows sum to 1), labels [N].

    ROC-AUC is left out (not NaN: metrics.json stays valid JSON) when the split
    holds a single class.
    """
    import torchmetrics.functional.classification as tmf

    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, c = probs.shape
    if c != len(label_names):
        raise ValueError(f"probs has {c} columns but there are {len(label_names)} labels")
    if n == 0:
        raise ValueError("no examples to score")
    p, y = _tensors(probs, labels)
    out: dict[str, float] = {
        "n": float(n),
        "accuracy": tmf.multiclass_accuracy(p, y, num_classes=c, average="micro").item(),
        "macro_f1": tmf.multiclass_f1_score(p, y, num_classes=c, average="macro").item(),
        "log_loss": log_loss(probs, labels),
        "ece": tmf.multiclass_calibration_error(p, y, num_classes=c, n_bins=ece_bins, norm="l1").item(),
    }
    precision = tmf.multiclass_precision(p, y, num_classes=c, average=None)  # [C]
    recall = tmf.multiclass_recall(p, y, num_classes=c, average=None)  # [C]
    for i, name in enumerate(label_names):
        out[f"precision.{name}"] = precision[i].item()
        out[f"recall.{name}"] = recall[i].item()
    if len(np.unique(labels)) > 1:
        if c == 2:  # binary: the positive-class (id 1) probability
            out["roc_auc"] = tmf.binary_auroc(p[:, 1], y).item()
        else:  # one-vs-rest, macro average
            out["roc_auc"] = tmf.multiclass_auroc(p, y, num_classes=c, average="macro").item()
    correct = probs.argmax(axis=1) == labels
    out["accuracy_ci_low"], out["accuracy_ci_high"] = bootstrap_ci(correct, bootstrap_samples, seed)
    return {k: float(v) for k, v in out.items() if not math.isnan(v)}


def flatten(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """`{"accuracy": 0.9}` -> `{"model.accuracy": 0.9}`.

    >>> flatten("model", {"accuracy": 0.9})
    {'model.accuracy': 0.9}
    """
    return {f"{prefix}.{k}": v for k, v in metrics.items()}


DIGITS = 6  # metrics.json's precision


def rounded(metrics: dict[str, float], digits: int = DIGITS) -> dict[str, float]:
    """Sorted keys, values rounded: a byte-stable metrics.json for DVC.

    >>> rounded({"b": 0.1234567, "a": 1})
    {'a': 1.0, 'b': 0.123457}
    """
    return {k: round(float(metrics[k]), digits) for k in sorted(metrics)}
