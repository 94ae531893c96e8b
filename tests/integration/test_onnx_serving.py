"""`encoderflow export`, register.serving onnx and predict / embed through an ONNX version.

Runs on the real tiny pipeline (tests/tiny_pipeline.py, built once per session) and a real
sqlite MLflow store. The bad inputs are one-line errors with nothing written or registered.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from components.core.errors import DataError
from components.registry import onnx_export
from components.registry.load import load_model
from components.registry.onnx_runtime import CONFIG, GRAPH

from builders import tiny_pipeline
from builders.tiny_pipeline import register, registry_client

NAME = "encoderflow"


@pytest.fixture
def proj(tmp_path_factory, tmp_path, monkeypatch):
    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory), tmp_path / "proj", with_store=True)
    monkeypatch.chdir(root)
    return root


def cli(*args):
    from flows.cli import app

    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def scored(*args) -> pd.DataFrame:
    code, out = cli("predict", "in.csv", "-o", "out.csv", *args)
    assert code == 0, out
    return pd.read_csv("out.csv")


@pytest.mark.slow
def test_export_a_folder_and_predict_through_it(proj):
    texts = [t for t, _ in tiny_pipeline.sentences(40, seed=9)] + ["", "a " * 200]
    pd.DataFrame({"text": texts}).to_csv("in.csv", index=False)
    code, out = cli("export", "models/finetuned", "--format", "onnx", "-o", "exported")
    assert code == 0, out
    assert out.startswith("export: models/finetuned (transformer) -> exported (fp32)")
    assert {p.name for p in Path("exported").iterdir()} == {GRAPH, CONFIG, "tokenizer.json"}
    torch_out, onnx_out = scored("--model", "models/finetuned"), scored("--model", "exported")
    assert list(onnx_out.columns) == list(torch_out.columns)
    assert onnx_out["label"].tolist() == torch_out["label"].tolist()
    probs = ["prob_negative", "prob_positive"]
    assert np.abs(onnx_out[probs].to_numpy() - torch_out[probs].to_numpy()).max() <= 1e-4

    code, out = cli("export", "models/finetuned", "--int8", "-o", "exported")  # an earlier export: replaced
    assert code == 0 and "int8 vs torch on 96 probe texts" in out, out
    assert json.loads(Path("exported", CONFIG).read_text())["precision"] == "int8"
    code, out = cli("embed", "in.csv", "-o", "vecs.npy", "--model", "exported")
    assert code == 0 and np.load("vecs.npy").shape == (len(texts), 32), out


@pytest.mark.slow
def test_export_bad_inputs_are_one_line_errors_with_nothing_written(proj):
    broken = Path("broken")
    shutil.copytree("models/finetuned", broken)
    (broken / "model.safetensors").unlink()
    code, out = cli("export", "broken", "-o", "x")
    assert code == 1 and out == "error: broken/model.safetensors: not found (expected a folder written by finetune)\n"

    shutil.copyfile("models/finetuned/model.safetensors", broken / "model.safetensors")
    meta = json.loads((broken / "config.json").read_text())
    meta["backbone"]["encoder"]["family"] = "gru"
    (broken / "config.json").write_text(json.dumps(meta))
    code, out = cli("export", "broken", "-o", "x")
    assert code == 1 and out.startswith("error: broken: cannot export this model (model.family: expected") \
        and "got 'gru'" in out and out.count("\n") == 1, out

    code, out = cli("export", "models/finetuned", "--format", "tflite", "-o", "x")
    assert code == 1 and out == "error: --format: expected one of onnx, got 'tflite'\n"
    code, out = cli("export", "models/finetuned", "-o", "models/pretrained")  # not an export: never replaced
    assert code == 1 and "models/pretrained: exists and is not an earlier export" in out
    code, out = cli("export", "models/pretrained", "-o", "x")  # an encoder without a head
    assert code == 1 and out.startswith("error: models/pretrained: not a valid fine-tuned model folder"), out
    code, out = cli("export", "no/such", "-o", "x")
    assert code == 1 and out.startswith("error: no/such: model folder not found")
    assert not Path("x").exists() and (Path("models/pretrained") / "model.safetensors").is_file()


def test_register_serving_is_validated():
    from components.core.config import Params, parse_params
    from components.core.errors import ConfigError

    assert Params().register.serving == "onnx" and Params().register.onnx_tolerance == 1e-4
    with pytest.raises(ConfigError, match=r"^params.yaml: register.serving: expected one of 'torch', 'onnx', got 'tf'$"):
        parse_params({"register": {"serving": "tf"}})
    with pytest.raises(ConfigError, match=r"^params.yaml: register.onnx_tolerance: expected a float > 0 and <= 1, got 0$"):
        parse_params({"register": {"onnx_tolerance": 0}})


def test_int8_refuses_a_graph_it_cannot_quantize(tmp_path):
    """No weight matrix to quantize (or no kernel for one): a one-line error naming the family."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "m.onnx")
    with pytest.raises(DataError, match=r"^--int8: ONNX Runtime cannot quantize the static model "
                                        r"\(no weight matrix was quantized\)$"):
        onnx_export.quantize(tmp_path / "m.onnx", tmp_path / "q.onnx", "static")


TORCH_BLOCKED = r"""
import json, sys
sys.modules["torch"] = None  # `import torch` raises ImportError from here on
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[2])
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"text": ["a great and wonderful film", "dull awful plot"]}))
loaded = [k for k, m in sys.modules.items() if k.split(".")[0] == "torch" and m is not None]
print(json.dumps({"labels": out["label"].tolist(), "torch": loaded}))
"""


@pytest.mark.slow
def test_onnx_version_serves_without_torch_and_predict_uses_it(proj, tmp_path):
    import mlflow

    report = register(proj)  # register.serving: onnx (the default)
    assert report["decision"] == "champion"
    out = subprocess.run([sys.executable, "-c", TORCH_BLOCKED, f"models:/{NAME}/1", mlflow.get_tracking_uri()],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"labels": ["positive", "negative"], "torch": []}
    # served, it warms up at load (its logged model_config); one-shot scoring opts out
    assert mlflow.pyfunc.load_model(f"models:/{NAME}/1").unwrap_python_model().warmed_up is True
    assert load_model(f"models:/{NAME}/1").unwrap_python_model().warmed_up is False

    pd.DataFrame({"text": [t for t, _ in tiny_pipeline.sentences(30, seed=3)]}).to_csv("in.csv", index=False)
    champion, folder = scored(), scored("--model", "models/finetuned")  # default: @champion, the ONNX version
    assert champion["label"].tolist() == folder["label"].tolist()
    assert np.abs(champion["prob_positive"] - folder["prob_positive"]).max() <= 1e-4
    code, msg = cli("export", f"models:/{NAME}/1", "-o", "again")
    assert code == 1 and "already an ONNX export" in msg, msg

    # register.serving torch: the torch pyfunc, which `encoderflow export` reads from the registry
    second = register(proj, serving="torch")
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/2", dst_path=str(tmp_path / "dl")))
    reqs = {r.split("==")[0] for r in (local / "requirements.txt").read_text().split()}
    assert "torch" in reqs and "onnxruntime" not in reqs and second["version"] == "2"
    code, msg = cli("export", f"models:/{NAME}/2", "-o", "from-registry")
    assert code == 0 and Path("from-registry", GRAPH).is_file(), msg


@pytest.mark.slow
def test_register_refuses_an_export_off_torch_and_registers_nothing(proj):
    with pytest.raises(DataError, match=r"register: register.serving is onnx, but the ONNX export of .*finetuned "
                                        r"differs from torch by \d\.\d\de-\d\d on the test split .*"
                                        r"register.onnx_tolerance 1e-12\): nothing registered, no alias moved"):
        register(proj, onnx_tolerance=1e-12)  # fp32 rounding alone is above 1e-12
    assert registry_client(proj).search_model_versions(f"name = '{NAME}'") == []
