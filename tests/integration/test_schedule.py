"""`encoderflow schedule` for real: a Prefect server on a free loopback port,
the flow served with a cron, one run triggered over the API, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import schedule

from builders import flow_project as fp
from builders.serving import free_port as _free_port

CRON = "0 3 * * *"


def test_unreachable_server_is_a_one_line_error(tmp_path):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "encoderflow"), "schedule", "--server",
         f"http://127.0.0.1:{_free_port()}/api"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error: --server http://127.0.0.1:")
    assert "Traceback" not in out.stderr


def _mlflow_runs(root):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def _wait_deployment(client, timeout: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return client.read_deployment_by_name("encoderflow/scheduled")
        except Exception:  # server not up yet, or deployment not created yet
            time.sleep(1)
    raise AssertionError(f"no deployment after {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_schedule_serves_the_flow_on_a_cron_and_stops_cleanly(tmp_path_factory, tmp_path):
    import psutil
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = fp.clone(fp.base(tmp_path_factory)[0], tmp_path / "p")
    port = _free_port()
    url = schedule.api_url("127.0.0.1", port)
    log = tmp_path / "schedule.log"
    env = {**os.environ, "PREFECT_HOME": str(root / ".prefect"), "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    env.pop("PREFECT_API_URL", None)
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "encoderflow"), "schedule", "--cron", CRON,
             "--port", str(port)], cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the SIGINT below is a terminal's Ctrl-C
            # A test run started in the background by a non-interactive shell inherits SIGINT
            # ignored, and Python then never raises KeyboardInterrupt: give the command a
            # terminal's default, as a user's Ctrl-C would find it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    children: list = []
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            dep = _wait_deployment(client, 300, proc, log)
            assert [s.schedule.cron for s in dep.schedules] == [CRON]
            assert all(s.active for s in dep.schedules)
            assert dep.parameters == {"root": str(root)}

            # A run with a --set style override, as from the UI's "custom run":
            # it must reach params.yaml (DVC reads it), so register really runs.
            run = client.create_flow_run_from_deployment(
                dep.id, parameters={"overrides": ["register.min_gain=0.02"]})
            deadline = time.monotonic() + 600
            while not (state := client.read_flow_run(run.id).state).is_final():
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                children = psutil.Process(proc.pid).children(recursive=True) or children
                time.sleep(1)
            assert state.is_completed(), (state.message, log.read_text()[-3000:])
        assert "min_gain: 0.02" in (root / "params.yaml").read_text()
        lock = fp.lock(root)["stages"]["register"]
        assert lock["params"]["params.yaml"]["register"]["min_gain"] == 0.02  # it ran via DVC
        assert fp.dvc_status(root) == ""
        runs = [r for r in _mlflow_runs(root) if r.data.tags.get("encoderflow.flow_run_id") == str(run.id)]
        assert sorted(r.info.run_name for r in runs) == ["pipeline", "register"]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # at least the server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        gone, alive = psutil.wait_procs(children, timeout=30)
        for p in alive:  # clean up before failing below
            p.kill()
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert not alive, [p.info if hasattr(p, "info") else p.pid for p in alive]
    assert not schedule.healthy(url, timeout=1)
    text = log.read_text()
    assert f"Prefect UI: http://127.0.0.1:{port}" in text and "Stopping the Prefect server" in text
