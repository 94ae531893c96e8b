"""Cheap baselines scored next to the model (scikit-learn; evaluate only).

Each baseline is fit on train text, may pick its regularisation on val, and
returns class probabilities [N, C] for the texts it is asked about, so evaluate
scores it with exactly the same metric code as the model.

- majority: the train class prior (argmax = the majority class).
- tfidf_lr: TF-IDF word uni+bigrams + logistic regression.
- nbsvm: NB-weighted logistic regression (Wang & Manning 2012): binarized
  uni+bigram counts scaled by the log-count ratio r, one-vs-rest for >2 classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

C_GRID = (0.25, 1.0, 4.0, 16.0)  # inverse regularisation strengths tried on val


def majority(train_labels: np.ndarray, n_classes: int, n: int) -> np.ndarray:
    """Train prior for every row: [n, C].

    >>> majority(np.array([1, 1, 0]), 2, 1).round(3).tolist()
    [[0.333, 0.667]]
    """
    counts = np.bincount(np.asarray(train_labels), minlength=n_classes).astype(np.float64)
    return np.tile(counts / counts.sum(), (n, 1))


def _full_proba(model, x, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class, even ones absent from train."""
    out = np.zeros((x.shape[0], n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _pick_c(fit, score, has_val: bool, grid=C_GRID):
    """Fit one model per C, keep the best val score (ties: the first, i.e. stronger reg).

    Without val rows there is nothing to choose on: C = 1.
    """
    grid = grid if has_val else (1.0,)
    best, best_score = None, -np.inf
    for c in grid:
        model = fit(c)
        s = score(model)
        if s > best_score:
            best, best_score = model, s
    return best


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean()) if len(labels) else 0.0


def tfidf_lr(train_text, train_y, val_text, val_y, test_text, n_classes: int, seed: int = 0) -> np.ndarray:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression; C chosen on val."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    xtr = vec.fit_transform(train_text)
    xva, xte = vec.transform(val_text), vec.transform(test_text)
    train_y, val_y = np.asarray(train_y), np.asarray(val_y)

    def fit(c):
        return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(xtr, train_y)

    model = _pick_c(fit, lambda m: _accuracy(_full_proba(m, xva, n_classes), val_y), len(val_y) > 0)
    return _full_proba(model, xte, n_classes)


@dataclass
class NBLogReg:
    """NB-weighted logistic regression on binarized uni+bigram counts."""

    c: float = 1.0
    alpha: float = 1.0  # Laplace smoothing of the per-class feature counts
    seed: int = 0
    ratios: list = field(default_factory=list)  # one log-count-ratio vector [V] per model
    models: list = field(default_factory=list)

    def fit(self, x, y: np.ndarray, n_classes: int) -> "NBLogReg":
        from sklearn.linear_model import LogisticRegression

        self.n_classes = n_classes
        # Binary: one model for class 1 vs 0. Otherwise one-vs-rest per class.
        targets = [1] if n_classes == 2 else list(range(n_classes))
        self.ratios, self.models = [], []
        for t in targets:
            pos = np.asarray(y) == t
            p = self.alpha + np.asarray(x[pos].sum(axis=0)).ravel()  # [V]
            q = self.alpha + np.asarray(x[~pos].sum(axis=0)).ravel()  # [V]
            r = np.log((p / p.sum()) / (q / q.sum()))  # [V] log-count ratio
            self.ratios.append(r)
            self.models.append(LogisticRegression(C=self.c, max_iter=2000, random_state=self.seed)
                               .fit(x.multiply(r).tocsr(), pos.astype(int)) if 0 < pos.sum() < len(pos)
                               else None)
        return self

    def predict_proba(self, x) -> np.ndarray:
        cols = []
        for r, m in zip(self.ratios, self.models):
            cols.append(m.predict_proba(x.multiply(r).tocsr())[:, 1] if m is not None
                        else np.zeros(x.shape[0]))
        s = np.stack(cols, axis=1)  # [N, models]
        if self.n_classes == 2:
            return np.concatenate([1 - s, s], axis=1)
        total = s.sum(axis=1, keepdims=True)
        return np.where(total > 0, s / np.maximum(total, 1e-12), 1.0 / self.n_classes)


def nbsvm(train_text, train_y, val_text, val_y, test_text, n_classes: int, seed: int = 0) -> np.ndarray:
    """NBSVM-style baseline (logistic loss instead of hinge, for probabilities)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(ngram_range=(1, 2), binary=True)
    xtr = vec.fit_transform(train_text).astype(np.float64)
    xva, xte = vec.transform(val_text).astype(np.float64), vec.transform(test_text).astype(np.float64)
    train_y, val_y = np.asarray(train_y), np.asarray(val_y)

    def fit(c):
        return NBLogReg(c=c, seed=seed).fit(xtr, train_y, n_classes)

    model = _pick_c(fit, lambda m: _accuracy(m.predict_proba(xva), val_y), len(val_y) > 0)
    return model.predict_proba(xte)


def sklearn_baselines(train_text, train_y, val_text, val_y, test_text, n_classes: int,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """name -> test probabilities [N, C] for every scikit-learn baseline."""
    args = (list(train_text), train_y, list(val_text), val_y, list(test_text), n_classes)
    return {
        "majority": majority(train_y, n_classes, len(test_text)),
        "tfidf_lr": tfidf_lr(*args, seed=seed),
        "nbsvm": nbsvm(*args, seed=seed),
    }
