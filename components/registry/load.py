"""The model batch predict / embed score with: an MLflow model URI or a local model folder.

    model = load_model("models:/encoderflow@champion")   # mlflow.pyfunc.load_model
    model = load_model("models/finetuned")              # a fine-tuned model folder
    model.predict(pd.DataFrame({"text": texts}), params={"output": "label"})

A local folder is a fine-tuned model folder as finetune / teacher write it (models/finetuned,
models/teacher) or an ONNX export of one (`encoderflow export`, served without torch), served by the registered pyfunc's own class without MLflow's store (so a
folder scores exactly like its registered version), or an MLflow model folder (one with an
MLmodel file). Anything else is a one-line error naming the folder or URI.
"""

from __future__ import annotations

from pathlib import Path

from components.core.errors import EncoderflowError, first_line


def is_local(uri: str) -> bool:
    """True for a filesystem path (no URI scheme), False for models:/..., runs:/..., s3://, file:...

    >>> is_local("models/finetuned"), is_local("/abs/models/finetuned"), is_local("models:/encoderflow@champion")
    (True, True, False)
    """
    import re

    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", uri) is None


class FolderModel:
    """A fine-tuned model folder (or an ONNX export of one) behind the registered pyfunc's
    `predict(data, params=)`.

    It is the pyfunc class itself (components/registry/pyfunc.py, loading with
    `TextClassifier.from_folder`; for an export, registry/onnx_pyfunc.py, without torch), so
    a folder scores exactly like its registered version.
    """

    def __init__(self, folder: Path):
        from types import SimpleNamespace

        from components.registry.onnx_runtime import OnnxClassifier, is_export

        if is_export(folder):  # onnx_runtime, not the pyfunc module: no MLflow import (~2 s cold)
            self.classifier = OnnxClassifier(folder)
        else:
            from components.registry.pyfunc import EncoderflowModel

            impl = EncoderflowModel()
            impl.load_context(SimpleNamespace(artifacts={"model": str(folder)}))
            self.classifier = impl.classifier
        clf = self.classifier  # the inputs its registered version's signature names (pair_model reads them)
        inputs = _Inputs(clf.task, getattr(clf, "biencoder", None) is not None)
        self.metadata = SimpleNamespace(get_input_schema=lambda: inputs)

    def predict(self, data, params: dict | None = None):
        from components.registry.frames import respond

        return respond(self.classifier, data, params)  # what both pyfuncs' predict does


class _Inputs:
    """The input names of a registered version's signature (frames.input_columns) without
    building an MLflow schema (importing MLflow costs ~2 s)."""

    def __init__(self, task: str, bi_encoder: bool):
        from components.registry.frames import input_columns

        self.columns = input_columns(task, bi_encoder)

    def input_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def required_input_names(self) -> list[str]:
        return [name for name, required in self.columns if required]


def load_folder(folder: str | Path):
    """A local model folder: an MLflow model (MLmodel file) or a fine-tuned model folder.

    Anything else is a one-line error naming the folder.
    """
    from components.model.io import CONFIG, TOKENIZER, WEIGHTS

    folder = Path(folder)
    if not folder.exists():
        raise EncoderflowError(f"{folder}: model folder not found (expected a fine-tuned model folder "
                               "such as models/finetuned, or an MLflow model URI such as models:/NAME@champion)")
    if not folder.is_dir():
        raise EncoderflowError(f"{folder}: not a model folder (a file)")
    if (folder / "MLmodel").is_file():
        return load_model(folder.resolve().as_uri())
    if (folder / "onnx.json").is_file():  # an ONNX export (`encoderflow export`)
        return FolderModel(folder)
    missing = [n for n in (WEIGHTS, CONFIG, TOKENIZER) if not (folder / n).is_file()]
    if missing:
        raise EncoderflowError(f"{folder}: not a model folder (no {', '.join(missing)}; expected a folder "
                               "written by finetune or teacher, or an MLflow model with an MLmodel file)")
    if _is_encoder_only(folder / CONFIG):
        raise EncoderflowError(f"{folder}: an encoder folder without a classification head (pretrain's "
                               "output); predict with a fine-tuned folder such as models/finetuned")
    return FolderModel(folder)


def _is_encoder_only(config: Path) -> bool:
    """config.json as io.save_encoder writes it (pretrain): an encoder, no `kind`, no labels."""
    import json

    try:
        meta = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # TextClassifier.from_folder reports it
    return isinstance(meta, dict) and "encoder" in meta and "kind" not in meta


def load_model(uri: str):
    """The model to score with: `load_folder` for a local path, else mlflow.pyfunc.load_model,
    with a one-line error for a bad URI. One-shot scoring skips the warm-up of a version that
    has one (the ONNX pyfunc's, for a server: registry/onnx_pyfunc.py)."""
    if is_local(uri):
        return load_folder(uri)
    import mlflow

    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri)  # what load_model does first
        flavor = mlflow.models.Model.load(local).flavors.get(mlflow.pyfunc.FLAVOR_NAME, {})
        config = flavor.get(mlflow.pyfunc.MODEL_CONFIG) or {}  # the model_config it was logged with
        return mlflow.pyfunc.load_model(local, model_config={"warm_up": False} if "warm_up" in config else None)
    except Exception as e:  # noqa: BLE001 - MlflowException, OSError, ... all mean "no such model"
        raise EncoderflowError(f"model {uri!r} could not be loaded ({first_line(e, 200)})") from None
