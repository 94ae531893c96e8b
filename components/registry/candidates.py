"""The models a run registers, each with its own registered model, gate and audit trail.

- student (models/finetuned): `register.model_name`, what serving loads by default;
- static (models/finetuned_static, when finetune.static trained one): `<name>-static`;
- teacher (models/teacher, when enabled): `<name>-teacher`;
- baseline (models/baseline, evaluate's best bag-of-words model by val accuracy):
  `<name>-baseline`, registered only when no neural model of the run beats it.

A candidate knows its folder, its key prefix in reports/metrics.json, the stages its lineage
tags name, and, once registered and judged, its version and gate decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from components.core.errors import DataError
from components.core.paths import Paths
from components.model.io import CONFIG

STAGE = "register"
RUN_STAGES = ("pretrain", "finetune", "evaluate")
STATIC_RUN_STAGES = ("teacher", "finetune", "evaluate")
TEACHER_RUN_STAGES = ("teacher", "evaluate")
BASELINE_RUN_STAGES = ("evaluate",)
DISABLED = "DISABLED.json"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run the upstream stages first)", stage=STAGE) from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})", stage=STAGE) from None


@dataclass
class Candidate:
    role: str  # "student" | "static" | "teacher" | "baseline"
    name: str  # the registered model
    folder: Path
    prefix: str  # its key prefix in reports/metrics.json: "model" | "static" | "teacher" | "baseline.<name>"
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

    @property
    def artifact(self) -> str:
        return "model" if self.role == "student" else self.role

    @property
    def flavor(self) -> str:
        return "bow" if self.role == "baseline" else "torch"


def _present(folder: Path) -> bool:
    return folder.is_dir() and not (folder / DISABLED).is_file() and (folder / CONFIG).is_file()


def student(paths: Paths, model_name: str) -> Candidate:
    return Candidate("student", model_name, paths.finetuned, "model", RUN_STAGES,
                     read_json(paths.finetuned / CONFIG))


def static(paths: Paths, model_name: str, metrics: dict) -> Candidate | None:
    """The static student, or None when finetune trained none (models/finetuned_static/DISABLED.json)."""
    if not _present(paths.finetuned_static):
        return None
    if "static.accuracy" not in metrics and "static.macro_f1" not in metrics:
        raise DataError(f"{paths.report('metrics')}: no 'static.*' scores ({paths.finetuned_static} holds a "
                        "static student: re-run evaluate)", stage=STAGE)
    return Candidate("static", f"{model_name}-static", paths.finetuned_static, "static", STATIC_RUN_STAGES,
                     read_json(paths.finetuned_static / CONFIG))


def teacher(paths: Paths, model_name: str, metrics: dict) -> Candidate | None:
    """The teacher to register, or None when it is disabled (models/teacher/DISABLED.json) or absent."""
    from components.evaluation import teacher as teacher_model
    from components.registry.client import teacher_name

    folder = teacher_model.folder(paths.teacher_model)
    if folder is None:
        return None
    if "teacher.accuracy" not in metrics:
        raise DataError(f"{paths.report('metrics')}: key 'teacher.accuracy' not found ({folder} holds a "
                        "teacher model: re-run evaluate)", stage=STAGE)
    meta = read_json(folder / CONFIG)
    return Candidate("teacher", teacher_name(model_name), folder, "teacher", TEACHER_RUN_STAGES, meta,
                     init=str(meta.get("init") or "unknown"))


def baseline(paths: Paths, model_name: str) -> Candidate | None:
    """evaluate's best bag-of-words baseline (models/baseline), or None when it saved none."""
    if not _present(paths.baseline):
        return None
    meta = read_json(paths.baseline / CONFIG)
    return Candidate("baseline", f"{model_name}-baseline", paths.baseline, f"baseline.{meta['name']}",
                     BASELINE_RUN_STAGES, meta, init=str(meta["name"]))


def teacher_tags(cand: Candidate, metrics: dict) -> dict[str, str]:
    """What the students' versions (and the teacher's own) record about the teacher."""
    return {"encoderflow.teacher_init": cand.init,
            "encoderflow.teacher_test_accuracy": f"{metrics['teacher.accuracy']:.4f}",
            "encoderflow.teacher_md5": cand.md5}


def description(cand: Candidate, metrics: dict, student_name: str, teacher_cand: Candidate | None) -> str:
    from components.registry.publish import metrics_table

    labels = ", ".join(cand.meta["labels"])
    if cand.role == "teacher":
        text = (f"Teacher of `{student_name}`: {cand.init} fine-tuned on the train "
                f"split ({labels}). The student distils from its labels; it is slower and aims to be more "
                f"accurate. Serve it with `mlflow models serve -m models:/{cand.name}@champion`.")
    elif cand.role == "baseline":
        text = (f"Bag-of-words baseline ({cand.init}, {labels}): registered because no neural model of the "
                f"run beat it on the test split. Serve it with `mlflow models serve -m models:/{cand.name}@champion`.")
    else:
        kind = "static (model2vec-initialised) student" if cand.role == "static" else "student"
        text = f"Fine-tuned encoderflow {kind} ({labels})."
        if teacher_cand is not None:
            text += f" Teacher: {teacher_cand.init}, registered as `{teacher_cand.name}` version {teacher_cand.version}."
    return f"{text}\n\nTest metrics at evaluate time:\n\n{metrics_table(metrics, cand.prefix)}\n"
