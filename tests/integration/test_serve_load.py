"""A short load test of `mlflow models serve` on an ONNX version, from a torch-free venv (CI).

The tiny pipeline's model is registered with register.serving onnx; a fresh venv gets the
version's own requirements (pip, from the configured package registry; mlflow-skinny, no
torch), once per test session, and the downloaded version is served from it as
benchmarks/serve_load.py serves it (whose helpers this
test drives: clients, bad requests, RSS sampling). Asserted: zero errors under a few seconds
of 1 and 4 clients, and the answers to the bad requests (a 4xx, or a 200 in bounded time;
the server up after each). No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from components.core.config import load_params
from components.core.paths import Paths
from components.registry.client import connect

from builders import tiny_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.network]
ROOT = Path(__file__).resolve().parents[2]


def _serve_load():
    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "benchmarks" / "serve_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def onnx_served(tmp_path_factory):
    """(project, version URI, venv folder, build info): registered once, venv built once per session."""
    from components.stages import register

    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory), tmp_path_factory.mktemp("load"),
                               with_store=True)
    old = os.getcwd()
    os.chdir(root)
    try:
        register.run(load_params(root / "params.yaml"), Paths.at(root))
        sl = _serve_load()
        uri = "models:/encoderflow/1"
        venv = tmp_path_factory.mktemp("onnx-venv") / "venv"
        info = sl.build_venv(venv, sl.model_requirements(uri), slim=True)  # no pip, no bytecode
        print(f"\ntorch-free serving venv: {info['mb']:.0f} MiB, built in {info['seconds']:.0f} s")
    finally:
        os.chdir(old)
    return root, uri, venv, info


def test_torch_free_server_takes_load_and_bad_requests(onnx_served, tmp_path):
    root, uri, venv, info = onnx_served
    sl = _serve_load()
    assert "torch" not in {r.split("==")[0].lower() for r in info["requirements"]}
    assert not list(venv.glob("lib/python*/site-packages/torch")), "torch got into the serving venv"
    # slim: no pip in the venv and no bytecode of what was installed
    assert info["slim"] and info["bytecode_mb"] == 0 and not (venv / "bin" / "pip").exists(), info
    connect(load_params(root / "params.yaml").project, root)  # this test's store, for the download
    with sl.serving(sl.download(uri, tmp_path / "model"), venv, tmp_path / "serve.log") as (port, pid):
        rss = sl.RssSampler(pid)
        rss.start()
        for clients in (1, 4):
            row = sl.drive(port, clients, seconds=3, per_request=2)
            assert row["requests"] > 0 and row["errors"] == 0, row
        bad = {row["name"]: row for row in sl.bad_requests(port, timeout=120)}
        assert bad["malformed JSON"]["status"] == 400 and bad["missing text column"]["status"] == 400, bad
        assert bad["10,000 texts"]["status"] == 200 and bad["10 MB body"]["ok"], bad
        assert all(row["alive"] for row in bad.values()), bad
        after = sl.drive(port, 2, seconds=1, per_request=1)
        assert after["requests"] > 0 and after["errors"] == 0, after
        rss.stop.set()
        rss.join()
    assert rss.samples, "the server's RSS was never read"
