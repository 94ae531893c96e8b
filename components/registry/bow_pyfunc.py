"""The MLflow pyfunc that serves a bag-of-words baseline (`<register.model_name>-baseline`).

When no neural model of a run beats its best bag-of-words baseline, register registers that
baseline (evaluate's models/baseline, a model/bow.py folder) so the user still leaves with the
best model. Same raw-text signature and output columns as every encoderflow model
(registry/frames.py); no torch: scikit-learn, scipy, numpy, pandas, safetensors and mlflow.

    model.predict(pd.DataFrame({"text": ["great film"]}))
    #   label  label_id  prob_negative  prob_positive
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from components.registry.frames import label_frame, to_texts

ALLOWED_IMPORTS = {"sklearn", "scipy", "numpy", "pandas", "safetensors", "mlflow"}


class BowPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around model.bow.BowModel (artifact "model" = models/baseline)."""

    def load_context(self, context):
        from components.model.bow import BowModel

        self.model = BowModel.load(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        output = (params or {}).get("output") or "label"
        if output != "label":
            from mlflow.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value(
                f"params.output: a bag-of-words baseline answers `label` only, got {output!r}")
        probs = np.asarray(self.model.predict_proba(to_texts(model_input)))  # [N, C]
        return label_frame(probs, list(self.model.labels))


ENTRY_MODULES = ("components.registry.bow_pyfunc", "components.model.bow")
