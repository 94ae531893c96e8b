"""The model2vec baseline: what a user would build with model2vec alone, scored next to our models.

model2vec's static embeddings of the teacher checkpoint (the teacher stage's models/model2vec,
`model2vec.distill(<teacher.init>, pca_dims=teacher.static_dims)`), then model2vec's own
classifier, `StaticModelForClassification.fit`, on the gold train labels with val for early
stopping: the fast CPU classifier many users would pick instead of training an encoder. It
is a baseline (no transfer set, no teacher labels), so the static student must beat it.

    fitted = fit(Path("models/model2vec"), train_x, train_y, val_x, val_y, labels, seed=42)
    fitted.predict_proba(test_x)       # [N, C] in labels order
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.core.errors import DataError, first_line


@dataclass
class Model2VecBaseline:
    model: object  # model2vec.train.StaticModelForClassification
    columns: np.ndarray  # [C]: the model's output column of each of our label ids
    train_s: float

    def predict_proba(self, texts: list[str], batch_size: int = 1024) -> np.ndarray:
        """[N, C] probabilities, columns in labels.json order."""
        if not len(texts):
            return np.zeros((0, len(self.columns)))
        probs = self.model.predict_proba(list(texts), batch_size=max(1, batch_size))
        return np.asarray(probs, dtype=np.float64)[:, self.columns]

    @property
    def params(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))


def fit(folder: Path, train_x: list[str], train_y: np.ndarray, val_x: list[str], val_y: np.ndarray,
        labels: list[str], seed: int) -> Model2VecBaseline:
    """Fit model2vec's classifier on the gold train labels (val: its early stopping). model2vec's
    fit seeds python, numpy and torch globally with `seed` (its seed_everything)."""
    import logging

    from model2vec import StaticModel
    from model2vec.train import StaticModelForClassification

    logging.getLogger("model2vec").setLevel(logging.WARNING)
    try:
        static = StaticModel.from_pretrained(str(folder))
    except Exception as e:  # noqa: BLE001 - model2vec/safetensors raise many kinds
        raise DataError(f"{folder}: cannot load the model2vec embeddings ({first_line(e, with_type=True)}); "
                        "re-run the teacher stage", stage="evaluate") from None
    names = [labels[i] for i in np.asarray(train_y)]  # string labels: model2vec's classes_ are the names
    has_val = len(val_x) > 0 and len(set(names)) > 1
    t0 = time.perf_counter()
    clf = StaticModelForClassification.from_static_model(model=static, out_dim=len(labels))
    clf.fit(list(train_x), names, X_val=list(val_x) if has_val else None,
            y_val=[labels[i] for i in np.asarray(val_y)] if has_val else None, random_seed=seed, device="cpu")
    train_s = time.perf_counter() - t0
    classes = [str(c) for c in clf.classes_]
    columns = np.asarray([classes.index(name) if name in classes else -1 for name in labels])
    if (columns < 0).any():  # a label absent from train: model2vec has no column for it
        raise DataError(f"model2vec baseline: labels {[n for n, c in zip(labels, columns) if c < 0]} have no "
                        "train rows", stage="evaluate")
    return Model2VecBaseline(clf.eval(), columns, train_s)
