"""Batch predict / embed with the registered champion: formats, streaming, determinism, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.core.config import load_params
from components.core.errors import DataError, EncoderflowError
from components.core.paths import Paths
from components.registry import predict
from components.registry.batch_read import read_batches
from components.registry.load import load_model

from builders import tiny_pipeline

URI = "models:/encoderflow@champion"


@pytest.fixture(scope="module")
def proj(built, tmp_path_factory):
    """One registered champion for the whole module (tests here only read the registry). It is the
    torch pyfunc (register.serving torch), so the local folder must answer byte for byte like it;
    the default ONNX version is held to torch in tests/integration/test_onnx_serving.py."""
    import os

    from components.stages import register

    root = tiny_pipeline.clone(built, tmp_path_factory.mktemp("predict"), with_store=True)
    old = os.getcwd()
    os.chdir(root)
    register.run(load_params(root / "params.yaml", ["register.serving=torch"]), Paths.at(root))
    yield root
    os.chdir(old)


@pytest.fixture
def inputs(proj, tmp_path):
    rows = tiny_pipeline.sentences(150, seed=7)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "text": [t for t, _ in rows]})
    frame.loc[3, "text"] = ""  # empty text still gets a prediction
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.to_parquet(tmp_path / "in.parquet", row_group_size=40)
    with open(tmp_path / "in.jsonl", "w") as fh:
        for rec in frame.to_dict("records"):
            fh.write(json.dumps(rec) + "\n")
    return frame, tmp_path


def test_predict_every_format_same_answers_twice_identical(inputs, cli):
    frame, d = inputs
    results = {}
    for src, out in [("in.csv", "a.csv"), ("in.jsonl", "a.jsonl"), ("in.parquet", "a.parquet")]:
        code, msg = cli("predict", str(d / src), "-o", str(d / out), "--model", URI)
        assert code == 0, msg
        assert f"predict: 150 rows scored with {URI}" in msg
        results[out] = (pd.read_csv(d / out) if out.endswith(".csv") else
                        pd.read_json(d / out, lines=True) if out.endswith(".jsonl") else pd.read_parquet(d / out))
    for out, got in results.items():
        assert list(got.columns) == ["id", "text", "label", "label_id", "prob_negative", "prob_positive"], out
        assert got["id"].tolist() == frame["id"].tolist()  # input order kept
        assert got["label"].tolist() == results["a.parquet"]["label"].tolist()
        np.testing.assert_allclose(got["prob_positive"], results["a.parquet"]["prob_positive"], atol=1e-6)
    truth = ["positive" if any(w in t.split() for w in tiny_pipeline.POS) else "negative" for t in frame["text"]]
    agree = np.mean(np.array(truth)[frame["text"] != ""] == results["a.csv"]["label"][frame["text"] != ""])
    assert agree > 0.9  # the tiny model learned the task
    first = (d / "a.csv").read_bytes()
    assert cli("predict", str(d / "in.csv"), "-o", str(d / "a.csv"))[0] == 0  # default: @champion
    assert (d / "a.csv").read_bytes() == first
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_streaming_reads_in_batches_and_batching_does_not_change_results(inputs):
    _, d = inputs
    batches = list(read_batches(d / "in.csv", block_bytes=2048))
    assert len(batches) > 1 and sum(b.num_rows for b in batches) == 150
    assert [b.num_rows for b in read_batches(d / "in.parquet", parquet_rows=40)] == [40, 40, 40, 30]
    assert len(list(read_batches(d / "in.jsonl", block_bytes=2048))) > 1
    model = load_model(URI)
    assert predict.predict_file(model, d / "in.parquet", d / "small.parquet", chunk_rows=16, progress=False) == 150
    predict.predict_file(model, d / "in.parquet", d / "big.parquet", chunk_rows=1024, progress=False)
    small, big = pd.read_parquet(d / "small.parquet"), pd.read_parquet(d / "big.parquet")
    assert small["label"].tolist() == big["label"].tolist()
    np.testing.assert_allclose(small["prob_positive"], big["prob_positive"], atol=1e-5)


def test_embed_npy_and_parquet_agree(inputs, cli):
    frame, d = inputs
    code, msg = cli("embed", str(d / "in.jsonl"), "-o", str(d / "e.npy"))
    assert code == 0 and "150 rows x 32 dims" in msg, msg
    assert cli("embed", str(d / "in.csv"), "-o", str(d / "e.parquet"))[0] == 0
    vecs = np.load(d / "e.npy")
    table = pd.read_parquet(d / "e.parquet")
    assert vecs.shape == (150, 32) and vecs.dtype == np.float32
    assert table["id"].tolist() == frame["id"].tolist()
    np.testing.assert_allclose(np.stack(table["embedding"].to_numpy()), vecs, atol=1e-5)
    model = load_model(URI)
    direct = model.predict(frame[["text"]].head(5), params={"output": "embedding"})
    np.testing.assert_allclose(direct, vecs[:5], atol=1e-5)
    assert cli("embed", str(d / "in.csv"), "-o", str(d / "e.npy"))[0] == 0
    np.testing.assert_array_equal(np.load(d / "e.npy"), vecs)  # twice: identical


def test_bad_inputs_are_one_line_errors(inputs, cli):
    frame, d = inputs
    frame.rename(columns={"text": "body"}).to_csv(d / "notext.csv", index=False)
    frame.rename(columns={"text": "body"}).to_parquet(d / "notext.parquet")
    frame.rename(columns={"text": "body"}).to_json(d / "notext.jsonl", orient="records", lines=True)
    for name in ("notext.csv", "notext.parquet", "notext.jsonl"):
        code, out = cli("predict", str(d / name), "-o", str(d / "x.csv"))
        assert code == 1 and out.count("\n") == 1, out
        assert out.startswith(f"error: {d / name}: column 'text' not found (columns: ")
    assert not (d / "x.csv").exists()
    code, out = cli("predict", str(d / "in.csv"), "-o", str(d / "x.csv"), "--model", "models:/encoderflow/99")
    assert code == 1 and out.startswith("error: model 'models:/encoderflow/99' could not be loaded (")
    assert out.count("\n") == 1
    code, out = cli("predict", str(d / "in.csv"), "-o", str(d / "x.csv"), "--model", str(d / "no-such-model"))
    assert code == 1 and out.startswith(f"error: {d / 'no-such-model'}: model folder not found (")
    assert cli("predict", str(d / "in.txt"), "-o", str(d / "x.csv"))[1].startswith(
        f"error: {d / 'in.txt'}: unsupported input format .txt (expected .csv, .jsonl, .parquet)")
    assert cli("embed", str(d / "in.csv"), "-o", str(d / "x.csv"))[1].startswith(
        f"error: {d / 'x.csv'}: unsupported output format .csv (expected .parquet, .npy)")
    assert cli("predict", str(d / "missing.csv"), "-o", str(d / "x.csv"))[1] == (
        f"error: {d / 'missing.csv'}: input file not found\n")
    with pytest.raises(DataError, match="column 'text' not found"):
        next(read_batches(d / "notext.csv"))
    with pytest.raises(EncoderflowError, match="could not be loaded"):
        load_model("runs:/0123456789abcdef/model")


def test_a_local_model_folder_scores_exactly_like_its_registered_version(inputs, cli):
    """`--model models/finetuned` (no registry involved) = the registered pyfunc of that folder."""
    import shutil
    from pathlib import Path

    frame, d = inputs
    for cmd, out in (("predict", "csv"), ("embed", "npy")):
        assert cli(cmd, str(d / "in.csv"), "-o", str(d / f"reg.{out}"), "--model", URI)[0] == 0
        code, msg = cli(cmd, str(d / "in.csv"), "-o", str(d / f"dir.{out}"), "--model", "models/finetuned")
        assert code == 0 and "with models/finetuned ->" in msg, msg
        assert (d / f"dir.{out}").read_bytes() == (d / f"reg.{out}").read_bytes(), cmd
    import mlflow

    tiny_pipeline.registry_client(Path("."))  # mlflow -> the project's store
    mlmodel = Path(mlflow.artifacts.download_artifacts(URI, dst_path=str(d / "dl")))  # an MLflow model folder
    assert (mlmodel / "MLmodel").is_file()
    assert cli("predict", str(d / "in.csv"), "-o", str(d / "mlmodel.csv"), "--model", str(mlmodel))[0] == 0
    assert (d / "mlmodel.csv").read_bytes() == (d / "reg.csv").read_bytes()
    broken = d / "broken"
    shutil.copytree("models/finetuned", broken)
    (broken / "config.json").write_text("{}")
    for model, why in (("models/pretrained", "an encoder folder without a classification head"),
                       ("data", "not a model folder (no model.safetensors, config.json, tokenizer.json;"),
                       (str(d / "in.csv"), "not a model folder (a file)"),
                       (str(broken), "not a valid fine-tuned model folder (KeyError")):
        code, out = cli("predict", str(d / "in.csv"), "-o", str(d / "x.csv"), "--model", model)
        assert code == 1 and out.count("\n") == 1 and out.startswith(f"error: {model}: {why}"), out
    assert not (d / "x.csv").exists()
