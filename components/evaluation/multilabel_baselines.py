"""multi_label baselines, scored next to the model by evaluate (scikit-learn; evaluate only).

- majority: each label's train frequency as its probability, threshold 0.5 (it predicts
  the labels on more than half of the train rows; usually none).
- tfidf_lr: TF-IDF + one-vs-rest logistic regression (one liblinear model per label), with
  the single_label baseline's feature sets and C grid (evaluation/baselines.py): word,
  char_wb or both and C are chosen on val macro-F1, each candidate with its per-label
  thresholds tuned on val (model/thresholds.py), as finetune tunes the model's.
NB-LR stays single_label only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from components.evaluation.baselines import BOTH, C_GRID, _candidates, _tfidf, count_features
from components.evaluation.multilabel import STATS, row_counts
from components.model.thresholds import DEFAULT, apply_thresholds, tune_thresholds


@dataclass(frozen=True)
class MultiBaseline:
    """A fitted multi_label baseline: test probabilities per label, thresholds tuned on val."""

    probs: np.ndarray  # [N_test, C]
    thresholds: list[float]
    analyzer: str
    c: float
    val_macro_f1: dict[str, float]  # best val macro-F1 of each analyzer tried ({} without val)


def _ovr_logreg(c: float, seed: int):
    """One-vs-rest logistic regression (one liblinear model per label). A label with one
    value in train gets sklearn's constant predictor (and its warning, silenced here)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    # liblinear's dual solver, as the binary single_label baseline (see _logreg)
    return OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear", dual=True, max_iter=2000,
                                                  random_state=seed))


def _fit_ovr(x, y: np.ndarray, c: float, seed: int):
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
        return _ovr_logreg(c, seed).fit(x, y)


def fit_tfidf_lr_ovr(train_text, train_y, val_text, val_y, test_text, seed: int = 0,
                     counts: dict | None = None) -> MultiBaseline:
    """multi_label TF-IDF + one-vs-rest logistic regression. The analyzer (word / char_wb /
    both) and C are chosen on val macro-F1, each candidate with its per-label thresholds
    tuned on val (model/thresholds.py, as finetune does); ties keep the earlier analyzer,
    then the smaller C. train_y / val_y: [N, C] 0/1."""
    if counts is None:
        counts = count_features(train_text, val_text, test_text)
    train_y, val_y = np.asarray(train_y).astype(np.int64), np.asarray(val_y).astype(np.int64)
    n_labels = train_y.shape[1]
    candidates = _candidates(counts, _tfidf)
    if not len(val_y):
        name = BOTH if BOTH in candidates else next(iter(candidates))
        xtr, _, xte = candidates[name]
        return MultiBaseline(_fit_ovr(xtr, train_y, 1.0, seed).predict_proba(xte), [DEFAULT] * n_labels,
                             name, 1.0, {})
    best, best_score, per_analyzer = None, -np.inf, {}
    for name, (xtr, xva, xte) in candidates.items():
        for c in C_GRID:
            model = _fit_ovr(xtr, train_y, c, seed)
            val_probs = model.predict_proba(xva)  # [N_val, C]
            thresholds, _ = tune_thresholds(val_probs, val_y)
            sums = row_counts(apply_thresholds(val_probs, thresholds), val_y).sum(axis=0)
            s = float(STATS["macro_f1"](sums, len(val_y)))
            per_analyzer[name] = max(per_analyzer.get(name, -np.inf), s)
            if s > best_score:
                best, best_score = (model, name, c, xte, thresholds), s
    model, name, c, xte, thresholds = best
    return MultiBaseline(model.predict_proba(xte), thresholds, name, c, per_analyzer)


def multilabel_baselines(train_text, train_y, val_text, val_y, test_text,
                         seed: int = 0) -> dict[str, tuple[np.ndarray, list[float]]]:
    """name -> (test probabilities [N, C], thresholds) of the multi_label baselines:
    "majority" (every label's train frequency, threshold 0.5: it predicts the labels on more
    than half of the train rows) and "tfidf_lr" (one-vs-rest). Inside an MLflow run the
    choice is logged as tags, like the single_label ones."""
    train_y = np.asarray(train_y, dtype=np.float64)
    fitted = fit_tfidf_lr_ovr(list(train_text), train_y, list(val_text), val_y, list(test_text), seed)
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.set_tags({"baseline.tfidf_lr.analyzer": fitted.analyzer, "baseline.tfidf_lr.C": str(fitted.c),
                         "baseline.tfidf_lr.val_macro_f1": ", ".join(f"{a} {s:.4f}" for a, s
                                                                     in fitted.val_macro_f1.items())})
    prior = train_y.mean(axis=0) if len(train_y) else np.zeros(train_y.shape[1])  # [C]
    return {"majority": (np.tile(prior, (len(test_text), 1)), [DEFAULT] * train_y.shape[1]),
            "tfidf_lr": (fitted.probs, fitted.thresholds)}
