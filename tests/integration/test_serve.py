"""`mlflow models serve` on the registered champion answers POST /invocations (loopback only).

    MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db \
      mlflow models serve -m models:/encoderflow@champion --env-manager local -h 127.0.0.1 -p 5001
"""

from __future__ import annotations

import pytest

from components.core.config import load_params
from components.core.paths import Paths

from builders import tiny_pipeline
from builders.serving import post, serving

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path_factory, tmp_path, monkeypatch):
    from components.stages import register

    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory), tmp_path / "p", with_store=True)
    monkeypatch.chdir(root)
    cfg = load_params(root / "params.yaml")
    register.run(cfg, Paths.at(root))
    with serving(root, "models:/encoderflow@champion", tmp_path / "serve.log") as port:
        yield port


def test_served_champion_answers_labels_embeddings_and_schema_errors(served):
    code, body = post(served, {"dataframe_split": {"columns": ["text"],
                                                   "data": [["a great and superb film"], ["dull awful plot"]]}})
    assert code == 200
    preds = body["predictions"]
    assert [p["label"] for p in preds] == ["positive", "negative"]
    assert set(preds[0]) == {"label", "label_id", "prob_negative", "prob_positive"}
    assert abs(preds[0]["prob_negative"] + preds[0]["prob_positive"] - 1) < 1e-5

    code, body = post(served, {"inputs": ["a great and superb film", "dull awful plot"]})
    assert code == 200 and [p["label"] for p in body["predictions"]] == ["positive", "negative"]

    code, body = post(served, {"dataframe_records": [{"text": "x"}, {"text": "y"}],
                               "params": {"output": "embedding"}})
    assert code == 200 and len(body["predictions"]) == 2 and len(body["predictions"][0]) == 32

    code, body = post(served, {"dataframe_records": [{"review": "a great film"}]})
    assert code == 400 and "missing inputs ['text']" in body["message"]
    code, body = post(served, {"dataframe_records": [{"text": "a"}], "params": {"output": "logits"}})
    assert code == 400 and "params.output" in body["message"]
