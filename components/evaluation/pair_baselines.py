"""pair baselines, scored next to the model by evaluate (scikit-learn; evaluate only).

- majority: the train label frequencies for every pair,
- tfidf_lr: a logistic regression on pair features built from ONE TF-IDF space (fitted on
  both sides of the train pairs): [v_a, v_b, v_a * v_b, |v_a - v_b|, cos(v_a, v_b)]
  (the elementwise product and difference carry the overlap a concatenation alone cannot),
  with the analyzer (word 1-2 grams / char_wb 2-5 grams) and C chosen on val accuracy.

Texts are (text, text_pair) tuples, as data/splits.text_split returns them for pair data.
"""

from __future__ import annotations

import numpy as np

from components.evaluation.baselines import majority

ANALYZERS = {"word": dict(analyzer="word", ngram_range=(1, 2)),
             "char_wb": dict(analyzer="char_wb", ngram_range=(2, 5))}
C_GRID = (0.25, 1.0, 4.0)


def pair_features(vec, pairs):
    """Sparse [N, 4V + 1] features of (a, b) pairs in the fitted TF-IDF space `vec`.

    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> v = TfidfVectorizer().fit(["a cat", "a dog"])  # V = 2 ("a" is too short a token)
    >>> x = pair_features(v, [("a cat", "a cat"), ("a cat", "a dog")])
    >>> x.shape, round(float(x[0, -1]), 3)
    ((2, 9), 1.0)
    """
    import scipy.sparse as sp

    va = vec.transform([a for a, _ in pairs])  # [N, V], rows L2-normalised
    vb = vec.transform([b for _, b in pairs])  # [N, V]
    cos = np.asarray(va.multiply(vb).sum(axis=1))  # [N, 1]
    return sp.hstack([va, vb, va.multiply(vb), abs(va - vb), sp.csr_matrix(cos)]).tocsr()


def tfidf_lr(train_x, train_y, val_x, val_y, test_x, n_classes: int, seed: int = 0):
    """(test probabilities [N, C], the choice {"analyzer", "C"}); the choice on val accuracy."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    best = None
    for name, kw in ANALYZERS.items():
        vec = TfidfVectorizer(sublinear_tf=True, min_df=1, **kw).fit([t for p in train_x for t in p])
        xtr, xva = pair_features(vec, train_x), pair_features(vec, val_x) if len(val_x) else None
        for c in C_GRID:
            lr = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(xtr, train_y)
            acc = float((lr.predict(xva) == val_y).mean()) if xva is not None else 0.0
            if best is None or acc > best[0]:
                best = (acc, name, c, vec, lr)
    _, name, c, vec, lr = best
    probs = np.zeros((len(test_x), n_classes))
    probs[:, lr.classes_] = lr.predict_proba(pair_features(vec, test_x))  # a class absent from train: 0
    return probs, {"analyzer": name, "C": c}


def pair_baselines(train_x, train_y, val_x, val_y, test_x, n_classes: int, seed: int = 0):
    """name -> test probabilities [N, C]; the TF-IDF choice is logged as tags in an active run."""
    import sys

    probs, choice = tfidf_lr(train_x, train_y, val_x, val_y, test_x, n_classes, seed)
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.set_tags({f"baseline.tfidf_lr.{k}": str(v) for k, v in choice.items()})
    return {"majority": majority(train_y, n_classes, len(test_x)), "tfidf_lr": probs}
