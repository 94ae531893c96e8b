"""register stage: log models/finetuned as an MLflow pyfunc, register a version, run the gate.

1. Check the registry answers (fail fast, no alias touched if not).
2. In the register MLflow run: log the pyfunc (code_paths = only the inference
   modules, explicit pinned pip requirements, signature with a `text` column
   and an `output` param), registering a new version of `register.model_name`.
3. Tag the version with its lineage (git, dvc.lock, data, tokenizer, stage run
   ids, Prefect flow run) and describe it with a metrics table vs the baselines.
4. Gate (components/evaluation/gate.py): re-score @champion and the new version on the
   current test split; move @champion or @challenger (components/registry/client.py).
5. Write reports/register.json (version, decision, numbers).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from components.core.config import Params
from components.core.errors import DataError
from components.core.paths import Paths
from components.model.io import CONFIG, TOKENIZER
from components.stages import table

STAGE = "register"
RUN_STAGES = ("pretrain", "finetune", "evaluate")
TABLE_METRICS = ("accuracy", "macro_f1", "roc_auc", "log_loss", "ece")
EXAMPLE_TEXTS = ["a warm, funny and beautifully acted film", "dull, predictable and far too long"]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run the upstream stages first)", stage=STAGE) from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})", stage=STAGE) from None


def metrics_table(metrics: dict[str, float]) -> str:
    """Markdown table of the model vs each baseline from flat metrics.json keys.

    >>> print(metrics_table({"model.accuracy": 0.8, "baseline.tfidf_lr.accuracy": 0.7}))
    | scorer | accuracy |
    |---|---|
    | **model** | 0.8000 |
    | baseline: tfidf_lr | 0.7000 |
    """
    scorers = ["model"] + sorted({k.split(".")[1] for k in metrics if k.startswith("baseline.")})
    prefix = {s: ("model." if s == "model" else f"baseline.{s}.") for s in scorers}
    cols = [m for m in TABLE_METRICS if any(prefix[s] + m in metrics for s in scorers)]
    lines = ["| scorer | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for s in scorers:
        name = "**model**" if s == "model" else f"baseline: {s}"
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


def lineage_tags(paths: Paths, client, experiment_id: str, run_id: str) -> dict[str, str]:
    """encoderflow.* tags: git sha/dirty, dvc.lock, data, tokenizer, stage run ids, flow run."""
    from components.core import lineage

    tags = {k: v for k, v in lineage.tags(paths.root).items() if k.startswith(lineage.PREFIX)}
    tags[lineage.PREFIX + "tokenizer_md5"] = lineage.file_md5(paths.finetuned / TOKENIZER)
    for stage in RUN_STAGES:
        report = "metrics" if stage == "evaluate" else stage
        tags[f"{lineage.PREFIX}{stage}_run_id"] = _stage_run_id(paths, stage, report, client, experiment_id)
    tags[lineage.PREFIX + "register_run_id"] = run_id
    return tags


def _signature(labels: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    outputs = [ColSpec("string", "label"), ColSpec("long", "label_id")]
    outputs += [ColSpec("double", f"prob_{name}") for name in labels]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs),
                          params=ParamSchema([ParamSpec("output", "string", "label"),
                                              ParamSpec("batch_size", "long", 64)]))


def log_pyfunc(paths: Paths, model_name: str, labels: list[str], backbone_kind: str):
    """Log + register the pyfunc in the active run; returns mlflow's ModelInfo."""
    import mlflow
    import pandas as pd

    from components.registry import pyfunc as pyfunc_model

    code_root = Path(__file__).resolve().parents[2]  # the folder holding `components`
    files, third = pyfunc_model.inference_files(code_root)
    if backbone_kind != "hf":
        third.discard("transformers")  # only Hugging Face backbones need it at inference
    with tempfile.TemporaryDirectory(prefix="encoderflow-code-") as tmp:
        for src in files:  # copy only the inference modules, keeping the package layout
            dest = Path(tmp) / src.relative_to(code_root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        entry = Path(tmp) / pyfunc_model.ENTRY_FILE
        entry.write_text(pyfunc_model.ENTRY_SOURCE, encoding="utf-8")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(entry),  # models-from-code: nothing is pickled
            artifacts={"model": str(paths.finetuned)},
            code_paths=[str(Path(tmp) / "components")],
            pip_requirements=pyfunc_model.pip_requirements(third),
            signature=_signature(labels),
            input_example=pd.DataFrame({"text": EXAMPLE_TEXTS}),
            registered_model_name=model_name,
        )


def _score(uri: str, texts: list[str], names: list[str]):
    """0/1 correctness per test row of the registered model at `uri` (one-line error if it fails)."""
    import mlflow

    from components.evaluation import gate
    from components.core.errors import EncoderflowError
    from components.registry.client import _short

    try:
        model = mlflow.pyfunc.load_model(uri)
        return gate.correct_vector(model, texts, names)
    except Exception as e:  # noqa: BLE001 - a broken version must not leave a traceback
        raise EncoderflowError(f"cannot score {uri} on the test split ({_short(e)}); no alias was changed",
                               stage=STAGE) from None


def run(cfg: Params, paths: Paths) -> dict:
    import mlflow
    import pandas as pd

    from components.evaluation import gate

    from components.registry import client as registry

    from components.core import tracking
    from components.core.atomic import write_json

    rc = cfg.register
    meta = _read_json(paths.finetuned / CONFIG)
    metrics = _read_json(paths.report("metrics"))
    tfidf = None
    if rc.floor_vs_tfidf:
        if gate.TFIDF_KEY not in metrics:
            raise DataError(f"{paths.report('metrics')}: key '{gate.TFIDF_KEY}' not found (needed by "
                            "register.floor_vs_tfidf; set it to false to skip that floor)", stage=STAGE)
        tfidf = float(metrics[gate.TFIDF_KEY])
    if not paths.split("test").is_file():
        raise DataError(f"{paths.split('test')}: not found (run ingest first)", stage=STAGE)
    test = pd.read_parquet(paths.split("test"), columns=["text", "label_name"])
    if len(test) == 0:
        raise DataError(f"{paths.split('test')}: no rows to score the gate on", stage=STAGE)
    texts, names = test["text"].astype(str).tolist(), test["label_name"].astype(str).tolist()

    client = registry.connect(cfg.project, paths.root)  # one-line error if unreachable
    name = rc.model_name
    registry.sync(client, name)
    with tracking.stage_run(cfg, STAGE, paths.root, table.get(STAGE).params) as run:
        info = log_pyfunc(paths, name, list(meta["labels"]), meta.get("backbone", {}).get("kind", ""))
        version = str(info.registered_model_version)
        tags = lineage_tags(paths, client, run.info.experiment_id, run.info.run_id)
        tags.update({f"metric.{m}": f"{metrics[f'model.{m}']:.4f}" for m in TABLE_METRICS
                     if f"model.{m}" in metrics})
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        client.update_model_version(name, version, description=(
            f"Fine-tuned encoderflow classifier ({', '.join(meta['labels'])}).\n\n"
            f"Test metrics at evaluate time:\n\n{metrics_table(metrics)}\n"))

        champion = registry.aliases(registry.get_model(client, name)).get(registry.CHAMPION)
        t0 = time.perf_counter()  # time.compute_s: the gate (load + score both versions, bootstrap)
        new_correct = _score(f"models:/{name}/{version}", texts, names)
        champ_correct = _score(f"models:/{name}/{champion}", texts, names) if champion else None
        decision = gate.decide(new_correct, champ_correct, champion_version=champion,
                               min_gain=rc.min_gain, floor_accuracy=rc.floor_accuracy,
                               tfidf_accuracy=tfidf, samples=rc.bootstrap_samples,
                               seed=cfg.project.seed)
        compute_s = time.perf_counter() - t0
        numbers = {k: v for k, v in decision.as_dict().items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None}
        mlflow.log_metrics({**{f"gate.{k}": float(v) for k, v in numbers.items()},
                            "time.compute_s": compute_s})
        mlflow.set_tags({"gate.decision": decision.alias, "gate.version": version,
                         "gate.reason": decision.reason[:500]})
        mlflow.log_dict(decision.as_dict(), "gate/decision.json")
        client.set_model_version_tag(name, version, "gate.decision", decision.alias)
        registry.set_alias(client, name, decision.alias, version, action="gate", by="gate",
                           note=decision.reason, numbers=numbers)
        report = {"model_name": name, "version": version, "model_uri": f"models:/{name}/{version}",
                  "decision": decision.alias, "reason": decision.reason, "gate": decision.as_dict(),
                  "run_id": run.info.run_id, "tags": tags,
                  "flow_run_id": os.environ.get("ENCODERFLOW_FLOW_RUN_ID", "")}
        write_json(paths.report(STAGE), report)
        mlflow.log_artifact(str(paths.report(STAGE)), "gate")
    return {"version": version, "decision": decision.alias, "accuracy": round(decision.accuracy, 4)}
