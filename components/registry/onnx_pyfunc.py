"""The torch-free MLflow pyfunc: an exported ONNX model behind ONNX Runtime (register.serving: onnx).

Same input, params and output columns as the torch pyfunc (registry/pyfunc.py; both answer
through frames.respond): label, label_id, prob_<label> (multi_label: labels, prob_<label>),
params output = label | embedding and batch_size. Its artifact "model" is a folder written
by `encoderflow export` (registry/onnx_export.py):

    model.onnx       (input_ids [B, T] int64, attention_mask [B, T] int64)
                     -> probs [B, C] (softmax; sigmoid for multi_label), pooled [B, H]
    tokenizer.json   the model's own tokenizer (tokenization stays in `tokenizers`)
    onnx.json        {"format", "kind", "family", "precision", "labels", "task", "thresholds",
                      "max_length", "pad_id", "outputs", "bi_encoder"?}
    biencoder/       pair + bi-encoder only: the same three files, output "text_embedding" [B, H]

The runtime (ONNX Runtime session, tokenizer, OnnxClassifier) is registry/onnx_runtime.py,
which imports no MLflow; this module adds only the pyfunc wrapper.

This file ships inside the model (code_paths, found by the import walk from ENTRY_MODULES)
and imports only onnxruntime, tokenizers, numpy, pandas and mlflow (pinned as mlflow-skinny):
never torch.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from components.registry.frames import respond
from components.registry.onnx_runtime import OnnxClassifier

ENTRY_MODULES = ("components.registry.onnx_pyfunc",)
# Third-party imports the shipped code may use (checked by the tests): no torch.
ALLOWED_IMPORTS = {"onnxruntime", "tokenizers", "numpy", "pandas", "mlflow"}
# The distribution pinned for an import name: MLflow's lightweight one, which has the pyfunc
# and its scoring server (fastapi + uvicorn) without the tracking server's dependencies
# (pyarrow, scipy, scikit-learn, matplotlib, sqlalchemy, ...): a fresh serving venv of the
# pins is 419 MiB instead of 974 (pip install here). It reads a registry over HTTP, not a
# sqlite file: serve a downloaded model folder, or a models:/ URI from a full MLflow.
DISTRIBUTIONS = {"mlflow": "mlflow-skinny"}


class OnnxModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around `OnnxClassifier` (artifact "model" = an exported folder)."""

    def load_context(self, context):
        self.classifier = OnnxClassifier(context.artifacts["model"])
        # A served model takes its largest batch's memory now, not on its first large request
        # (OnnxClassifier.warm_up); one-shot scoring opts out with model_config={"warm_up": False}.
        self.warmed_up = bool((getattr(context, "model_config", None) or {}).get("warm_up", True))
        if self.warmed_up:
            self.classifier.warm_up()

    # The pd.DataFrame hint: as in registry/pyfunc.py, MLflow keeps the logged signature.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        return respond(self.classifier, model_input, params)
