"""The MLflow pyfunc that serves a fine-tuned encoderflow model.

This file ships inside the model (MLflow `code_paths`), together with the
inference modules it needs (components/model/classifier.py and what that
imports, found by `inference_files`). At load time it needs only torch,
tokenizers, numpy, pandas (+ safetensors) and mlflow: never Lightning, the
training code or the project checkout.

Input: a DataFrame (or dict / Series) with a string column `text`; a plain
list of strings works when calling the python model directly (MLflow's schema
check turns a list into an unnamed column, so through `pyfunc.load_model`
pass `pd.DataFrame({"text": texts})`).

    model.predict(pd.DataFrame({"text": ["great film"]}))
    #   label  label_id  prob_negative  prob_positive
    model.predict(df, params={"output": "embedding"})   # np.ndarray [N, H] float32

A multi_label model returns `labels` (the list of label names whose probability
reaches the label's tuned threshold; [] when none does) and prob_<label> per label
(independent sigmoid probabilities), instead of label / label_id.

A pair model takes `text` and `text_pair` columns (one pair per row) and returns
label / label_id / prob_<label> like a single_label model; `embedding` is the pooled
vector of the pair read as "[CLS] text [SEP] text_pair [SEP]" (a cross-encoder). A pair
model trained with finetune.bi_encoder embeds single texts instead: `embedding` is its
bi-encoder's unit vector of each `text` (one per row; `text_pair` is optional and not read).
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

OUTPUTS = ("label", "embedding")
TEXT = "text"
PROB = "prob_"
# Third-party imports the shipped code may use (checked by the register tests).
ALLOWED_IMPORTS = {"torch", "tokenizers", "numpy", "pandas", "safetensors", "mlflow"}


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


class EncoderflowModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around `TextClassifier` (artifact "model" = models/finetuned)."""

    def load_context(self, context):
        from components.model.classifier import TextClassifier

        self.classifier = TextClassifier.from_folder(context.artifacts["model"])

    # The pd.DataFrame hint tells MLflow not to infer a schema from hints (the logged
    # signature is explicit); dicts, Series and lists are accepted all the same.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        params = params or {}
        output = params.get("output") or "label"
        if output not in OUTPUTS:
            from mlflow.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value(
                f"params.output: expected one of {', '.join(OUTPUTS)}, got {output!r}")
        batch_size = int(params.get("batch_size") or 64)
        biencoder = getattr(self.classifier, "biencoder", None)
        if output == "embedding" and biencoder is not None:  # pair + bi-encoder: one vector per text
            return np.asarray(biencoder.embed(to_texts(model_input), batch_size=batch_size), dtype=np.float32)
        texts = to_pairs(model_input) if self.classifier.pair else to_texts(model_input)
        if output == "embedding":
            return np.asarray(self.classifier.embed(texts, batch_size=batch_size), dtype=np.float32)
        probs = np.asarray(self.classifier.predict_proba(texts, batch_size=batch_size))  # [N, C]
        if self.classifier.multi_label:
            return labels_frame(probs, list(self.classifier.labels), self.classifier.thresholds)
        return label_frame(probs, list(self.classifier.labels))


# --- packaging (used by register; stdlib only) --------------------------------------------

# The models-from-code entry file MLflow executes at load time (no pickle): it
# imports this module from the model's own code/ folder.
ENTRY_FILE = "encoderflow_model.py"
ENTRY_SOURCE = '''"""encoderflow pyfunc entry (MLflow models-from-code); the code lives in code/components."""
import mlflow

from components.registry.pyfunc import EncoderflowModel

mlflow.models.set_model(EncoderflowModel())
'''

ENTRY_MODULES = ("components.registry.pyfunc", "components.model.classifier")


def inference_files(root: Path, entries=ENTRY_MODULES) -> tuple[list[Path], set[str]]:
    """Static import walk from the entry modules: (project files, third-party top-level names).

    Follows `components.*` imports (incl. relative ones and package __init__
    files); imports under `if TYPE_CHECKING:` are skipped.
    """
    from components.core.imports import walk

    seen, third = walk(Path(root), entries, own=("components",))
    return sorted(set(seen.values())), third


def pip_requirements(third_party: set[str]) -> list[str]:
    """Pin the distributions behind the given import names to the installed versions.

    The local version label is dropped (torch 2.13.0+cpu -> torch==2.13.0).
    """
    dists = md.packages_distributions()
    reqs = set()
    for name in third_party:
        found = dists.get(name, [name])
        # "mlflow" is provided by mlflow, mlflow-skinny and mlflow-tracing: pin the namesake
        for dist in [name] if name in found else found:
            version = md.version(dist).split("+")[0]
            reqs.add(f"{dist}=={version}")
    return sorted(reqs)
