"""The raw-text signature every registered encoderflow pyfunc shares, torch-free.

Input: a DataFrame (or dict / Series / list) with a string column `text` (pair models: `text`
and `text_pair`); output: one row per text with `label`, `label_id` and `prob_<label>` per
class (multi_label: `labels`, the list of names over their thresholds, and `prob_<label>`).
The torch pyfunc (registry/pyfunc.py), the bag-of-words baseline (registry/bow_pyfunc.py)
and the ONNX one read and write through these functions, so they answer alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OUTPUTS = ("label", "embedding")
TEXT = "text"
PROB = "prob_"


def to_texts(model_input) -> list[str]:
    """Normalize any accepted input to a list of strings (None -> "").

    >>> to_texts(pd.DataFrame({"text": ["a", None]}))
    ['a', '']
    >>> to_texts(["x", "y"])
    ['x', 'y']
    >>> to_texts({"text": ["p", "q"]})
    ['p', 'q']
    """
    if isinstance(model_input, dict):
        model_input = pd.DataFrame({TEXT: _flatten(model_input.get(TEXT, []))})
    if isinstance(model_input, pd.DataFrame):
        if TEXT not in model_input.columns:
            raise ValueError(f"input has no '{TEXT}' column (columns: {', '.join(map(str, model_input.columns))})")
        values = _flatten(model_input[TEXT].tolist())
    elif isinstance(model_input, (pd.Series, np.ndarray, list, tuple)):
        values = _flatten(list(model_input))
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        raise ValueError(f"expected a DataFrame with a '{TEXT}' column or a list of strings, "
                         f"got {type(model_input).__name__}")
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]


PAIR = "text_pair"


def to_pairs(model_input) -> list[tuple[str, str]]:
    """pair models: a DataFrame (or dict) with `text` and `text_pair` columns -> (a, b) tuples.

    >>> to_pairs(pd.DataFrame({"text": ["a", None], "text_pair": ["b", "c"]}))
    [('a', 'b'), ('', 'c')]
    """
    if isinstance(model_input, dict):
        model_input = pd.DataFrame({k: _flatten(model_input.get(k, [])) for k in (TEXT, PAIR)})
    if not isinstance(model_input, pd.DataFrame) or PAIR not in model_input.columns:
        have = ", ".join(map(str, model_input.columns)) if isinstance(model_input, pd.DataFrame) else \
            type(model_input).__name__
        raise ValueError(f"a pair model needs '{TEXT}' and '{PAIR}' columns (got: {have})")
    firsts = to_texts(model_input)
    seconds = to_texts(pd.DataFrame({TEXT: model_input[PAIR].tolist()}))
    return list(zip(firsts, seconds))


def _flatten(values) -> list:
    """MLflow turns {"text": [a, b]} into ONE row holding the list; undo that."""
    out: list = []
    for v in values:
        if isinstance(v, (list, tuple, np.ndarray)):
            out.extend(list(v))
        else:
            out.append(v)
    return out


def label_frame(probs: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """probs [N, C] -> one row per text: label, label_id, prob_<label> per class.

    >>> label_frame(np.array([[0.2, 0.8]]), ["neg", "pos"]).iloc[0].to_dict()
    {'label': 'pos', 'label_id': 1, 'prob_neg': 0.2, 'prob_pos': 0.8}
    """
    ids = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)  # [N]
    frame = pd.DataFrame({"label": [labels[i] for i in ids], "label_id": ids.astype(np.int64)})
    for j, name in enumerate(labels):
        frame[f"{PROB}{name}"] = probs[:, j].astype(np.float64) if len(probs) else np.zeros(0)
    return frame


def labels_frame(probs: np.ndarray, labels: list[str], thresholds) -> pd.DataFrame:
    """multi_label: probs [N, C] -> one row per text: labels (list of names), prob_<label>.

    >>> labels_frame(np.array([[0.7, 0.2, 0.6]]), ["a", "b", "c"], [0.5, 0.5, 0.65]).iloc[0].to_dict()
    {'labels': ['a'], 'prob_a': 0.7, 'prob_b': 0.2, 'prob_c': 0.6}
    """
    chosen = np.asarray(probs) >= np.asarray(thresholds, dtype=np.float64)[None, :]  # [N, C]
    frame = pd.DataFrame({"labels": [[labels[j] for j in np.flatnonzero(row)] for row in chosen]})
    for j, name in enumerate(labels):
        frame[f"{PROB}{name}"] = probs[:, j].astype(np.float64) if len(probs) else np.zeros(0)
    return frame
