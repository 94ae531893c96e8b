"""register with a teacher: both registered models, their tags, aliases and gates, the
unchanged-teacher skip, the teacher's pyfunc, `encoderflow models / promote / rollback --model`,
and the run summary. The tiny pipeline (tests/builders/tiny_pipeline.py) plus a tiny BERT teacher
(tests/builders/teacher_model.py), evaluated by the real evaluate stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.core import lineage
from components.core.paths import Paths
from components.registry import client as registry

from builders import teacher_model
from builders import tiny_pipeline
from builders.tiny_pipeline import register, registry_client

NAME, TEACHER = "encoderflow", "encoderflow-teacher"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny pipeline + models/teacher + a re-run evaluate (metrics.json with teacher.*)."""
    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory),
                               tmp_path_factory.mktemp("with_teacher") / "p")
    teacher_model.add_teacher(root, teacher_model.tiny_bert(tmp_path_factory.mktemp("hf")))
    tiny_pipeline.run_stages(root, ["evaluate"])
    return root


def test_both_models_registered_with_tags_gates_and_a_servable_teacher(proj, tmp_path):
    import mlflow
    import pandas as pd

    metrics = json.loads((proj / "reports/metrics.json").read_text())
    report = register(proj)
    t = report["teacher"]
    assert (report["model_name"], report["version"]) == (NAME, "1")
    assert (t["model_name"], t["version"], t["registered"], t["enabled"]) == (TEACHER, "1", True, True)
    assert t["decision"] in ("champion", "challenger") and t["gate"]["n_test"] == report["gate"]["n_test"]
    assert t["model_md5"] == lineage.dir_md5(proj / "models/teacher")

    client = registry_client(proj)
    assert registry.aliases(client.get_registered_model(TEACHER)) == {t["decision"]: "1"}
    student = client.get_model_version(NAME, "1")
    teacher = client.get_model_version(TEACHER, "1")
    st, tt = student.tags, teacher.tags
    acc = f"{metrics['teacher.accuracy']:.4f}"
    assert (st["encoderflow.teacher_init"], st["encoderflow.teacher_test_accuracy"]) == (teacher_model.INIT, acc)
    assert st["encoderflow.teacher_version"] == "1" and st["encoderflow.role"] == "student"
    assert st["encoderflow.teacher_md5"] == tt["encoderflow.model_md5"] == t["model_md5"]
    assert (tt["encoderflow.teacher_init"], tt["metric.accuracy"], tt["encoderflow.role"]) == (
        teacher_model.INIT, acc, "teacher")
    assert tt["gate.decision"] == t["decision"]
    for key in ("encoderflow.git_sha", "encoderflow.data_md5", "encoderflow.dvc_lock_md5",
                "encoderflow.evaluate_run_id", "encoderflow.register_run_id", "encoderflow.flow_run_id"):
        assert key in tt, key  # the same lineage as the student
    assert tt["encoderflow.tokenizer_md5"] == lineage.file_md5(proj / "models/teacher/tokenizer.json")
    assert tt["encoderflow.register_run_id"] == st["encoderflow.register_run_id"] == report["run_id"]
    assert "| **model** |" in student.description and "| teacher |" in student.description
    assert f"`{TEACHER}` version 1" in student.description
    assert "| **teacher** |" in teacher.description and "| model |" in teacher.description
    run = client.get_run(report["run_id"])
    assert run.data.tags["teacher.gate.decision"] == t["decision"] and "teacher.gate.accuracy" in run.data.metrics

    # the teacher's pyfunc (register.serving onnx): its Hugging Face backbone exported, so neither
    # transformers nor torch is pinned; loads and predicts on text
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{TEACHER}/1", dst_path=str(tmp_path / "dl")))
    reqs = {r.split("==")[0] for r in (local / "requirements.txt").read_text().split()}
    assert "onnxruntime" in reqs and not {"transformers", "torch"} & reqs
    assert tt["encoderflow.serving"] == "onnx"
    model = mlflow.pyfunc.load_model(f"models:/{TEACHER}/1")
    out = model.predict(pd.DataFrame({"text": ["a great and wonderful film", "dull awful plot", ""]}))
    assert list(out.columns) == ["label", "label_id", "prob_negative", "prob_positive"] and len(out) == 3
    assert out["label"].isin(["negative", "positive"]).all()


def test_unchanged_teacher_is_skipped_and_a_changed_one_goes_through_the_gate(proj, capsys):
    first = register(proj)
    second = register(proj)
    t = second["teacher"]
    assert (t["decision"], t["version"], t["registered"]) == ("skipped", "1", False)
    assert "unchanged since version 1" in t["reason"]
    assert f"register: {TEACHER}: models/teacher unchanged since version 1" in capsys.readouterr().out
    client = registry_client(proj)
    assert [v["version"] for v in registry.versions(client, TEACHER)] == ["1"]
    assert client.get_model_version(NAME, second["version"]).tags["encoderflow.teacher_version"] == "1"

    # the same weights with another config.json: a new folder hash -> registered, and judged
    # against the teacher's own champion (no gain over itself -> challenger)
    config = proj / "models/teacher/config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "note": "re-exported"}))
    third = register(proj)
    t3 = third["teacher"]
    assert (t3["version"], t3["registered"]) == ("2", True)
    if first["teacher"]["decision"] == "champion":
        assert t3["decision"] == "challenger" and t3["gate"]["champion_version"] == "1"
        assert t3["gate"]["gain"] == 0.0
    assert client.get_model_version(NAME, third["version"]).tags["encoderflow.teacher_version"] == "2"


def test_disabled_teacher_registers_the_student_only(proj, cli):
    teacher_model.disable_teacher(proj)
    tiny_pipeline.run_stages(proj, ["evaluate"])
    report = register(proj)
    assert report["teacher"]["enabled"] is False and report["teacher"]["registered"] is False
    client = registry_client(proj)
    assert registry.get_model(client, TEACHER) is None
    assert not any(k.startswith("encoderflow.teacher") for k in client.get_model_version(NAME, "1").tags)
    code, out = cli("models")
    assert code == 0 and f"{NAME}: registered versions" in out and TEACHER not in out


def test_models_lists_both_and_promote_rollback_take_model(proj, cli):
    register(proj, floor_vs_baselines=False, floor_accuracy=0.0)  # both v1 @champion
    config = proj / "models/teacher/config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "note": "v2"}))
    register(proj, floor_vs_baselines=False, floor_accuracy=0.0)  # both v2 @challenger (no gain)

    code, out = cli("models")
    assert code == 0 and f"{NAME}: registered versions" in out and f"{TEACHER}: registered versions" in out
    assert out.count("@champion") == 2 and out.count("@challenger") == 2
    assert f"{teacher_model.INIT} v2" in out  # the student's v2 names its teacher's version
    code, out = cli("models", "--model", TEACHER)
    assert code == 0 and f"{TEACHER}: registered versions" in out and f"{NAME}: registered" not in out
    code, out = cli("models", "--history")
    assert code == 0 and f"{TEACHER}: alias changes" in out

    assert cli("promote", "2", "--model", TEACHER) == (
        0, f"{TEACHER}: version 2 is now @champion (previous champion: 1; undo with "
           f"`encoderflow rollback --model {TEACHER}`)\n")
    client = registry_client(proj)
    assert registry.aliases(client.get_registered_model(TEACHER)) == {"champion": "2"}
    assert registry.aliases(client.get_registered_model(NAME)) == {"champion": "1", "challenger": "2"}
    assert cli("rollback", "--model", TEACHER)[1] == (
        f"{TEACHER}: @champion rolled back from version 2 to version 1\n")
    code, out = cli("promote", "1", "--model", "nope")
    assert code == 1 and out == "error: registered model 'nope' not found (run the register stage first)\n"


def test_summary_shows_the_teacher_column_speed_and_registration(proj):
    from flows.summary import render

    register(proj)
    md = render([{"name": s, "status": "ran", "seconds": 1.0} for s in ("evaluate", "register")],
                ["evaluate", "register"], Paths.at(proj))
    assert "| metric | model | teacher |" in md.split("## Metrics vs baselines")[1]
    assert "Speed (measured in the evaluate stage" in md and "x faster" in md
    assert "## Registered teacher" in md and f"- model_name: `{TEACHER}`" in md
