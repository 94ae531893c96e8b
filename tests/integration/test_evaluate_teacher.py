"""evaluate with a teacher: the teacher.* row of metrics.json, reports/speed.json, and the
disabled teacher (no row, the student's speed alone). A tiny BERT teacher (tests/builders/teacher_model.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from components.core.errors import DataError
from components.core.paths import Paths
from components.evaluation import speed
from components.evaluation import teacher as teacher_folder
from components.stages import evaluate, finetune

from builders import cls_project as cp
from builders import teacher_model

SPEED_KEYS = {"speed.batch_size", "speed.n_texts", "speed.rounds", "speed.threads",
              "speed.student_texts_per_s", "speed.ratio"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A fine-tuned student and an HF-folder teacher on the toy project (built once)."""
    root = tmp_path_factory.mktemp("eval_teacher")
    paths = cp.make_project(root)
    cfg = cp.tiny_params(max_epochs=1)  # the store: <project>/mlflow.db
    cp.save_pretrained(cfg, paths)
    finetune.run(cfg, paths)
    teacher_model.add_teacher(root, teacher_model.tiny_bert(tmp_path_factory.mktemp("hf")))
    return root, cfg


@pytest.fixture
def proj(base, tmp_path, monkeypatch):
    root, cfg = base
    dst = tmp_path / "p"
    shutil.copytree(root, dst, ignore=shutil.ignore_patterns("mlflow.db", "mlruns", "mlartifacts"))
    monkeypatch.chdir(dst)
    return Paths.at(dst), cfg


def test_teacher_row_same_keys_and_speed_report(proj):
    import mlflow

    paths, cfg = proj
    summary = evaluate.run(cfg, paths)
    first = paths.report("metrics").read_bytes()
    m = json.loads(first)
    model = {k.removeprefix("model.") for k in m if k.startswith("model.")}
    teacher = {k.removeprefix("teacher.") for k in m if k.startswith("teacher.")}
    assert teacher == model and {"accuracy", "accuracy_ci_low", "accuracy_ci_high", "macro_f1", "ece"} <= teacher
    assert m["teacher.accuracy_ci_low"] <= m["teacher.accuracy"] <= m["teacher.accuracy_ci_high"]
    assert not any(k.startswith("speed.") for k in m)  # timings never enter metrics.json
    assert summary["teacher.accuracy"] == m["teacher.accuracy"]

    s = json.loads(paths.report("speed").read_text())
    assert set(s) == SPEED_KEYS | {"speed.teacher_texts_per_s"} and list(s) == sorted(s)
    assert s["speed.n_texts"] == 24 and s["speed.batch_size"] == speed.BATCH_SIZE
    assert s["speed.student_texts_per_s"] > 0 and s["speed.teacher_texts_per_s"] > 0
    assert s["speed.ratio"] == pytest.approx(s["speed.student_texts_per_s"] / s["speed.teacher_texts_per_s"],
                                             rel=0.01)
    import torch

    assert s["speed.threads"] == torch.get_num_threads()

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(cfg.project.experiment).experiment_id
    [run] = client.search_runs([exp], "tags.`encoderflow.stage` = 'evaluate'")
    assert run.data.metrics["speed.ratio"] == pytest.approx(s["speed.ratio"])
    assert run.data.metrics["teacher.accuracy"] == pytest.approx(m["teacher.accuracy"])
    assert "speed.json" in {a.path for a in client.list_artifacts(run.info.run_id)}

    evaluate.run(cfg, paths)  # speed differs run to run; metrics.json must not
    assert paths.report("metrics").read_bytes() == first


def test_disabled_teacher_has_no_row_and_student_speed_only(proj):
    paths, cfg = proj
    teacher_model.disable_teacher(paths.root)
    summary = evaluate.run(cfg, paths)
    m = json.loads(paths.report("metrics").read_text())
    assert "model.accuracy" in m and not any(k.startswith("teacher.") for k in m)
    s = json.loads(paths.report("speed").read_text())
    assert set(s) == SPEED_KEYS and s["speed.ratio"] is None and s["speed.student_texts_per_s"] > 0
    assert "speed.ratio" not in summary and "teacher.accuracy" not in summary


def test_broken_teacher_folders_are_one_line_errors(proj):
    paths, cfg = proj
    meta = json.loads((paths.teacher_model / "config.json").read_text())
    (paths.teacher_model / "config.json").write_text(json.dumps({**meta, "labels": ["bad", "good"]}))
    with pytest.raises(DataError, match=r"models/teacher/config.json: labels \['bad', 'good'\] differ"):
        evaluate.score_all(cfg, paths, progress=False)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (paths.teacher_model / name).unlink(missing_ok=True)
    with pytest.raises(DataError, match="neither a teacher model") as err:
        evaluate.score_all(cfg, paths, progress=False)
    assert "\n" not in str(err.value)


def test_the_disabled_teacher_stages_folder_reads_as_no_teacher(tmp_path):
    """evaluate and register read models/teacher through evaluation.teacher.folder: what the
    teacher stage writes with teacher.enabled: false must read as no teacher, and the same
    folder without the stage's marker as a broken one."""
    from components.core.config import (DistillConfig, FinetuneConfig, Params, PretrainConfig, ProjectConfig,
                                        StaticStudentConfig, TeacherConfig)
    from components.stages import teacher

    cfg = Params(project=ProjectConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
                 teacher=TeacherConfig(enabled=False, base=False), pretrain=PretrainConfig(vector_weight=0.0),
                 finetune=FinetuneConfig(distill=DistillConfig(enabled=False),
                                         static=StaticStudentConfig(enabled=False)))
    paths = Paths.at(tmp_path)
    assert teacher.run(cfg, paths) == {"enabled": False}
    assert paths.teacher_model.is_dir() and teacher_folder.folder(paths.teacher_model) is None
    for marker in paths.teacher_model.iterdir():
        marker.unlink()
    with pytest.raises(DataError, match="neither a teacher model"):
        teacher_folder.folder(paths.teacher_model)
