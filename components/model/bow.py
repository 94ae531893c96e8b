"""A fitted bag-of-words classifier as a model: raw texts in, class probabilities out.

evaluate's TF-IDF+LR and NB-LR baselines (evaluation/baselines.py) choose their features and C
on val; `BowModel` keeps what they fitted (the CountVectorizer vocabularies, the TF-IDF idf or
the NB log-count ratios, the logistic regressions), so the winning one can be timed on the
frontier and, when no neural model of the run beats it, registered and served as
`<register.model_name>-baseline` (registry/bow_pyfunc.py). Torch-free: scikit-learn, numpy,
scipy, safetensors.

Folder layout (no pickle; the same model gives the same bytes): config.json (kind, name,
labels, blocks with their vectorizer settings, transform, classifier shapes), vocab.json (the
terms of each block in column order) and weights.safetensors (idf / ratios, coefficients).

    model.predict_proba(["a fine film"])   # [1, C] float64
    model.save(folder); BowModel.load(folder)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.core.errors import DataError, first_line

KIND = "encoderflow.bow"
CONFIG, VOCAB, WEIGHTS = "config.json", "vocab.json", "weights.safetensors"


def vectorizer(block: dict, vocabulary: list[str] | None = None):
    """The CountVectorizer of a block {"analyzer", "ngram_range", "min_df"} (fixed vocabulary when given)."""
    from sklearn.feature_extraction.text import CountVectorizer

    kwargs = {"analyzer": block["analyzer"], "ngram_range": tuple(block["ngram_range"])}
    if vocabulary is not None:
        return CountVectorizer(vocabulary={t: i for i, t in enumerate(vocabulary)}, **kwargs)
    return CountVectorizer(min_df=block.get("min_df", 1), **kwargs)


def logreg_from(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray):
    """A LogisticRegression whose predict_proba uses these fitted arrays (sigmoid for one row of
    coef, softmax otherwise: what scikit-learn's binary and multinomial fits predict)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression()
    lr.coef_, lr.intercept_, lr.classes_ = coef, intercept, classes
    lr.n_features_in_ = coef.shape[1]
    return lr


@dataclass
class BowModel:
    name: str  # "tfidf_lr" | "nbsvm"
    labels: list[str]
    blocks: list[dict]  # [{"analyzer", "ngram_range", "min_df"}], stacked side by side
    vectorizers: list  # fitted CountVectorizers, one per block
    transform: str  # "tfidf" (sublinear, l2 per block) | "binary"
    idf: list[np.ndarray] = field(default_factory=list)  # tfidf: [V_b] per block
    # logistic regressions: tfidf one (softmax / sigmoid over classes); nbsvm one per target
    # (binary data: class 1 vs 0; more classes: one-vs-rest), each on x * ratio
    models: list = field(default_factory=list)
    ratios: list[np.ndarray] = field(default_factory=list)  # nbsvm: [V] per model

    def features(self, texts: list[str]):
        """CSR [N, sum V_b]: each block's counts, TF-IDF'd (l2 per block) or binarized."""
        import scipy.sparse as sp
        from sklearn.preprocessing import normalize

        parts = []
        for i, vec in enumerate(self.vectorizers):
            x = vec.transform(texts).astype(np.float64)
            if self.transform == "tfidf":  # TfidfTransformer(sublinear_tf=True) with the fitted idf
                x.data = np.log(x.data) + 1.0
                x = normalize(x @ sp.diags(self.idf[i]))
            else:
                x = (x > 0).astype(np.float64)
            parts.append(x)
        return sp.hstack(parts, format="csr")

    def predict_proba(self, texts: list[str], batch_size: int = 0) -> np.ndarray:
        """[N, C] probabilities (batch_size is accepted for the frontier's timing calls)."""
        x = self.features(list(texts))
        c = len(self.labels)
        if self.transform == "tfidf":
            out = np.zeros((x.shape[0], c))
            out[:, self.models[0].classes_] = self.models[0].predict_proba(x)
            return out
        s = np.stack([m.predict_proba(x.multiply(r).tocsr())[:, 1] if m is not None else np.zeros(x.shape[0])
                      for r, m in zip(self.ratios, self.models)], axis=1)  # [N, models]
        if c == 2:
            return np.concatenate([1 - s, s], axis=1)
        total = s.sum(axis=1, keepdims=True)
        return np.where(total > 0, s / np.maximum(total, 1e-12), 1.0 / c)

    # ------------------------------------------------------------------ files
    def save(self, folder: Path, extra: dict | None = None) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, np.ndarray] = {}
        for i, idf in enumerate(self.idf):
            tensors[f"idf.{i}"] = np.ascontiguousarray(idf, dtype=np.float64)
        models = []
        for j, m in enumerate(self.models):
            models.append(m is not None)
            if m is not None:
                tensors[f"coef.{j}"] = np.ascontiguousarray(m.coef_, dtype=np.float64)
                tensors[f"intercept.{j}"] = np.ascontiguousarray(m.intercept_, dtype=np.float64)
                tensors[f"classes.{j}"] = np.ascontiguousarray(m.classes_, dtype=np.int64)
        for j, r in enumerate(self.ratios):
            tensors[f"ratio.{j}"] = np.ascontiguousarray(r, dtype=np.float64)
        save_file(tensors, str(folder / WEIGHTS))
        vocab = [[t for t, _ in sorted(v.vocabulary_.items(), key=lambda kv: kv[1])] for v in self.vectorizers]
        (folder / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
        config = {**(extra or {}), "kind": KIND, "format": 1, "name": self.name, "labels": self.labels,
                  "blocks": self.blocks, "transform": self.transform, "models": models}
        (folder / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "BowModel":
        """Rebuild a saved model; a missing or inconsistent file is a one-line DataError."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        for name in (CONFIG, VOCAB, WEIGHTS):
            if not (folder / name).is_file():
                raise DataError(f"{folder / name}: not found (expected a bag-of-words model folder)")
        try:
            config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
            if config.get("kind") != KIND:
                raise KeyError("kind")
            vocab = json.loads((folder / VOCAB).read_text(encoding="utf-8"))
            w = load_file(str(folder / WEIGHTS))
            vecs = [vectorizer(b, v) for b, v in zip(config["blocks"], vocab, strict=True)]
            models = [logreg_from(w[f"coef.{j}"], w[f"intercept.{j}"], w[f"classes.{j}"]) if present else None
                      for j, present in enumerate(config["models"])]
            ratios = [w[f"ratio.{j}"] for j in range(len(models))] if config["transform"] == "binary" else []
            idf = [w[f"idf.{i}"] for i in range(len(vecs))] if config["transform"] == "tfidf" else []
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise DataError(f"{folder}: not a valid bag-of-words model folder ({first_line(e, with_type=True)})") \
                from None
        return cls(config["name"], list(config["labels"]), config["blocks"], vecs, config["transform"], idf,
                   models, ratios)
