"""What both pyfunc flavours share: raw input -> texts, probabilities -> output frames (no torch).

The torch pyfunc (registry/pyfunc.py), the ONNX one (registry/onnx_pyfunc.py) and the
bag-of-words baseline (registry/bow_pyfunc.py) take the same input and answer the same columns, so a client cannot tell them apart: both call
`respond(model, model_input, params)`, where `model` is a TextClassifier or an
OnnxClassifier (the same duck type: labels, task flags, thresholds, predict_proba, embed
and an optional per-text `biencoder`).

This module ships inside both registered models (MLflow code_paths): it imports only
numpy, pandas and (lazily) mlflow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OUTPUTS = ("label", "embedding")
TEXT = "text"
PAIR = "text_pair"
PROB = "prob_"


def input_columns(task: str, bi_encoder: bool = False) -> list[tuple[str, bool]]:
    """(name, required) of every input column of a registered version's signature: `text`, and
    for pair also `text_pair`, optional with a bi-encoder (whose `embedding` reads single texts).

    >>> input_columns("pair")
    [('text', True), ('text_pair', True)]
    >>> input_columns("pair", bi_encoder=True)
    [('text', True), ('text_pair', False)]
    """
    return [(TEXT, True)] + [(PAIR, not bi_encoder)] * (task == "pair")


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


def read_params(params: dict | None) -> tuple[str, int]:
    """(output, batch_size) of a request's params; a bad output is MLflow's 400 error.

    >>> read_params(None), read_params({"output": "embedding", "batch_size": 8})
    (('label', 64), ('embedding', 8))
    """
    params = params or {}
    output = params.get("output") or "label"
    if output not in OUTPUTS:
        from mlflow.exceptions import MlflowException

        raise MlflowException.invalid_parameter_value(
            f"params.output: expected one of {', '.join(OUTPUTS)}, got {output!r}")
    return output, int(params.get("batch_size") or 64)


def respond(model, model_input, params: dict | None = None):
    """The pyfunc answer of `model` (a TextClassifier or an OnnxClassifier) to one request:
    the label frame (multi_label: labels_frame), or float32 vectors [N, H] for
    params.output = embedding (a pair model with a bi-encoder embeds each `text` alone)."""
    output, batch_size = read_params(params)
    biencoder = getattr(model, "biencoder", None)
    if output == "embedding" and biencoder is not None:  # pair + bi-encoder: one vector per text
        return np.asarray(biencoder.embed(to_texts(model_input), batch_size=batch_size), dtype=np.float32)
    texts = to_pairs(model_input) if model.pair else to_texts(model_input)
    if output == "embedding":
        return np.asarray(model.embed(texts, batch_size=batch_size), dtype=np.float32)
    probs = np.asarray(model.predict_proba(texts, batch_size=batch_size))  # [N, C]
    if model.multi_label:
        return labels_frame(probs, list(model.labels), model.thresholds)
    return label_frame(probs, list(model.labels))
