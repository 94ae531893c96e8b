"""register stage: log models/finetuned (and models/teacher) as MLflow pyfuncs, run the gates.

Two registered models: `register.model_name` is the student (models/finetuned,
what the pipeline trains and serving loads by default); "<model_name>-teacher"
is the fine-tuned teacher (models/teacher), for users who value accuracy over
speed. Each has its own @champion / @challenger and audit trail.

1. Check the registry answers (fail fast, no alias touched if not).
2. In the register MLflow run: with register.serving onnx (the default) export each
   model to ONNX (registry/onnx_export.py) and compare it with torch on the test split:
   a probability or vector off by more than register.onnx_tolerance stops the stage
   before anything is registered. Then log the pyfunc (register.serving onnx: the
   torch-free ONNX pyfunc over that export, registry/onnx_pyfunc.py; torch: the torch
   pyfunc; code_paths = only the inference modules, explicit pinned pip requirements,
   signature with a `text` column and an `output` param), registering a new version of
   `register.model_name`.
   The teacher likewise (artifact path "teacher"; its Hugging Face backbone keeps
   `transformers` in the requirements), but only when it is enabled and its
   folder changed since its newest registered version: the tag
   `encoderflow.model_md5` (DVC's hash of the folder) is compared, and an
   identical teacher that already went through the gate is skipped with one
   logged line instead of being copied into the store again.
3. Tag each version with its lineage (git, dvc.lock, data, tokenizer, stage run
   ids, Prefect flow run, model_md5) and describe it with a metrics table vs the
   baselines; the student's version also names its teacher
   (`encoderflow.teacher_init`, `encoderflow.teacher_test_accuracy`,
   `encoderflow.teacher_md5`, `encoderflow.teacher_version`).
4. Gate (components/evaluation/gate.py), the same rules for both models: re-score
   that model's @champion and the new version on the current test split. Every
   score is computed before any alias moves; then @champion or @challenger moves
   (components/registry/client.py).
5. Write reports/register.json (version, decision, numbers; the teacher's under "teacher").
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from components.core.config import RETRIEVAL_METRICS, Params
from components.core.errors import DataError
from components.core.paths import Paths
from components.model.io import CONFIG
from components.registry.publish import MD5_TAG, TABLE_METRICS, lineage_tags, log_pyfunc, metrics_table  # noqa: F401
from components.stages import table

STAGE = "register"
RUN_STAGES = ("pretrain", "finetune", "evaluate")
TEACHER_RUN_STAGES = ("teacher", "evaluate")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run the upstream stages first)", stage=STAGE) from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})", stage=STAGE) from None


def _score(uri: str, texts: list[str], names: list, metric: str = "accuracy", labels: list[str] = (),
           positive: str | None = None):
    """What the gate compares for `metric` (gate.score_rows: 0/1 correctness per test row, or
    per-row F1 counts) of the registered model at `uri` (one-line error if it fails)."""
    import mlflow

    from components.core.errors import EncoderflowError
    from components.evaluation import gate
    from components.registry.client import _short

    try:
        model = mlflow.pyfunc.load_model(uri)
        return gate.score_rows(model, texts, names, metric, labels, positive=positive)
    except Exception as e:  # noqa: BLE001 - a broken version must not leave a traceback
        raise EncoderflowError(f"cannot score {uri} on the test split ({_short(e)}); no alias was changed",
                               stage=STAGE) from None


@dataclass
class Candidate:
    """One model the stage registers: the student (models/finetuned) or the teacher."""
    role: str  # "student" | "teacher"
    name: str  # the registered model
    folder: Path
    prefix: str  # its key prefix in reports/metrics.json: "model" | "teacher"
    stages: tuple[str, ...]  # the stages whose MLflow run ids its lineage tags name
    meta: dict = field(default_factory=dict)  # the folder's config.json
    md5: str = ""  # DVC's hash of the folder
    init: str = ""  # the checkpoint it was fine-tuned from (config.json "init")
    tags: dict = field(default_factory=dict)
    version: str | None = None
    decision: object = None  # gate.Decision
    onnx: Path | None = None  # register.serving onnx: its checked export (what the version carries)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def run_prefix(self) -> str:
        """Prefix of its gate tags / metrics in the register run ("" for the student)."""
        return "" if self.role == "student" else f"{self.role}."


def teacher_candidate(paths: Paths, model_name: str, metrics: dict) -> Candidate | None:
    """The teacher to register, or None when it is disabled (models/teacher/DISABLED.json) or absent."""
    from components.evaluation import teacher as teacher_model
    from components.registry.client import teacher_name

    folder = teacher_model.folder(paths.teacher_model)
    if folder is None:
        return None
    if "teacher.accuracy" not in metrics:
        raise DataError(f"{paths.report('metrics')}: key 'teacher.accuracy' not found ({folder} holds a "
                        "teacher model: re-run evaluate)", stage=STAGE)
    meta = _read_json(folder / CONFIG)
    return Candidate("teacher", teacher_name(model_name), folder, "teacher", TEACHER_RUN_STAGES, meta,
                     init=str(meta.get("init") or "unknown"))


def registered_copy(client, cand: Candidate, md5: str) -> str | None:
    """The newest version of cand.name when it holds this very folder (tag encoderflow.model_md5
    equal to `md5`) and its gate finished (tag gate.decision); else None."""
    from components.registry import client as registry

    mv = registry.latest_version(client, cand.name)
    tags = (mv.tags or {}) if mv is not None else {}
    return str(mv.version) if md5 and tags.get(MD5_TAG) == md5 and tags.get("gate.decision") else None


def teacher_tags(cand: Candidate, metrics: dict) -> dict[str, str]:
    """What the student's version (and the teacher's own) record about the teacher."""
    return {"encoderflow.teacher_init": cand.init,
            "encoderflow.teacher_test_accuracy": f"{metrics['teacher.accuracy']:.4f}",
            "encoderflow.teacher_md5": cand.md5}


def description(cand: Candidate, metrics: dict, student: str, teacher: Candidate | None) -> str:
    labels = ", ".join(cand.meta["labels"])
    if cand.role == "teacher":
        text = (f"Teacher of `{student}`: {cand.init} fine-tuned on the train "
                f"split ({labels}). The student distils from its labels; it is slower and aims to be more "
                f"accurate. Serve it with `mlflow models serve -m models:/{cand.name}@champion`.")
    else:
        text = f"Fine-tuned encoderflow classifier ({labels})."
        if teacher is not None:
            text += (f" Teacher: {teacher.init}, registered as "
                     f"`{teacher.name}` version {teacher.version}.")
    return f"{text}\n\nTest metrics at evaluate time:\n\n{metrics_table(metrics, cand.prefix)}\n"


def publish(paths: Paths, client, cand: Candidate, metrics: dict) -> None:
    """Log + register cand's pyfunc in the active run, then tag it (description comes later)."""
    kind = cand.meta.get("backbone", {}).get("kind", "")
    info = log_pyfunc(paths, cand.name, list(cand.meta["labels"]), kind, folder=cand.folder,
                      artifact_name="model" if cand.role == "student" else cand.role,
                      task=cand.meta.get("task", "single_label"), bi_encoder="bi_encoder" in cand.meta,
                      onnx_folder=cand.onnx)
    cand.version = str(info.registered_model_version)
    cand.tags.update({"encoderflow.role": cand.role})
    cand.tags.update({f"metric.{m}": f"{metrics[f'{cand.prefix}.{m}']:.4f}" for m in TABLE_METRICS
                      if f"{cand.prefix}.{m}" in metrics})
    for key, value in cand.tags.items():
        client.set_model_version_tag(cand.name, cand.version, key, value)


def export_onnx(rc, cand: Candidate, texts: list, work: Path) -> None:
    """register.serving onnx: export cand's folder into work/<role> and hold the export to torch
    on the test texts, before anything is registered (refused above register.onnx_tolerance)."""
    from components.registry import onnx_export
    from components.registry.onnx_pyfunc import OnnxClassifier

    clf = onnx_export.load_torch(cand.folder)
    out = work / cand.role
    onnx_export.export_classifier(clf, out, what=str(cand.folder))
    check = onnx_export.parity(clf, OnnxClassifier(out), texts)
    worst = max(check.prob_diff, check.embed_diff)
    if not check.ok(rc.onnx_tolerance):
        raise DataError(f"register.serving is onnx, but the ONNX export of {cand.folder} differs from torch by "
                        f"{worst:.2e} on the test split ({check.describe()}; register.onnx_tolerance "
                        f"{rc.onnx_tolerance:g}): nothing registered, no alias moved", stage=STAGE)
    cand.onnx = out
    cand.tags.update({"encoderflow.serving": "onnx", "encoderflow.onnx_parity": f"{worst:.2e}"})


def judge(client, cand: Candidate, texts: list[str], names: list, rc, tfidf, seed: int,
          metric: str = "accuracy") -> None:
    """Score cand's new version and its model's @champion on the test split; set cand.decision.
    recall_at_10: both retrieve the partners of the test pairs labelled with cand's positive."""
    from components.evaluation import gate
    from components.registry import client as registry

    labels = list(cand.meta.get("labels", ()))
    positive = cand.meta.get("bi_encoder", {}).get("positive")
    champion = registry.aliases(registry.get_model(client, cand.name)).get(registry.CHAMPION)
    new_correct = _score(cand.uri, texts, names, metric, labels, positive)
    champ_correct = _score(f"models:/{cand.name}/{champion}", texts, names, metric, labels, positive) \
        if champion else None
    cand.decision = gate.decide(new_correct, champ_correct, champion_version=champion,
                                min_gain=rc.min_gain, floor_accuracy=rc.floor_accuracy,
                                tfidf_accuracy=tfidf, samples=rc.bootstrap_samples, seed=seed, metric=metric)


def apply(client, cand: Candidate) -> dict:
    """Record cand's gate decision in the run and on the version, move the alias; its report."""
    import mlflow

    from components.registry import client as registry

    d, pre = cand.decision, cand.run_prefix
    numbers = {k: v for k, v in d.as_dict().items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None}
    mlflow.log_metrics({f"{pre}gate.{k}": float(v) for k, v in numbers.items()})
    mlflow.set_tags({f"{pre}gate.decision": d.alias, f"{pre}gate.version": cand.version,
                     f"{pre}gate.reason": d.reason[:500]})
    mlflow.log_dict(d.as_dict(), f"gate/{pre}decision.json")
    client.set_model_version_tag(cand.name, cand.version, "gate.decision", d.alias)
    registry.set_alias(client, cand.name, d.alias, cand.version, action="gate", by="gate",
                       note=d.reason, numbers=numbers)
    return {"model_name": cand.name, "version": cand.version, "model_uri": cand.uri, "decision": d.alias,
            "reason": d.reason, "gate": d.as_dict(), "tags": cand.tags}


def _test_rows(paths: Paths) -> tuple[list[str], list]:
    """Test texts and their label names (multi_label: a list of names per row; pair: texts
    are (text, text_pair) tuples)."""
    import pandas as pd

    if not paths.split("test").is_file():
        raise DataError(f"{paths.split('test')}: not found (run ingest first)", stage=STAGE)
    import pyarrow.parquet as pq

    pair = "text_pair" in pq.read_schema(paths.split("test")).names  # pair: (text, text_pair) tuples
    test = pd.read_parquet(paths.split("test"), columns=["text", "text_pair", "label_name"] if pair
                           else ["text", "label_name"])
    if len(test) == 0:
        raise DataError(f"{paths.split('test')}: no rows to score the gate on", stage=STAGE)
    if pair:
        return (list(zip(test["text"].astype(str), test["text_pair"].astype(str))),
                test["label_name"].astype(str).tolist())
    if test["label_name"].dtype == object and len(test) and not isinstance(test["label_name"].iloc[0], str):
        return test["text"].astype(str).tolist(), [[str(n) for n in v] for v in test["label_name"]]
    return test["text"].astype(str).tolist(), test["label_name"].astype(str).tolist()


def gate_metric(cfg: Params, paths: Paths) -> str:
    """register.metric (or the task's default), checked against the data's task (labels.json)."""
    from components.core.config import GATE_METRICS
    from components.core.errors import ConfigError
    from components.data.labels import read_task

    task = read_task(paths.labels, stage=STAGE)
    allowed = GATE_METRICS[task]
    metric = cfg.register.metric or allowed[0]
    if metric not in allowed:
        raise ConfigError(f"register.metric: expected one of {', '.join(allowed)} for the {task} data in "
                          f"{paths.labels.relative_to(paths.root) if paths.root in paths.labels.parents else paths.labels}"
                          f", got {metric!r}")
    return metric


def run(cfg: Params, paths: Paths) -> dict:
    import mlflow

    from components.core import lineage, tracking
    from components.core.atomic import write_json
    from components.evaluation import gate
    from components.registry import client as registry

    rc = cfg.register
    metric = gate_metric(cfg, paths)
    metrics = _read_json(paths.report("metrics"))
    student = Candidate("student", rc.model_name, paths.finetuned, "model", RUN_STAGES,
                        _read_json(paths.finetuned / CONFIG))
    if metric in RETRIEVAL_METRICS and "bi_encoder" not in student.meta:
        raise DataError(f"{paths.finetuned / CONFIG}: no bi-encoder to score register.metric {metric} "
                        "(re-run finetune with finetune.bi_encoder.enabled: true)", stage=STAGE)
    tfidf = None
    if rc.floor_vs_tfidf:
        key = gate.tfidf_key(metric)
        if key not in metrics:
            raise DataError(f"{paths.report('metrics')}: key '{key}' not found (needed by "
                            "register.floor_vs_tfidf; set it to false to skip that floor)", stage=STAGE)
        tfidf = float(metrics[key])
    teacher = teacher_candidate(paths, rc.model_name, metrics)
    texts, names = _test_rows(paths)

    client = registry.connect(cfg.project, paths.root)  # one-line error if unreachable
    for name in (student.name, registry.teacher_name(rc.model_name)):
        registry.sync(client, name)
    teacher_report: dict = {"model_name": registry.teacher_name(rc.model_name), "enabled": teacher is not None,
                            "registered": False}
    if teacher is None:
        teacher_report["reason"] = "no teacher model (teacher.enabled: false, or no models/teacher)"
    else:
        teacher.md5 = lineage.dir_md5(teacher.folder)
        teacher_report["model_md5"] = teacher.md5
        same = registered_copy(client, teacher, teacher.md5)
        if same:
            teacher.version = same
            teacher_report.update(version=same, model_uri=teacher.uri, decision="skipped",
                                  reason=f"models/teacher unchanged since version {same} "
                                         f"({MD5_TAG} {teacher.md5})")
            print(f"register: {teacher.name}: {teacher_report['reason']}; not registered again", flush=True)
    to_register = [c for c in (teacher, student) if c is not None and c.version is None]

    with tracking.stage_run(cfg, STAGE, paths.root, table.get(STAGE).params) as run, \
            tempfile.TemporaryDirectory(prefix="encoderflow-onnx-") as work:
        exp, run_id = run.info.experiment_id, run.info.run_id
        for cand in to_register if rc.serving == "onnx" else ():  # every export checked before any registers
            export_onnx(rc, cand, texts, Path(work))
        for cand in to_register:  # the teacher first: the student's tags name its version
            cand.tags.update(lineage_tags(paths, client, exp, run_id, cand.folder, cand.stages))
            if cand.role == "teacher":
                cand.tags.update(teacher_tags(cand, metrics))
            elif teacher is not None:
                cand.tags.update({**teacher_tags(teacher, metrics), "encoderflow.teacher_version": teacher.version})
            publish(paths, client, cand, metrics)
        for cand in to_register:
            client.update_model_version(cand.name, cand.version,
                                        description=description(cand, metrics, student.name, teacher))
        t0 = time.perf_counter()  # time.compute_s: the gates (load + score both versions, bootstrap)
        for cand in to_register:  # every score before any alias moves
            judge(client, cand, texts, names, rc, tfidf, cfg.project.seed, metric)
        compute_s = time.perf_counter() - t0
        reports = {cand.role: apply(client, cand) for cand in (student, teacher) if cand in to_register}
        mlflow.log_metric("time.compute_s", compute_s)
        if "teacher" in reports:
            teacher_report.update(registered=True, **reports["teacher"])
        mlflow.set_tags({"teacher.registered": str(teacher_report["registered"]).lower(),
                         "teacher.note": teacher_report.get("reason", "")[:500]})
        report = {**reports["student"], "run_id": run_id, "teacher": teacher_report,
                  "flow_run_id": os.environ.get("ENCODERFLOW_FLOW_RUN_ID", "")}
        write_json(paths.report(STAGE), report)
        mlflow.log_artifact(str(paths.report(STAGE)), "gate")
    out = {"version": student.version, "decision": student.decision.alias,
           "accuracy": round(student.decision.accuracy, 4)}
    if metric != "accuracy":  # the value above is of this metric (gate.Decision)
        out = {"version": student.version, "decision": student.decision.alias, "metric": metric,
               metric: round(student.decision.accuracy, 4)}
    if teacher is not None:
        out.update(teacher_version=teacher.version, teacher_decision=teacher_report["decision"])
    return out
