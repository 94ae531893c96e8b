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
import pandas as pd

# The input / output handling both flavours share (torch-free); re-exported for callers.
from components.registry.frames import (  # noqa: F401
    OUTPUTS, PAIR, PROB, TEXT, label_frame, labels_frame, respond, to_pairs, to_texts)

# Third-party imports the shipped code may use (checked by the register tests).
ALLOWED_IMPORTS = {"torch", "tokenizers", "numpy", "pandas", "safetensors", "mlflow"}


class EncoderflowModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around `TextClassifier` (artifact "model" = models/finetuned)."""

    def load_context(self, context):
        from components.model.classifier import TextClassifier

        self.classifier = TextClassifier.from_folder(context.artifacts["model"])

    # The pd.DataFrame hint tells MLflow not to infer a schema from hints (the logged
    # signature is explicit); dicts, Series and lists are accepted all the same.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        return respond(self.classifier, model_input, params)


# --- packaging (used by register; stdlib only) --------------------------------------------

# The models-from-code entry file MLflow executes at load time (no pickle): it
# imports this module from the model's own code/ folder.
ENTRY_FILE = "encoderflow_model.py"
ENTRY_TEMPLATE = '''"""encoderflow pyfunc entry (MLflow models-from-code); the code lives in code/components."""
import mlflow

from {module} import {cls}

mlflow.models.set_model({cls}())
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


def pip_requirements(third_party: set[str], prefer: dict[str, str] | None = None) -> list[str]:
    """Pin the distributions behind the given import names to the installed versions.

    The local version label is dropped (torch 2.13.0+cpu -> torch==2.13.0). An import name
    several distributions provide gets its namesake, or the one `prefer` names for it
    ({"mlflow": "mlflow-skinny"}).
    """
    dists = md.packages_distributions()
    reqs = set()
    for name in third_party:
        found = dists.get(name, [name])
        # "mlflow" is provided by mlflow, mlflow-skinny and mlflow-tracing: the namesake by default
        chosen = (prefer or {}).get(name, name)
        for dist in [chosen] if chosen in found else found:
            version = md.version(dist).split("+")[0]
            reqs.add(f"{dist}=={version}")
    return sorted(reqs)
