"""Pretraining on several processes: Lightning DDP on CPU (gloo).

Real 2-process DDP through the command line, one torch thread per rank, on the tiny
pretraining project (builders/mlm_project.py): 2 processes x batch 8 against 1 process x
batch 16 (same global batch), a SIGKILL of the whole process group after a checkpoint and a
resume, two torchrun "nodes" on loopback, and the MLflow run count of each. The sharding and
the one-line refusals: tests/unit/test_ddp_plan.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from components.core.config import parse_params
from components.model.distributed import usable_cpus

from builders.mlm_project import new_project, tiny_cfg, weights

BIN = Path(sys.executable).parent
# pytest-timeout: each DDP run's processes are bounded at 600 s; the first test also starts `ddp_run`
DDP_TIMEOUT = pytest.mark.timeout(1800)
# 2 CPU processes need 2 usable CPUs (more would be refused: test below)
two_cpus = pytest.mark.skipif(usable_cpus() < 2, reason="needs 2 usable CPUs")
# Same global batch (16 blocks a step) both ways; 30 steps reach a loss ~0.8 below the first
# step's. Checkpoints every 2 steps give the kill test a wide window (see below).
STEPS, GLOBAL_BATCH = 30, 16
# 1 process vs 2 at the same global batch: the same init, the same blocks in every step and
# the same schedule; only the masked positions differ (mask draws are keyed by the global
# micro-batch number), and DDP averages the two ranks' mean losses instead of taking one
# mean. So the difference is mask noise. Measured on this config (README, Lightning DDP):
# 6 one-process runs that differ only in their mask draws spread the final train loss (mean
# of the last 20 steps) over 4.403-4.479 and the final val loss over 4.018-4.126; 2 processes
# gave 4.436 / 4.072, inside both ranges. The bounds are about twice those ranges, and still
# small against the ~0.8 the loss falls during the run (asserted too).
TOL_TRAIN, TOL_VAL = 0.15, 0.20


def ddp_cfg(devices: int):
    return tiny_cfg(max_steps=STEPS, batch_size=GLOBAL_BATCH // devices, devices=devices,
                    strategy="ddp" if devices > 1 else "auto", checkpoint_every=2, val_every=10)


def stage_runs(root: Path) -> list[tuple[str, str, str]]:
    """(name, status, run id) of every MLflow run in the project's store."""
    with sqlite3.connect(root / "mlflow.db") as db:
        return db.execute("SELECT name, status, run_uuid FROM runs").fetchall()


def _live_members(pgid: int) -> list[int]:
    """Pids of the process group that are still running (zombies awaiting a reaper are not)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def worker_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def ddp_run(tiny_data, tmp_path_factory):
    """An uninterrupted 2-process run, started the way the flow starts it outside DVC
    (stage_local.run_in_process -> an `encoderflow stage pretrain` subprocess)."""
    from flows import stage_local

    paths = new_project(tiny_data, tmp_path_factory.mktemp("ddp_straight"))
    env = os.environ.copy()
    os.environ["OMP_NUM_THREADS"] = "1"  # the subprocess inherits it: one thread per rank
    try:
        t0 = time.perf_counter()
        result = stage_local.run_in_process("pretrain", paths.root, ddp_cfg(2))
        seconds = time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert result.driver == "subprocess"
    return paths, json.loads(paths.report("pretrain").read_text()), seconds


# --------------------------------------------------------------------------- slow: real DDP


@pytest.mark.slow
@DDP_TIMEOUT
@two_cpus
def test_two_processes_match_one_at_the_same_global_batch(ddp_run, tiny_data, tmp_path):
    from components.stages import pretrain

    ddp_paths, ddp, ddp_seconds = ddp_run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        one = pretrain.run(ddp_cfg(1), new_project(tiny_data, tmp_path))
        one_seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    print(f"\n1 process x batch {GLOBAL_BATCH}: train {one['final_train_loss']} val {one['final_val_loss']} "
          f"({one_seconds:.1f}s); 2 processes x batch {GLOBAL_BATCH // 2}: train {ddp['final_train_loss']} "
          f"val {ddp['final_val_loss']} ({ddp_seconds:.1f}s)")
    assert ddp["steps"] == one["steps"] == STEPS and ddp["stopped_by"] == "max_steps"
    assert ddp["tokens_seen"] == one["tokens_seen"]  # the same blocks, counted over both ranks
    first = float((ddp_paths.reports / "pretrain_curve.csv").read_text().splitlines()[1].split(",")[1])
    assert first - ddp["final_train_loss"] > 0.5  # it learned: the tolerance is small against that
    assert abs(ddp["final_train_loss"] - one["final_train_loss"]) <= TOL_TRAIN
    assert abs(ddp["final_val_loss"] - one["final_val_loss"]) <= TOL_VAL
    # rank 0 alone logged: one MLflow run for the stage, and the outputs are its own
    assert [(n, s) for n, s, _ in stage_runs(ddp_paths.root)] == [("pretrain", "FINISHED")]
    assert not any((ddp_paths.checkpoints / "pretrain").iterdir())  # finished: checkpoints gone


@pytest.mark.slow
@DDP_TIMEOUT
@two_cpus
def test_kill_the_process_group_and_resume_under_ddp(ddp_run, tiny_data, tmp_path):
    from components.stages import pretrain
    from flows.stage_local import params_yaml

    paths = new_project(tiny_data, tmp_path)
    (paths.root / "params.yaml").write_text(params_yaml(ddp_cfg(2)), encoding="utf-8")
    cmd = [str(BIN / "encoderflow"), "stage", "pretrain"]
    with open(tmp_path / "first.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=paths.root, env=worker_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group: rank 0 and the rank it starts
        try:
            deadline, ckpt = time.monotonic() + 300, None
            while ckpt is None and proc.poll() is None and time.monotonic() < deadline:
                ckpt = next((paths.checkpoints / "pretrain").glob("*/last.ckpt"), None) \
                    if (paths.checkpoints / "pretrain").is_dir() else None
                time.sleep(0.02)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # rank 0 and rank 1 at once, mid-run
            proc.wait()
    assert ckpt is not None, (tmp_path / "first.log").read_text(errors="replace")[-3000:]
    for _ in range(200):  # every rank is gone
        if not _live_members(proc.pid):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"ranks outlived SIGKILL of their process group: {_live_members(proc.pid)}")
    killed_at = pretrain.verify_checkpoint(ckpt)
    assert 2 <= killed_at < STEPS and not paths.report("pretrain").exists()
    first_run = (ckpt.parent / "mlflow_run_id").read_text()
    assert [(n, s) for n, s, _ in stage_runs(paths.root)] == [("pretrain", "RUNNING")]  # killed mid-run

    again = subprocess.run(cmd, cwd=paths.root, env=worker_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "pretrain: resuming from" in again.stdout
    report = json.loads(paths.report("pretrain").read_text())
    assert report["steps"] == STEPS and report["mlflow_run_id"] == first_run
    # one MLflow run for both attempts (rank 1 never opens one), now FINISHED
    assert stage_runs(paths.root) == [("pretrain", "FINISHED", first_run)]
    # and the resumed weights are the uninterrupted 2-process run's
    straight, resumed = weights(ddp_run[0]), weights(paths)
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=1e-6, msg=k)
    assert report["tokens_seen"] == ddp_run[1]["tokens_seen"]


@pytest.mark.slow
@DDP_TIMEOUT
@two_cpus
def test_two_nodes_under_torchrun_train_like_two_devices(ddp_run, tiny_data, tmp_path):
    """The multi-node path on one machine: two torchrun agents (node ranks 0 and 1, one
    process each) in one project folder, with pretrain.num_nodes 2 and devices 1. torchrun
    starts every rank, so Lightning only joins them; rank 1 skips the run lock."""
    from flows.stage_local import params_yaml

    cfg = ddp_cfg(2)
    cfg = parse_params({"model": vars(cfg.model), "pretrain": {**vars(cfg.pretrain), "devices": 1, "num_nodes": 2}})
    paths = new_project(tiny_data, tmp_path)
    (paths.root / "params.yaml").write_text(params_yaml(cfg), encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agents = [subprocess.Popen([str(BIN / "torchrun"), "--nnodes", "2", "--nproc-per-node", "1",
                                "--node-rank", str(n), "--master-addr", "127.0.0.1", "--master-port", str(port),
                                "--no-python", "encoderflow", "stage", "pretrain"], cwd=paths.root, env=worker_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for n in (0, 1)]
    outs = [a.communicate(timeout=600)[0] for a in agents]
    assert [a.returncode for a in agents] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    report = json.loads(paths.report("pretrain").read_text())
    assert report["steps"] == STEPS and report["tokens_seen"] == ddp_run[1]["tokens_seen"]
    assert [(n, s) for n, s, _ in stage_runs(paths.root)] == [("pretrain", "FINISHED")]
    straight, nodes = weights(ddp_run[0]), weights(paths)
    for k in straight:  # 2 nodes x 1 device is 1 node x 2 devices, step for step
        torch.testing.assert_close(nodes[k], straight[k], rtol=0, atol=1e-6, msg=k)
