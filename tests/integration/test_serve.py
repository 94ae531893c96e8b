"""`mlflow models serve` on the registered champion answers POST /invocations (loopback only).

    MLFLOW_TRACKING_URI=sqlite:///$PWD/mlflow.db \
      mlflow models serve -m models:/encoderflow@champion --env-manager local -h 127.0.0.1 -p 5001
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.core.config import load_params
from components.core.paths import Paths
from components.core.tracking import tracking_uri

import tiny_pipeline

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_ready(port: int, proc: subprocess.Popen, log: Path, seconds: float = 180, path: str = "/ping") -> None:
    """Until http://127.0.0.1:port{path} answers; fails with the log's tail if `proc` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"server not ready after {seconds}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def served(tmp_path_factory, tmp_path, monkeypatch):
    from components.stages import register

    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory), tmp_path / "p", with_store=True)
    monkeypatch.chdir(root)
    cfg = load_params(root / "params.yaml")
    register.run(cfg, Paths.at(root))
    with serving(root, "models:/encoderflow@champion", tmp_path / "serve.log") as port:
        yield port


@contextlib.contextmanager
def serving(root: Path, uri: str, log: Path):
    """`mlflow models serve -m uri` on a free loopback port against root's store; yields the port."""
    cfg = load_params(root / "params.yaml")
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(cfg.project, root),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                                 uri, "--env-manager", "local",
                                 "-h", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(port, proc, log)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: our own process group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


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
