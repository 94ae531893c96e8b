"""Log a model folder as a new version of a registered MLflow pyfunc, with its lineage.

Used by the register stage for both registered models (the student,
models/finetuned, and the teacher, models/teacher):
- `log_pyfunc`: the torch pyfunc of components/registry/pyfunc.py, or (register.serving:
  onnx) the torch-free one of registry/onnx_pyfunc.py over an ONNX export, shipping only
  the inference modules (code_paths), pinned pip requirements (`transformers` only for a
  Hugging Face backbone served by torch), a signature with a `text` column and
  `output` / `batch_size` params;
- `lineage_tags`: encoderflow.* tags (git, dvc.lock, data, tokenizer, the folder's
  DVC hash, stage run ids, Prefect flow run);
- `metrics_table`: the markdown table of a version's description.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from components.core.paths import Paths
from components.model.io import TOKENIZER

TABLE_METRICS = ("accuracy", "macro_f1", "micro_f1", "subset_accuracy", "roc_auc", "log_loss", "ece",
                 "recall_at_10", "mrr")
EXAMPLE_TEXTS = ["a warm, funny and beautifully acted film", "dull, predictable and far too long"]
MD5_TAG = "encoderflow.model_md5"  # DVC's hash of the registered folder (lineage.dir_md5)


def metrics_table(metrics: dict[str, float], highlight: str = "model") -> str:
    """Markdown table of the model, the teacher (when evaluated) and each baseline from flat
    metrics.json keys; the row of `highlight` ("model" or "teacher") in bold.

    >>> print(metrics_table({"model.accuracy": 0.8, "baseline.tfidf_lr.accuracy": 0.7}))
    | scorer | accuracy |
    |---|---|
    | **model** | 0.8000 |
    | baseline: tfidf_lr | 0.7000 |
    >>> print(metrics_table({"model.accuracy": 0.8, "teacher.accuracy": 0.9}, highlight="teacher"))
    | scorer | accuracy |
    |---|---|
    | model | 0.8000 |
    | **teacher** | 0.9000 |
    """
    leads = [s for s in ("model", "static", "teacher") if s == "model" or any(k.startswith(s + ".") for k in metrics)]
    scorers = leads + sorted({k.split(".")[1] for k in metrics if k.startswith("baseline.")})
    prefix = {s: (f"{s}." if s in leads else f"baseline.{s}.") for s in scorers}
    cols = [m for m in TABLE_METRICS if any(prefix[s] + m in metrics for s in scorers)]
    lines = ["| scorer | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for s in scorers:
        name = (f"**{s}**" if s == highlight else s) if s in leads else \
            (f"**baseline: {s}**" if highlight == f"baseline.{s}" else f"baseline: {s}")
        cells = [f"{metrics[prefix[s] + c]:.4f}" if prefix[s] + c in metrics else "" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _stage_run_id(paths: Paths, stage: str, report: str, client, experiment_id: str) -> str:
    """Run id from reports/<report>.json, else the latest MLflow run of that stage."""
    path = paths.report(report)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        for key in ("mlflow_run_id", "run_id"):
            if isinstance(data.get(key), str) and data[key]:
                return data[key]
    runs = client.search_runs([experiment_id], f"tags.`encoderflow.stage` = '{stage}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else ""


def lineage_tags(paths: Paths, client, experiment_id: str, run_id: str, folder: Path,
                 stages: tuple[str, ...]) -> dict[str, str]:
    """encoderflow.* tags of the model in `folder`: git sha/dirty, dvc.lock, data, its tokenizer
    and folder hashes, the MLflow run ids of `stages` and of this register run, the flow run."""
    from components.core import lineage

    tags = {k: v for k, v in lineage.tags(paths.root).items() if k.startswith(lineage.PREFIX)}
    if (folder / TOKENIZER).is_file():  # a bag-of-words baseline has its vocabulary instead
        tags[lineage.PREFIX + "tokenizer_md5"] = lineage.file_md5(folder / TOKENIZER)
    tags[MD5_TAG] = lineage.dir_md5(folder)
    for stage in stages:
        report = "metrics" if stage == "evaluate" else stage
        tags[f"{lineage.PREFIX}{stage}_run_id"] = _stage_run_id(paths, stage, report, client, experiment_id)
    tags[lineage.PREFIX + "register_run_id"] = run_id
    return tags


def _signature(labels: list[str], task: str = "single_label", bi_encoder: bool = False):
    """Input `text` (+ `text_pair` for pair: optional with a bi-encoder, whose `embedding`
    reads single texts), the label outputs, params `output` and `batch_size`."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import Array

    from components.registry.frames import input_columns

    if task == "multi_label":  # the label set of each text (a list of names)
        outputs = [ColSpec(Array("string"), "labels")]
    else:
        outputs = [ColSpec("string", "label"), ColSpec("long", "label_id")]
    outputs += [ColSpec("double", f"prob_{name}") for name in labels]
    inputs = [ColSpec("string", name, required=required) for name, required in input_columns(task, bi_encoder)]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs),
                          params=ParamSchema([ParamSpec("output", "string", "label"),
                                              ParamSpec("batch_size", "long", 64)]))


def log_pyfunc(paths: Paths, model_name: str, labels: list[str], backbone_kind: str,
               folder: Path | None = None, artifact_name: str = "model", task: str = "single_label",
               bi_encoder: bool = False, flavor: str = "torch", onnx_folder: Path | None = None):
    """Log + register the pyfunc of `folder` (default models/finetuned) in the active run under
    `artifact_name`; returns mlflow's ModelInfo. flavor "torch": registry/pyfunc.py (every
    TextClassifier folder); "bow": registry/bow_pyfunc.py (a bag-of-words baseline folder).
    With `onnx_folder` (an export of that folder, registry/onnx_export.py) the version is the
    torch-free ONNX pyfunc instead: it carries the export and pins onnxruntime, tokenizers,
    numpy, pandas and mlflow-skinny (never torch)."""
    import mlflow
    import pandas as pd

    from components.registry import bow_pyfunc, onnx_pyfunc
    from components.registry import pyfunc as pyfunc_model

    code_root = Path(__file__).resolve().parents[2]  # the folder holding `components`
    flavour = onnx_pyfunc if onnx_folder is not None else bow_pyfunc if flavor == "bow" else pyfunc_model
    files, third = pyfunc_model.inference_files(code_root, flavour.ENTRY_MODULES)
    if onnx_folder is not None and "torch" in third:  # a guard on the import walk, not on the user
        raise RuntimeError(f"the ONNX pyfunc's code imports torch ({', '.join(sorted(third))})")
    if backbone_kind != "hf":
        third.discard("transformers")  # only Hugging Face backbones need it at inference
    entry_class = ("OnnxModel" if onnx_folder is not None else "BowPyfunc" if flavor == "bow"
                   else "EncoderflowModel")
    with tempfile.TemporaryDirectory(prefix="encoderflow-code-") as tmp:
        for src in files:  # copy only the inference modules, keeping the package layout
            dest = Path(tmp) / src.relative_to(code_root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        entry = Path(tmp) / pyfunc_model.ENTRY_FILE
        entry.write_text(pyfunc_model.ENTRY_TEMPLATE.format(module=flavour.__name__, cls=entry_class),
                         encoding="utf-8")
        return mlflow.pyfunc.log_model(
            name=artifact_name,
            python_model=str(entry),  # models-from-code: nothing is pickled
            artifacts={"model": str(onnx_folder or folder or paths.finetuned)},
            code_paths=[str(Path(tmp) / "components")],
            pip_requirements=pyfunc_model.pip_requirements(third, onnx_pyfunc.DISTRIBUTIONS if onnx_folder else None),
            signature=_signature(labels, task, bi_encoder),
            input_example=pd.DataFrame({"text": EXAMPLE_TEXTS, "text_pair": EXAMPLE_TEXTS[::-1]} if task == "pair"
                                       else {"text": EXAMPLE_TEXTS}),
            registered_model_name=model_name,
            # the ONNX pyfunc warms up at load unless told otherwise (load.load_model: one-shot scoring)
            model_config={"warm_up": True} if onnx_folder is not None else None,
        )
