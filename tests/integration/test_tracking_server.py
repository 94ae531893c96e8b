"""A project whose project.tracking_uri is an MLflow server that does not answer: `encoderflow
run` and `stage` fail in seconds with one line naming the address, before any stage; `ui`
points at the server; a scheduled flow run fails fast too. No PostgreSQL needed; the real
server on PostgreSQL is tests/system/test_postgres.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builders import flow_project as fp
from builders import tiny_pipeline
from builders.serving import free_port


def _dead_server_project(root: Path) -> str:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    tiny_pipeline.write_project(root, n=40, overrides={"project": {"tracking_uri": uri}})
    return uri


@pytest.mark.parametrize("command", [("run",), ("stage", "ingest")], ids=["run", "stage-by-hand"])
def test_unreachable_tracking_server_fails_in_seconds_before_any_stage(tmp_path, command):
    uri = _dead_server_project(tmp_path)
    t0 = time.monotonic()
    res = fp.encoderflow(tmp_path, *command, timeout=300)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.splitlines() == [f"error: MLflow tracking server at {uri} is unreachable "
                                       "([Errno 111] Connection refused)"]
    assert time.monotonic() - t0 < 60  # MLflow's own retries would take minutes
    assert not (tmp_path / "data").exists() and not (tmp_path / "reports").exists()


def test_ui_without_backend_on_a_server_project_points_at_the_server(project, cli):
    uri = _dead_server_project(project)
    code, output = cli("ui", "--port", "9")
    assert code == 1 and output.splitlines() == [
        f"error: project.tracking_uri {uri} is already a server: open it in a browser (or start one with --backend)"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # the flow's subprocess is bounded at 600 s
def test_a_scheduled_flow_run_fails_fast_on_an_unreachable_server_too(tmp_path):
    """The flow itself checks (scheduled runs and work-pool workers do not go through the CLI)."""
    uri = _dead_server_project(tmp_path)
    code = "from flows.pipeline import run_local; o = run_local('.'); print(o.ok, o.message)"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PREFECT_HOME": str(tmp_path / ".prefect")})
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.splitlines()[-1] == (f"False MLflow tracking server at {uri} is unreachable "
                                           "([Errno 111] Connection refused)")
    assert not (tmp_path / "data").exists()
