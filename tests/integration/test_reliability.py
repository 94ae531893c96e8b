"""Reliability: one pipeline at a time, failed runs marked failed, safe promotion.

- the run lock (components/core/runlock.py): a second `encoderflow run` is refused at
  once naming the first one's pid; a SIGKILLed holder leaves no stuck lock;
- a failing stage: non-zero exit naming the stage, FAILED MLflow runs (stage and
  parent), a Failed Prefect flow run, nothing downstream;
- promotion: a worse or tied model never takes @champion (the gate's property test is in
  tests/unit/test_gate.py), rollback restores the
  previous champion, every alias change is audited, and an exception at ANY
  registry call of a promotion leaves the old state or the complete new one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.core import runlock
from components.registry import client as registry
from components.stages.table import NAMES

from builders import flow_project as fp
from builders import tiny_pipeline

NAME = "encoderflow"
HOLD = r"""
import sys, time
from components.core import runlock
with runlock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def _wait(pred, seconds: float, what: str, proc: subprocess.Popen | None = None):
    """Poll `pred` until truthy (not a timing assertion: a generous hang guard)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited first ({proc.returncode}):\n"
                                 f"{proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _holder_process(root: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], cwd=fp.REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


# --- 1. one run at a time -------------------------------------------------------------

def test_lock_names_its_holder_refuses_others_and_dies_with_it(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    fp.write_params(root)
    assert runlock.holder(root) is None
    proc = _holder_process(root)
    try:
        assert runlock.holder(root) == proc.pid
        with pytest.raises(runlock.AlreadyRunning, match=rf"^pipeline already running \(pid {proc.pid}\)"):
            with runlock.hold(root):
                pass
        # a stage started by hand would interleave outputs with the running pipeline
        out = fp.encoderflow(root, "stage", "ingest", timeout=120)
        assert out.returncode == 1
        assert out.stderr.startswith(f"error: pipeline already running (pid {proc.pid})")
        assert out.stderr.count("\n") == 1 and not (root / "data" / "prepared").exists()
        for cmd in (("promote", "1"), ("rollback",)):  # hand alias changes wait for the run too
            out = fp.encoderflow(root, *cmd, timeout=120)
            assert out.returncode == 1, (cmd, out.stderr)
            assert out.stderr.startswith(f"error: pipeline already running (pid {proc.pid})"), cmd
        assert not (root / "mlflow.db").exists()  # refused before touching the registry
    finally:
        proc.send_signal(signal.SIGKILL)  # no cleanup code runs: the OS drops the flock
        proc.wait()
    assert runlock.holder(root) is None
    with runlock.hold(root):
        assert runlock.holder(root) == os.getpid()
        assert (root / ".encoderflow" / "run.lock").read_text().strip() == str(os.getpid())
    assert runlock.holder(root) is None
    assert (root / ".encoderflow" / ".gitignore").read_text().endswith("*\n")  # not in git status


def test_lock_is_reentrant_for_its_process_and_children_only(tmp_path):
    code = "import sys; from components.core import runlock\nwith runlock.hold(sys.argv[1]): print('in')"
    child = lambda env: subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=fp.REPO,  # noqa: E731
                                       env=env, capture_output=True, text=True)
    with runlock.hold(tmp_path):
        with runlock.hold(tmp_path):  # the flow inside `encoderflow run`
            assert runlock.holder(tmp_path) == os.getpid()
        ours = child(dict(os.environ))  # a stage subprocess: inherits ENCODERFLOW_RUN_LOCK_PID
        assert ours.returncode == 0 and ours.stdout == "in\n"
        stranger = child({k: v for k, v in os.environ.items() if k != runlock.PID_ENV})
        assert stranger.returncode != 0 and f"pipeline already running (pid {os.getpid()})" in stranger.stderr
    assert runlock.PID_ENV not in os.environ and runlock.holder(tmp_path) is None


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_second_run_is_refused_while_the_first_completes(tmp_path):
    root = fp.make(tmp_path / "p", n=96)
    env = {**os.environ, "PREFECT_HOME": str(root / ".prefect")}
    first = subprocess.Popen([str(Path(sys.executable).parent / "encoderflow"), "run"], cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: runlock.holder(root) == first.pid, 120, "the first run to take the lock", first)
        second = fp.encoderflow(root, "run", timeout=120)
        assert second.returncode == 1
        assert second.stderr.startswith(f"error: pipeline already running (pid {first.pid})")
        assert second.stderr.count("\n") == 1 and "Where to look" not in second.stdout
        log, _ = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, log[-4000:]
    assert runlock.holder(root) is None
    assert fp.dvc_status(root) == "" and list(fp.lock(root)["stages"]) == list(NAMES)
    assert json.loads((root / "reports" / "register.json").read_text())["version"] == "1"
    runs = _mlflow_runs(root)
    assert [r.info.status for r in runs if r.info.run_name == "pipeline"] == ["FINISHED"]
    assert sorted(r.info.run_name for r in runs if r.info.run_name != "pipeline") == sorted(NAMES)

    # Nothing changed: the next run says so from `dvc status` and starts neither Prefect nor MLflow.
    from flows.cli import UP_TO_DATE

    before = (root / "dvc.lock").read_bytes()
    again = fp.encoderflow(root, "run", timeout=120)
    assert again.returncode == 0 and again.stdout.strip() == UP_TO_DATE, again.stdout + again.stderr
    assert len(_mlflow_runs(root)) == len(runs) and (root / "dvc.lock").read_bytes() == before


# --- 2. a failing stage ----------------------------------------------------------------

def _mlflow_runs(root: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              order_by=["attributes.start_time ASC"])


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_failing_stage_fails_everything_that_tracks_it_and_stops_the_run(tmp_path, monkeypatch):
    import typer
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.testing.utilities import prefect_test_harness

    from flows import cli

    root = fp.make(tmp_path / "p", n=96)
    fp.skew_file(root)  # train becomes >90% one label: a critical validation failure
    monkeypatch.chdir(root)
    monkeypatch.setenv("PREFECT_HOME", str(root / ".prefect"))
    # The `run` command itself, called directly: under CliRunner, Prefect and DVC would
    # bind their log handlers to its temporary streams, closed after the call.
    printed: list[str] = []
    monkeypatch.setattr(typer, "echo", lambda msg="", **kw: printed.append(str(msg)))
    monkeypatch.setattr(typer, "secho", lambda msg="", **kw: printed.append(str(msg)))
    with prefect_test_harness(server_startup_timeout=180):
        with pytest.raises(typer.Exit) as exited:
            cli.run(params=Path("params.yaml"), set_=None, force=False)
        assert exited.value.exit_code == 1
        output = "\n".join(printed)
        [error] = [line for line in output.splitlines() if line.startswith("error: ")]
        assert error.startswith("error: stage 'validate' failed: ") and "critical" in error
        flow_run_id = re.search(r"Prefect flow run\s+([0-9a-f-]{36})", output).group(1)
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    assert state.is_failed() and state.message.startswith("stage 'validate' failed: ")
    assert sorted((t.name, t.state.type.value) for t in tasks) == [("ingest", "COMPLETED"),
                                                                   ("validate", "FAILED")]

    runs = {r.info.run_name: r for r in _mlflow_runs(root)}
    assert sorted(runs) == ["ingest", "pipeline", "validate"]  # nothing downstream started
    assert runs["ingest"].info.status == "FINISHED"
    assert runs["validate"].info.status == "FAILED"
    assert "critical" in runs["validate"].data.tags["encoderflow.error"]
    assert runs["validate"].data.tags["mlflow.parentRunId"] == runs["pipeline"].info.run_id
    assert runs["pipeline"].info.status == "FAILED"
    assert runs["pipeline"].data.tags["encoderflow.failed_stage"] == "validate"
    assert "critical" in runs["pipeline"].data.tags["encoderflow.error"]
    # validate's reports are written (they explain the failure); no later stage output exists
    assert (root / "reports" / "validation.json").is_file()
    for path in ("models/tokenizer", "data/tokenized", "models/pretrained", "models/finetuned",
                 "reports/metrics.json", "reports/register.json"):
        assert not (root / path).exists(), path
    assert runlock.holder(root) is None


# --- 3. promotion safety ---------------------------------------------------------------

@pytest.mark.slow
def test_worse_and_tied_models_stay_challenger_rollback_restores_and_all_is_audited(proj, cli):
    strong = proj / "strong"
    shutil.copytree(proj / "models/finetuned", strong)
    assert tiny_pipeline.register(proj)["decision"] == "champion"  # v1

    tiny_pipeline.save_untrained(proj)  # clearly worse; floors off so only the comparison decides
    worse = tiny_pipeline.register(proj, floor_vs_baselines=False, floor_accuracy=0.0)
    assert worse["decision"] == "challenger" and worse["gate"]["gain"] < 0
    shutil.rmtree(proj / "models/finetuned")
    shutil.copytree(strong, proj / "models/finetuned")
    tie = tiny_pipeline.register(proj)  # the same model again: gain 0.0 < min_gain
    assert tie["decision"] == "challenger" and tie["gate"]["gain"] == 0.0
    assert tie["gate"]["checks"]["min_gain"] is False
    client = tiny_pipeline.registry_client(proj)
    assert registry.aliases(client.get_registered_model(NAME)) == {"champion": "1", "challenger": "3"}

    assert cli("promote", "2")[0] == 0  # a person may still choose it
    assert registry.rollback_target(client.get_registered_model(NAME)) == "1"
    code, out = cli("rollback")
    assert code == 0 and "from version 2 to version 1" in out
    model = client.get_registered_model(NAME)
    assert registry.aliases(model) == {"champion": "1", "challenger": "3"}
    assert registry.rollback_target(model) == "2"  # a second rollback undoes the first

    hist = registry.history(model)
    assert [(h["action"], h["by"], h["alias"], h.get("from"), h["version"], h["status"]) for h in hist] == [
        ("gate", "gate", "champion", None, "1", "done"),
        ("gate", "gate", "challenger", None, "2", "done"),
        ("gate", "gate", "challenger", "2", "3", "done"),
        ("promote", "cli", "champion", "1", "2", "done"),
        ("rollback", "cli", "champion", "2", "1", "done")]
    code, out = cli("models", "--history")
    assert code == 0
    rows = re.findall(r"\b(gate|promote|rollback)\s*│\s*(gate|cli)\s*│\s*(\w+)", out)  # action, by, alias
    assert rows == [("gate", "gate", "champion"), ("gate", "gate", "challenger"),
                    ("gate", "gate", "challenger"), ("promote", "cli", "champion"),
                    ("rollback", "cli", "champion")], out
    assert "pending" not in out and "aborted" not in out


class Boom(Exception):
    pass


class FailingClient:
    """The real MlflowClient, failing at its k-th call (any method); with `dead`,
    every later call fails too (the process is gone: no in-process recovery)."""

    def __init__(self, client, k: int, dead: bool):
        self._client, self._k, self._dead, self.calls = client, k, dead, 0

    def __getattr__(self, attr):
        real = getattr(self._client, attr)
        if not callable(real):
            return real

        def call(*args, **kwargs):
            self.calls += 1
            if self.calls == self._k or (self._dead and self.calls > self._k):
                raise Boom(f"{attr} (call {self.calls})")
            return real(*args, **kwargs)
        return call


def _check_consistent(model, old: dict, old_target: str | None, new: str, *, settled: bool) -> None:
    """Old state exactly, or the new champion together with its rollback target."""
    now = registry.aliases(model)
    if now.get("champion") == new:
        assert registry.rollback_target(model) == old["champion"]
        if settled:
            assert model.tags[registry.PREVIOUS] == old["champion"] and now.get("challenger") != new
    else:
        assert now == old and registry.rollback_target(model) == old_target
    if settled:
        assert all(h["status"] in ("done", "aborted") for h in registry.history(model))


@pytest.mark.slow
@pytest.mark.parametrize("dead", [False, True], ids=["exception", "killed"])
def test_promotion_interrupted_at_any_call_leaves_old_or_complete_new_state(proj, dead):
    tiny_pipeline.register(proj)
    tiny_pipeline.register(proj)  # v1 @champion, v2 @challenger (a tie)
    client = tiny_pipeline.registry_client(proj)
    k = 0
    while True:
        k += 1
        model = client.get_registered_model(NAME)
        old, old_target = registry.aliases(model), registry.rollback_target(model)
        new = "2" if old["champion"] == "1" else "1"
        failing = FailingClient(client, k, dead)
        try:
            registry.promote(failing, NAME, new)
        except Boom:
            pass
        else:
            break  # k passed the last call: every step has been interrupted once
        model = client.get_registered_model(NAME)
        _check_consistent(model, old, old_target, new, settled=not dead)  # without any recovery
        if dead:
            registry.sync(client, NAME)  # what the next registry command does first
            _check_consistent(client.get_registered_model(NAME), old, old_target, new, settled=True)
    assert k > 8  # reads, journal, target tag, alias, mirror tag, challenger drop, done
    model = client.get_registered_model(NAME)
    assert registry.aliases(model)["champion"] == new and registry.rollback_target(model) == old["champion"]
    assert registry.rollback(client, NAME) == (new, old["champion"])
