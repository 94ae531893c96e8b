"""Cheap baselines scored next to the model (scikit-learn; evaluate only).

Each baseline is fit on train text, picks its features and regularisation on
val, and returns class probabilities [N, C] for the texts it is asked about, so
evaluate scores it with exactly the same metric code as the model.

- majority: the train class prior (argmax = the majority class).
- tfidf_lr: sublinear TF-IDF + logistic regression.
- nbsvm: NB-weighted logistic regression (Wang & Manning 2012): binarized
  counts scaled by the log-count ratio r, one-vs-rest for >2 classes.

Both learned baselines try three analyzers and every C in C_GRID, and keep the
pair with the best val accuracy (ties: the earlier analyzer, then the smaller C):
- "word": word 1-2 grams (scikit-learn's token pattern, words of 2+ characters);
- "char_wb": character 1-4 grams inside word boundaries, seen in 2+ train texts;
- "word+char_wb": both blocks side by side (what a FeatureUnion of the two gives).
Word tokens do not exist in unspaced scripts: on Chinese reviews a whole clause
is one "word", and character n-grams win by 14-16 points (README, Baselines).
Without val rows nothing is chosen: word+char_wb with C = 1.

The counts are computed once per analyzer and shared by both baselines; the
choice is in `Baseline` and, inside an MLflow run, in its tags.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from components.core.errors import DataError

C_GRID = (0.25, 1.0, 4.0, 16.0)  # inverse regularisation strengths tried on val
WORD, CHAR, BOTH = "word", "char_wb", "word+char_wb"  # the analyzers, in tie-break order
# Character 1-grams keep one-character words (好, 差); up to 4 covers most English
# stems. On the English sample 2-5 grams scored the same on val with more features.
WORD_NGRAMS, CHAR_NGRAMS = (1, 2), (1, 4)
CHAR_MIN_DF = 2  # a character n-gram seen in one train text only is noise (and most of V)


@dataclass(frozen=True)
class Baseline:
    """A fitted baseline's test probabilities and what val chose."""

    probs: np.ndarray  # [N_test, C]
    analyzer: str
    c: float
    val_accuracy: dict[str, float]  # best val accuracy of each analyzer tried ({} without val)
    model: object = None  # the fitted classifier of the choice (LogisticRegression or NBLogReg)

    @property
    def best_val(self) -> float | None:
        return self.val_accuracy.get(self.analyzer) if self.val_accuracy else None


def majority(train_labels: np.ndarray, n_classes: int, n: int) -> np.ndarray:
    """Train prior for every row: [n, C].

    >>> majority(np.array([1, 1, 0]), 2, 1).round(3).tolist()
    [[0.333, 0.667]]
    """
    counts = np.bincount(np.asarray(train_labels), minlength=n_classes).astype(np.float64)
    return np.tile(counts / counts.sum(), (n, 1))


def count_features(train_text, val_text, test_text, fitted: dict | None = None) -> dict[str, tuple]:
    """analyzer -> (train, val, test) sparse count matrices [N, V], vocabulary from train.
    `fitted`, when given, receives analyzer -> its fitted CountVectorizer.

    An analyzer that finds no features in the train text is left out (e.g. "word"
    when every text is one character); with neither, a DataError. Below, each
    unspaced text is one "word"; 6 character n-grams occur in 2+ texts
    (" ", "好", "看", "好看", "看 ", "好看 ").

    >>> f = count_features(["好看", "很好看", "难看"], ["好"], ["难"])
    >>> sorted(f), f["word"][0].shape, f["char_wb"][0].shape
    (['char_wb', 'word'], (3, 3), (3, 6))
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizers = {WORD: CountVectorizer(ngram_range=WORD_NGRAMS),
                   CHAR: CountVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, min_df=CHAR_MIN_DF)}
    out = {}
    for name, vec in vectorizers.items():
        try:
            xtr = vec.fit_transform(train_text)
        except ValueError:  # "empty vocabulary" / "no terms remain" after min_df
            continue
        out[name] = (xtr, vec.transform(val_text), vec.transform(test_text))
        if fitted is not None:
            fitted[name] = vec
    if not out:
        raise DataError(f"baselines: no word or character features in the {len(train_text)} train texts")
    return out


def _side_by_side(blocks) -> object:
    """Column-stack sparse matrices [N, V1], [N, V2], ... -> CSR [N, V1 + V2 + ...].

    A FeatureUnion of parts that each pick one precomputed block: it stacks its
    parts' outputs exactly like a FeatureUnion of vectorizers, without counting
    the texts again (and scipy, which has sparse.hstack, is no declared dependency).
    """
    from sklearn.pipeline import FeatureUnion
    from sklearn.preprocessing import FunctionTransformer

    parts = [(str(i), FunctionTransformer(lambda bl, i=i: bl[i])) for i in range(len(blocks))]
    return FeatureUnion(parts).fit_transform(list(blocks))


def _candidates(counts: dict[str, tuple], transform) -> dict[str, tuple]:
    """analyzer -> transformed (train, val, test); the union stacks the transformed blocks,
    so each block keeps its own TF-IDF row norm, as in a FeatureUnion of two TfidfVectorizers."""
    out = {name: transform(*mats) for name, mats in counts.items()}
    if WORD in out and CHAR in out:
        out[BOTH] = tuple(_side_by_side(pair) for pair in zip(out[WORD], out[CHAR]))
    return out


def _tfidf(xtr, xva, xte):
    from sklearn.feature_extraction.text import TfidfTransformer

    tf = TfidfTransformer(sublinear_tf=True).fit(xtr)
    return tuple(tf.transform(x) if x.shape[0] else x.astype(np.float64) for x in (xtr, xva, xte))  # 0 rows: no val


def _binary(xtr, xva, xte):
    return tuple((x > 0).astype(np.float64).tocsr() for x in (xtr, xva, xte))


def _logreg(c: float, seed: int, y: np.ndarray):
    """Logistic regression. 2 classes: liblinear's dual coordinate descent, which
    suits text (fewer rows than features): on the sample it is 10-30x faster than
    lbfgs or the primal liblinear solver, at the same val accuracy. It shuffles
    with `seed`, so it stays deterministic. More classes: lbfgs (multinomial),
    which liblinear does not do."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) <= 2:
        return LogisticRegression(C=c, solver="liblinear", dual=True, max_iter=2000, random_state=seed)
    return LogisticRegression(C=c, max_iter=2000, random_state=seed)


def _full_proba(model, x, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class, even ones absent from train."""
    out = np.zeros((x.shape[0], n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean()) if len(labels) else 0.0


def _select(candidates: dict[str, tuple], fit, predict, val_y: np.ndarray) -> Baseline:
    """Fit every (analyzer, C), keep the best val accuracy, predict test with it."""
    if not len(val_y):  # nothing to choose on
        name = BOTH if BOTH in candidates else next(iter(candidates))
        xtr, _, xte = candidates[name]
        model = fit(xtr, 1.0)
        return Baseline(predict(model, xte), name, 1.0, {}, model)
    best, best_score, per_analyzer = None, -np.inf, {}
    for name, (xtr, xva, xte) in candidates.items():
        for c in C_GRID:
            model = fit(xtr, c)
            s = _accuracy(predict(model, xva), val_y)
            per_analyzer[name] = max(per_analyzer.get(name, -np.inf), s)
            if s > best_score:  # strict: ties keep the earlier analyzer / smaller C
                best, best_score = (model, name, c, xte), s
    model, name, c, xte = best
    return Baseline(predict(model, xte), name, c, per_analyzer, model)


def fit_tfidf_lr(train_text, train_y, val_text, val_y, test_text, n_classes: int, seed: int = 0,
                 counts: dict | None = None) -> Baseline:
    """TF-IDF (sublinear tf) + logistic regression; analyzer and C chosen on val.

    `counts` (from count_features) saves recounting when nbsvm uses the same texts.
    """
    if counts is None:
        counts = count_features(train_text, val_text, test_text)
    train_y = np.asarray(train_y)
    return _select(_candidates(counts, _tfidf), lambda x, c: _logreg(c, seed, train_y).fit(x, train_y),
                   lambda m, x: _full_proba(m, x, n_classes), np.asarray(val_y))


@dataclass
class NBLogReg:
    """NB-weighted logistic regression on binarized counts."""

    c: float = 1.0
    alpha: float = 1.0  # Laplace smoothing of the per-class feature counts
    seed: int = 0
    ratios: list = field(default_factory=list)  # one log-count-ratio vector [V] per model
    models: list = field(default_factory=list)

    def fit(self, x, y: np.ndarray, n_classes: int) -> "NBLogReg":
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
            target = pos.astype(int)
            self.models.append(_logreg(self.c, self.seed, target).fit(x.multiply(r).tocsr(), target)
                               if 0 < pos.sum() < len(pos) else None)
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


def fit_nbsvm(train_text, train_y, val_text, val_y, test_text, n_classes: int, seed: int = 0,
              counts: dict | None = None) -> Baseline:
    """NBSVM-style baseline (logistic loss instead of hinge, for probabilities);
    analyzer and C chosen on val."""
    if counts is None:
        counts = count_features(train_text, val_text, test_text)
    train_y = np.asarray(train_y)
    return _select(_candidates(counts, _binary), lambda x, c: NBLogReg(c=c, seed=seed).fit(x, train_y, n_classes),
                   lambda m, x: m.predict_proba(x), np.asarray(val_y))


def text_model(name: str, b: Baseline, vectorizers: dict, train_counts: dict, labels: list[str]):
    """The fitted baseline `b` as a model.bow.BowModel that predicts raw texts (frontier timing,
    `<name>-baseline` registration). `train_counts`: analyzer -> train count matrix (the idf)."""
    from sklearn.feature_extraction.text import TfidfTransformer

    from components.model.bow import BowModel

    names = [WORD, CHAR] if b.analyzer == BOTH else [b.analyzer]
    blocks = [{"analyzer": "word" if n == WORD else "char_wb", "ngram_range": list(WORD_NGRAMS if n == WORD else
               CHAR_NGRAMS), "min_df": 1 if n == WORD else CHAR_MIN_DF} for n in names]
    vecs = [vectorizers[n] for n in names]
    if name == "tfidf_lr":
        idf = [TfidfTransformer(sublinear_tf=True).fit(train_counts[n]).idf_ for n in names]
        return BowModel(name, labels, blocks, vecs, "tfidf", idf=idf, models=[b.model])
    return BowModel(name, labels, blocks, vecs, "binary", models=list(b.model.models), ratios=list(b.model.ratios))


def fit_text_models(train_text, train_y, val_text, val_y, test_text, labels: list[str],
                    seed: int = 0) -> tuple[dict[str, Baseline], dict]:
    """(fit_all's baselines, name -> BowModel of each): the fitted baselines as text models."""
    train_text, val_text, test_text = list(train_text), list(val_text), list(test_text)
    vectorizers: dict = {}
    counts = count_features(train_text, val_text, test_text, vectorizers)
    args = (train_text, train_y, val_text, val_y, test_text, len(labels))
    fitted = {"tfidf_lr": fit_tfidf_lr(*args, seed=seed, counts=counts),
              "nbsvm": fit_nbsvm(*args, seed=seed, counts=counts)}
    train_counts = {n: m[0] for n, m in counts.items()}
    return fitted, {n: text_model(n, b, vectorizers, train_counts, list(labels)) for n, b in fitted.items()}


def tfidf_lr(*args, **kwargs) -> np.ndarray:
    """fit_tfidf_lr's test probabilities [N, C]."""
    return fit_tfidf_lr(*args, **kwargs).probs


def nbsvm(*args, **kwargs) -> np.ndarray:
    """fit_nbsvm's test probabilities [N, C]."""
    return fit_nbsvm(*args, **kwargs).probs


def fit_all(train_text, train_y, val_text, val_y, test_text, n_classes: int, seed: int = 0) -> dict[str, Baseline]:
    """name -> Baseline for the learned scikit-learn baselines (counts shared)."""
    train_text, val_text, test_text = list(train_text), list(val_text), list(test_text)
    args = (train_text, train_y, val_text, val_y, test_text, n_classes)
    counts = count_features(train_text, val_text, test_text)
    return {"tfidf_lr": fit_tfidf_lr(*args, seed=seed, counts=counts),
            "nbsvm": fit_nbsvm(*args, seed=seed, counts=counts)}


def choice_tags(fitted: dict[str, Baseline]) -> dict[str, str]:
    """MLflow tags describing what val chose (metrics.json stays numeric).

    >>> choice_tags({"nbsvm": Baseline(np.zeros((1, 2)), "char_wb", 4.0, {"word": 0.7, "char_wb": 0.85})})
    {'baseline.nbsvm.analyzer': 'char_wb', 'baseline.nbsvm.C': '4.0', 'baseline.nbsvm.val_accuracy': 'word 0.7000, char_wb 0.8500'}
    """
    tags = {}
    for name, b in fitted.items():
        tags[f"baseline.{name}.analyzer"] = b.analyzer
        tags[f"baseline.{name}.C"] = str(b.c)
        tags[f"baseline.{name}.val_accuracy"] = ", ".join(f"{a} {s:.4f}" for a, s in b.val_accuracy.items())
    return tags


def sklearn_baselines(train_text, train_y, val_text, val_y, test_text, n_classes: int,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """name -> test probabilities [N, C] for every scikit-learn baseline.

    Inside an active MLflow run (the evaluate stage's) the choices are logged as
    tags (`choice_tags`).
    """
    fitted = fit_all(train_text, train_y, val_text, val_y, test_text, n_classes, seed)
    mlflow = sys.modules.get("mlflow")  # not imported -> no run can be active; don't import it here
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.set_tags(choice_tags(fitted))
    return {"majority": majority(train_y, n_classes, len(test_text)),
            **{name: b.probs for name, b in fitted.items()}}
