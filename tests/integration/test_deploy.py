"""`encoderflow deploy` for real: a Prefect server on a free loopback port, a process
work pool, the pipeline deployed to it, a `prefect worker` started in another folder
that runs one triggered run in the project's checkout, and the run's markdown summary
read back over the API. Bad input creates nothing and is one line."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builders import flow_project as fp
from builders import prefect_server

BIN = Path(sys.executable).parent
POOL = "encoderflow-test"
CRON = "0 3 1 1 *"  # far from now: the worker picks up only the run the test triggers


def _one_line_error(out: subprocess.CompletedProcess, start: str) -> str:
    assert out.returncode == 1, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), out.stderr
    return lines[0]


def test_bad_input_is_a_one_line_error_before_any_server_call(tmp_path):
    url = f"http://127.0.0.1:{prefect_server.free_port()}/api"
    absent = str(tmp_path / "absent")  # a path on the workers only: allowed
    out = fp.encoderflow(tmp_path, "deploy", "--pool", POOL, "--server", url, "--path", absent)
    assert url in _one_line_error(out, f"error: no Prefect API answering at {url}/health")
    out = fp.encoderflow(tmp_path, "deploy", "--pool", POOL, "--server", url, "--path", absent,
                         "--cron", "every day")
    _one_line_error(out, "error: --cron 'every day' / --timezone 'UTC': ")
    out = fp.encoderflow(tmp_path, "deploy", "--pool", POOL, "--server", url)
    _one_line_error(out, f"error: --path {tmp_path}: not an encoderflow checkout")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with prefect_server.running(tmp_path_factory.mktemp("prefect")) as url:
        yield url


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return fp.clone(fp.base(tmp_path_factory)[0], tmp_path_factory.mktemp("deploy") / "p")


@contextlib.contextmanager
def _client(url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        yield client


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_deploy_to_a_missing_pool_creates_nothing(server, project):
    with _client(server) as client:
        before = [d.name for d in client.read_deployments()]
        out = fp.encoderflow(project, "deploy", "--pool", "no-such-pool", "--server", server)
        line = _one_line_error(out, "error: work pool 'no-such-pool' does not exist at ")
        assert server in line and "prefect work-pool create no-such-pool --type process" in line
        assert [d.name for d in client.read_deployments()] == before
        assert "no-such-pool" not in [p.name for p in client.read_work_pools()]


def _prefect(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([str(BIN / "prefect"), *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, (out.stdout, out.stderr)
    return out


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_a_worker_runs_the_deployment_in_its_checkout(server, project, tmp_path):
    import psutil
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from flows.pipeline import ARTIFACT_KEY

    elsewhere = tmp_path / "worker-cwd"  # the worker starts here; runs still go to the checkout
    elsewhere.mkdir()
    env = {**os.environ, "PREFECT_API_URL": server, "PREFECT_HOME": str(tmp_path / "home"),
           "DO_NOT_TRACK": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    _prefect("work-pool", "create", POOL, "--type", "process", env=env, cwd=elsewhere)

    out = fp.encoderflow(project, "deploy", "--pool", POOL, "--cron", CRON, "--server", server)
    assert out.returncode == 0, out.stderr
    assert f"deployment encoderflow/{POOL} (" in out.stdout and f"runs in {project}" in out.stdout
    assert f"PREFECT_API_URL={server} prefect worker start --pool {POOL}" in out.stdout

    log = tmp_path / "worker.log"
    worker = None
    children: list = []
    try:
        with _client(server) as client:
            dep = client.read_deployment_by_name(f"encoderflow/{POOL}")
            assert dep.work_pool_name == POOL and dep.entrypoint == "flows.pipeline.pipeline"
            assert dep.parameters == {"root": str(project)}  # as `encoderflow schedule` serves it
            assert dep.job_variables == {"working_dir": str(project)}
            assert dep.pull_steps == [{"prefect.deployments.steps.set_working_directory":
                                       {"directory": str(project)}}]
            assert [s.schedule.cron for s in dep.schedules] == [CRON]

            # A "custom run" with an override: it reaches params.yaml, so register reruns.
            run = client.create_flow_run_from_deployment(
                dep.id, parameters={"overrides": ["register.min_gain=0.02"]})
            with open(log, "wb") as fh:
                worker = subprocess.Popen(
                    [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--run-once"],
                    cwd=elsewhere, env=env, stdout=fh, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 600
            while not (state := client.read_flow_run(run.id).state).is_final():
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                with_children = psutil.Process(worker.pid).children(recursive=True) \
                    if worker.poll() is None else []
                children = with_children or children
                time.sleep(1)
            assert state.is_completed(), (state.message, log.read_text()[-3000:])
            worker.wait(120)  # --run-once: exits once its run is over
            assert worker.returncode == 0, log.read_text()[-3000:]

            arts = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ARTIFACT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            assert [a.type for a in arts] == ["markdown"]
            md = arts[0].data
            assert "Status: **completed**" in md and "| register | ran |" in md, md
            assert "| ingest | skipped |" in md and "## Metrics vs baselines" in md, md
        assert "min_gain: 0.02" in (project / "params.yaml").read_text()
        assert fp.dvc_status(project) == ""
        assert not list(elsewhere.iterdir())  # nothing was written where the worker started
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        # The flow-run process has a process group of its own (Prefect isolates it).
        gone, alive = psutil.wait_procs(children, timeout=30)
        for p in alive:
            p.kill()
    assert not alive, [p.pid for p in alive]
