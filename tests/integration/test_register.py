"""register stage + registry: pyfunc, lineage, gate decisions, promote / rollback / audit trail.

Runs on a real tiny pipeline (tests/builders/tiny_pipeline.py: ingest -> evaluate on a
synthetic sentiment set, built once per session) and a real sqlite MLflow store.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.core import lineage
from components.core.config import load_params
from components.core.errors import DataError, EncoderflowError
from components.core.paths import Paths
from components.registry import client as registry

from builders import tiny_pipeline
from builders.tiny_pipeline import register, registry_client

NAME = "encoderflow"
ROOT = Path(__file__).resolve().parents[2]  # the checkout


def git_commit(root: Path) -> str:
    run = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("add", "params.yaml")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()


ISOLATED = r"""
import importlib.util, json, sys
uri, store, checkout = sys.argv[1:4]
# Take the checkout out of the import system (the editable install's finder and
# any path entry): only the model's own code/ folder can provide `components`.
sys.meta_path = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path = [p for p in sys.path if not p.startswith(checkout) or "site-packages" in p]
assert importlib.util.find_spec("components") is None
import mlflow, pandas as pd
mlflow.set_tracking_uri(store)
model = mlflow.pyfunc.load_model(uri)
out = model.predict(pd.DataFrame({"text": ["a great and wonderful film", "dull awful plot"]}))
emb = model.predict(pd.DataFrame({"text": ["x", "y", "z"]}), params={"output": "embedding"})
print(json.dumps({
    "labels": out["label"].tolist(), "columns": list(out.columns), "embedding": list(emb.shape),
    "files": {k: getattr(m, "__file__", None) for k, m in sys.modules.items() if k.split(".")[0] == "components"},
    "heavy": sorted(k for k in ("torch", "pytorch_lightning", "lightning", "transformers", "datasets",
                                "sklearn", "prefect", "great_expectations", "dvc", "flows")
                    if k in sys.modules)}))
"""


def test_register_logs_an_isolated_pyfunc_with_lineage(proj, monkeypatch, tmp_path):
    import mlflow

    sha = git_commit(proj)
    monkeypatch.setenv("ENCODERFLOW_FLOW_RUN_ID", "flow-run-123")
    report = register(proj)
    assert report["version"] == "1" and report["decision"] == "champion"
    assert report["gate"]["reason"] == "first model to pass the floors"

    client = registry_client(proj)
    model = client.get_registered_model(NAME)
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": "1"}
    mv = client.get_model_version(NAME, "1")
    tags = mv.tags
    pretrain = json.loads((proj / "reports/pretrain.json").read_text())["mlflow_run_id"]
    finetune = json.loads((proj / "reports/finetune.json").read_text())["mlflow_run_id"]
    evaluate = client.search_runs([r.info.experiment_id for r in [client.get_run(finetune)]],
                                  "tags.`encoderflow.stage` = 'evaluate'")[0].info.run_id
    assert tags["encoderflow.git_sha"] == sha and tags["encoderflow.git_dirty"] in ("true", "false")
    assert tags["encoderflow.data_md5"] == lineage.dir_md5(proj / "data/prepared") != ""
    assert tags["encoderflow.tokenizer_md5"] == lineage.file_md5(proj / "models/finetuned/tokenizer.json")
    assert "encoderflow.dvc_lock_md5" in tags
    assert (tags["encoderflow.pretrain_run_id"], tags["encoderflow.finetune_run_id"]) == (pretrain, finetune)
    assert tags["encoderflow.evaluate_run_id"] == evaluate
    assert tags["encoderflow.register_run_id"] == report["run_id"] == mv.run_id
    assert tags["encoderflow.flow_run_id"] == "flow-run-123"
    assert tags["gate.decision"] == "champion" and tags["metric.accuracy"] == "1.0000"
    assert "| **model** |" in mv.description and "| baseline: tfidf_lr |" in mv.description

    run = client.get_run(report["run_id"])
    assert run.data.tags["gate.decision"] == "champion" and run.data.metrics["gate.accuracy"] == 1.0
    [audit] = registry.history(model)
    assert (audit["action"], audit["by"], audit["status"], audit["aliases"]) == (
        "gate", "gate", "done", {"champion": "1"})

    # the artifact (register.serving onnx, the default): explicit pinned requirements without
    # torch, the signature, only the torch-free inference code and the export
    assert tags["encoderflow.serving"] == "onnx" and float(tags["encoderflow.onnx_parity"]) <= 1e-4
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", dst_path=str(tmp_path / "dl")))
    reqs = (local / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in reqs} == {"onnxruntime", "tokenizers", "numpy", "pandas", "mlflow-skinny"}
    assert all("==" in r and "+" not in r for r in reqs)
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert json.loads(mlmodel["signature"]["inputs"]) == [{"type": "string", "name": "text", "required": True}]
    assert {p["name"]: p["default"] for p in json.loads(mlmodel["signature"]["params"])} == {
        "output": "label", "batch_size": 64}
    shipped = {p.relative_to(local / "code").as_posix() for p in (local / "code").rglob("*.py")}
    assert {"components/registry/onnx_pyfunc.py", "components/registry/frames.py"} <= shipped
    assert not any(s.endswith(("classifier.py", "encoder.py", "lit_cls.py", "finetune.py", "config.py",
                               "tracking.py")) for s in shipped)
    assert {p.name for p in (local / "artifacts").rglob("*") if p.is_file()} >= {"model.onnx", "tokenizer.json",
                                                                                  "onnx.json"}

    # loads in a fresh interpreter that cannot import the checkout
    out = subprocess.run([sys.executable, "-I", "-c", ISOLATED, f"models:/{NAME}@champion",
                          mlflow.get_tracking_uri(), str(ROOT)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["labels"] == ["positive", "negative"]
    assert got["columns"] == ["label", "label_id", "prob_negative", "prob_positive"]
    assert got["embedding"] == [3, 32]
    assert got["heavy"] == []
    assert got["files"] and all("/artifacts/code/components/" in f and not f.startswith(str(ROOT))
                                for f in got["files"].values())


def test_pyfunc_inputs_and_params(proj):
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    register(proj)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    texts = ["great superb acting", "boring dreadful script", ""]
    frame = model.predict(pd.DataFrame({"text": texts}))
    assert list(frame["label"][:2]) == ["positive", "negative"] and len(frame) == 3
    probs = frame[["prob_negative", "prob_positive"]].to_numpy()
    assert abs(probs.sum(axis=1) - 1).max() < 1e-5
    assert model.predict({"text": texts}).equals(frame)  # dict of a list: one row per text
    assert model.unwrap_python_model().predict(None, texts).equals(frame)  # plain list
    with pytest.raises(MlflowException, match="missing inputs"):
        model.predict(pd.DataFrame({"review": texts}))
    with pytest.raises(MlflowException, match="params.output"):
        model.predict(pd.DataFrame({"text": texts}), params={"output": "logits"})


def test_gate_moves_champion_only_for_a_significant_gain(proj):
    strong = proj / "strong"
    import shutil

    shutil.copytree(proj / "models/finetuned", strong)
    tiny_pipeline.save_untrained(proj)
    weak = register(proj)  # below the TF-IDF floor: challenger, no champion yet
    assert weak["decision"] == "challenger" and weak["gate"]["checks"]["floor_vs_tfidf_lr"] is False
    first = register(proj, floor_vs_baselines=False)  # passes the floors: the first champion
    assert first["decision"] == "champion" and first["version"] == "2"

    shutil.rmtree(proj / "models/finetuned")
    shutil.copytree(strong, proj / "models/finetuned")
    better = register(proj)
    g = better["gate"]
    assert better["decision"] == "champion" and g["champion_version"] == "2"
    assert g["accuracy"] == 1.0 and g["gain"] > 0.2 and g["ci_low"] > 0
    assert g["gain"] == pytest.approx(g["accuracy"] - g["champion_accuracy"])
    same = register(proj)  # the same model again: no gain -> challenger
    assert same["decision"] == "challenger" and same["gate"]["gain"] == 0.0

    client = registry_client(proj)
    model = client.get_registered_model(NAME)
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": "3", "challenger": "4"}
    assert model.tags[registry.PREVIOUS] == "2"
    hist = registry.history(model)
    assert [(h["alias"], h["version"], h["status"]) for h in hist] == [
        ("challenger", "1", "done"), ("champion", "2", "done"), ("champion", "3", "done"),
        ("challenger", "4", "done")]


def test_promote_rollback_models_and_external_changes(proj, cli):
    register(proj)
    register(proj)  # same model: v2 is challenger
    code, out = cli("promote", "9")
    assert code == 1 and out.strip() == "error: model 'encoderflow' has no version '9'"
    code, out = cli("rollback")
    assert code == 1 and out.strip() == "error: model 'encoderflow' has no previous champion to roll back to"

    assert cli("promote", "2") == (0, "encoderflow: version 2 is now @champion (previous champion: 1; "
                                      "undo with `encoderflow rollback`)\n")
    client = registry_client(proj)
    model = client.get_registered_model(NAME)
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": "2"}  # challenger moved up
    assert model.tags[registry.PREVIOUS] == "1"
    assert cli("rollback")[1] == "encoderflow: @champion rolled back from version 2 to version 1\n"
    assert client.get_registered_model(NAME).tags[registry.PREVIOUS] == "2"

    # a change made in the MLflow UI (same API the UI calls) is recorded when observed
    client.set_registered_model_alias(NAME, "champion", "2")
    code, out = cli("models", "--history")
    assert code == 0 and "ui/external" in out and "gate" in out and "rollback" in out
    model = client.get_registered_model(NAME)
    last = registry.history(model)[-1]
    assert last["by"] == "ui/external" and last["changes"] == {"champion": ["1", "2"]}
    assert model.tags[registry.PREVIOUS] == "1"  # so rollback still knows where to return
    assert cli("models", "--history")[1].count("ui/external") == 1  # recorded once
    code, out = cli("models")
    assert code == 0 and "@champion" in out and "1.0000" in out
    assert cli("rollback")[0] == 0
    assert str(client.get_registered_model(NAME).aliases["champion"]) == "1"


class Crash(Exception):
    pass


class CrashingClient:
    """The real client, killed at one registry write (a process dying mid-promotion)."""

    def __init__(self, client, method: str, when=lambda *a: True):
        self._client, self._method, self._when = client, method, when

    def __getattr__(self, attr):
        real = getattr(self._client, attr)
        if attr != self._method:
            return real

        def dying(*args):
            if self._when(*args):
                raise Crash(attr)
            return real(*args)
        return dying


def test_interrupted_promotion_leaves_consistent_aliases(proj):
    register(proj)
    register(proj)  # v1 champion, v2 challenger
    client = registry_client(proj)
    # dies after the alias moved, before previous_champion was written
    crashing = CrashingClient(client, "set_registered_model_tag", lambda n, k, v: k == registry.PREVIOUS)
    with pytest.raises(Crash):
        registry.promote(crashing, NAME, "2")
    model = client.get_registered_model(NAME)
    assert str(model.aliases["champion"]) == "2" and registry.PREVIOUS not in model.tags
    assert registry.history(model)[-1]["status"] == "pending"
    assert registry.recover(client, NAME) == 1  # every command runs this first
    model = client.get_registered_model(NAME)
    assert model.tags[registry.PREVIOUS] == "1" and "challenger" not in model.aliases
    assert registry.history(model)[-1]["status"] == "done"
    assert "recovery" in registry.history(model)[-1]["note"]

    # dies before the alias moved: nothing changed, the journal entry is aborted
    with pytest.raises(Crash):
        registry.rollback(CrashingClient(client, "set_registered_model_alias"), NAME)
    assert str(client.get_registered_model(NAME).aliases["champion"]) == "2"
    registry.sync(client, NAME)
    model = client.get_registered_model(NAME)
    assert registry.history(model)[-1]["status"] == "aborted"
    assert registry.observe(client, NAME) == []  # aliases agree with the last done record
    assert registry.rollback(client, NAME) == ("2", "1")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_registry_fails_fast_and_changes_nothing(proj, cli):
    uri = f"http://127.0.0.1:{closed_port()}"
    from components.stages import register as stage

    with pytest.raises(EncoderflowError) as err:
        stage.run(load_params(proj / "params.yaml", [f"project.tracking_uri={uri}"]), Paths.at(proj))
    msg = str(err.value)
    assert msg.startswith(f"MLflow registry at {uri} is unreachable (") and "\n" not in msg
    assert not (proj / "reports/register.json").exists()
    code, out = cli("promote", "1", "--set", f"project.tracking_uri={uri}")
    assert code == 1 and out.startswith(f"error: MLflow registry at {uri} is unreachable") and out.count("\n") == 1


def test_missing_or_bad_inputs_are_one_line_errors(proj, cli):
    metrics = json.loads((proj / "reports/metrics.json").read_text())
    del metrics["baseline.tfidf_lr.accuracy"]
    (proj / "reports/metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(DataError, match=r"key 'baseline.tfidf_lr.accuracy' not found .*floor_vs_baselines"):
        register(proj)
    assert register(proj, floor_vs_baselines=False)["decision"] == "champion"
    (proj / "models/finetuned/config.json").unlink()
    with pytest.raises(DataError, match=r"models/finetuned/config.json: not found"):
        register(proj)
    code, out = cli("models", "--set", "register.model_name=nope")
    assert code == 1 and out == "error: registered model 'nope' not found (run the register stage first)\n"


def test_a_baseline_that_beats_every_neural_model_is_registered_and_served(proj, tmp_path, capsys):
    """An untrained student loses to bag-of-words: register says so in one line and registers
    evaluate's best baseline as <name>-baseline through the same gate, a torch-free pyfunc with
    the same raw-text signature."""
    import mlflow
    import pandas as pd

    tiny_pipeline.save_untrained(proj)
    tiny_pipeline.run_stages(proj, ["evaluate"])
    metrics = json.loads((proj / "reports/metrics.json").read_text())
    best = json.loads((proj / "models/baseline/config.json").read_text())["name"]
    assert metrics[f"baseline.{best}.accuracy"] > metrics["model.accuracy"]
    report = register(proj)
    lines = [line for line in capsys.readouterr().out.splitlines() if "no neural model" in line]
    assert len(lines) == 1 and f"{NAME}-baseline" in lines[0]
    b = report["baseline"]
    assert (b["model_name"], b["version"]) == (f"{NAME}-baseline", "1") and b["decision"] == "champion"
    assert report["decision"] == "challenger"  # the student failed its floors
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}-baseline/1", dst_path=str(tmp_path / "dl")))
    reqs = {r.split("==")[0] for r in (local / "requirements.txt").read_text().split()}
    assert "torch" not in reqs and "scipy" in reqs
    model = mlflow.pyfunc.load_model(f"models:/{NAME}-baseline@champion")
    texts = pd.read_parquet(proj / "data/prepared/test.parquet")
    out = model.predict(texts[["text"]])
    assert list(out.columns) == ["label", "label_id", "prob_negative", "prob_positive"]
    assert (out["label"] == texts["label_name"]).mean() == pytest.approx(metrics[f"baseline.{best}.accuracy"])
