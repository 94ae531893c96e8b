"""Pretraining on several processes: Lightning DDP on CPU (gloo), sharding, launch checks.

The slow tests run real 2-process DDP through the command line, one torch thread per rank,
on test_pretrain's tiny project: 2 processes x batch 8 against 1 process x batch 16 (same
global batch), a SIGKILL of the whole process group after a checkpoint and a resume, two
torchrun "nodes" on loopback, and the MLflow run count of each. The fast ones check the
sharding and the one-line refusals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from components.core.config import parse_params
from components.core.errors import ConfigError, DataError
from components.core.paths import Paths
from components.model.data import MLMBatches, micro_per_epoch
from components.model.distributed import usable_cpus
from tests.test_pretrain import _weights, tiny_cfg, write_tiny_project

BIN = Path(sys.executable).parent
# 2 CPU processes need 2 usable CPUs (more would be refused: test below)
two_cpus = pytest.mark.skipif(usable_cpus() < 2, reason="needs 2 usable CPUs")
MASKING = dict(rate=0.15, mask_id=4, special_ids=[0, 1, 2, 3, 4], vocab_size=600)
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


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_project(tmp_path_factory.mktemp("ddp_data"))


def new_project(tiny_data, root: Path) -> Paths:
    for sub in ("models", "data"):
        shutil.copytree(tiny_data.root / sub, root / sub)
    return Paths.at(root)


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
    (stagerun.run_in_process -> an `encoderflow stage pretrain` subprocess)."""
    from flows import stagerun

    paths = new_project(tiny_data, tmp_path_factory.mktemp("ddp_straight"))
    env = os.environ.copy()
    os.environ["OMP_NUM_THREADS"] = "1"  # the subprocess inherits it: one thread per rank
    try:
        t0 = time.perf_counter()
        result = stagerun.run_in_process("pretrain", paths.root, ddp_cfg(2))
        seconds = time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert result.command == stagerun.SUBPROCESS
    return paths, json.loads(paths.report("pretrain").read_text()), seconds


# --------------------------------------------------------------------------- slow: real DDP


@pytest.mark.slow
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
@two_cpus
def test_kill_the_process_group_and_resume_under_ddp(ddp_run, tiny_data, tmp_path):
    from components.stages import pretrain
    from flows.stagerun import params_yaml

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
    straight, resumed = _weights(ddp_run[0]), _weights(paths)
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=1e-6, msg=k)
    assert report["tokens_seen"] == ddp_run[1]["tokens_seen"]


@pytest.mark.slow
@two_cpus
def test_two_nodes_under_torchrun_train_like_two_devices(ddp_run, tiny_data, tmp_path):
    """The multi-node path on one machine: two torchrun agents (node ranks 0 and 1, one
    process each) in one project folder, with pretrain.num_nodes 2 and devices 1. torchrun
    starts every rank, so Lightning only joins them; rank 1 skips the run lock."""
    from flows.stagerun import params_yaml

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
    straight, nodes = _weights(ddp_run[0]), _weights(paths)
    for k in straight:  # 2 nodes x 1 device is 1 node x 2 devices, step for step
        torch.testing.assert_close(nodes[k], straight[k], rtol=0, atol=1e-6, msg=k)


# --------------------------------------------------------------------------- fast: sharding


def _step_rows(n_blocks: int, batch: int, world: int, accum: int, step: int) -> list[np.ndarray]:
    """The rows each micro-batch of optimizer step `step` takes, over all ranks."""
    ids, attn = np.zeros((n_blocks, 4), dtype=np.int64), np.ones((n_blocks, 4), dtype=bool)
    out = []
    for rank in range(world):
        ds = MLMBatches(ids, attn, batch, seed=7, masking=MASKING, rank=rank, world=world, accum=accum)
        out += [ds.rows((step * accum + a) * world + rank) for a in range(accum)]
    return out


@pytest.mark.parametrize("world, accum", [(2, 1), (2, 3), (3, 2), (4, 1)])
def test_no_block_twice_in_one_step(world, accum):
    for n_blocks, batch in ((12, 4), (50, 3), (97, 5)):
        if n_blocks < batch * world * accum:
            continue  # not one global batch: refused up front (test below)
        per_step = micro_per_epoch(n_blocks, batch, world, accum) // (world * accum)
        for step in range(3 * per_step + 2):  # crosses at least three epoch boundaries
            rows = np.concatenate(_step_rows(n_blocks, batch, world, accum, step))
            assert len(rows) == batch * world * accum
            assert len(np.unique(rows)) == len(rows), f"{n_blocks} blocks, batch {batch}: step {step} repeats one"


def test_the_old_schedule_repeated_blocks_at_epoch_boundaries():
    # 12 blocks, batch 4: one process makes 3 micro-batches per epoch. Two ranks sharing that
    # schedule put micro-batches 2 (epoch 0) and 3 (epoch 1) in step 1: two permutations.
    assert micro_per_epoch(12, 4) == 3 and micro_per_epoch(12, 4, world=2) == 2


def test_two_ranks_see_the_blocks_of_one_process_at_double_batch():
    for step in range(20):  # several epochs of 97 blocks
        two = np.sort(np.concatenate(_step_rows(97, 4, world=2, accum=1, step=step)))
        one = np.sort(np.concatenate(_step_rows(97, 8, world=1, accum=1, step=step)))
        assert np.array_equal(one, two), step


def test_one_process_schedule_is_unchanged():
    ids, attn = np.arange(500).reshape(50, 10), np.ones((50, 10), dtype=bool)  # 12 full batches of 4
    ds = MLMBatches(ids, attn, 4, seed=3, masking=MASKING, accum=3)
    assert ds.per_epoch == 12  # one process keeps every full batch, whatever grad_accum


# --------------------------------------------------------------------------- fast: refusals


@pytest.mark.parametrize("raw, message", [
    ({"devices": 2}, "pretrain.strategy: expected 'ddp' when pretrain.devices x pretrain.num_nodes > 1 "
                     "(devices 2, num_nodes 1), got 'auto'"),
    ({"num_nodes": 2}, "pretrain.strategy: expected 'ddp'"),
    ({"strategy": "ddp_spawn"}, "pretrain.strategy: expected one of 'auto', 'ddp'"),
    ({"num_nodes": 0}, "pretrain.num_nodes: expected an integer >= 1"),
])
def test_params_refuse_what_cannot_run(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_params({"pretrain": raw})
    assert message in str(err.value) and "\n" not in str(err.value)


def _written(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def tiny_project(project, tiny_data):
    return new_project(tiny_data, project)


def test_more_cpu_processes_than_cpus_is_refused_before_anything_is_written(tiny_project):
    from components.stages import pretrain

    before = _written(tiny_project.root)
    n = usable_cpus() + 1
    with pytest.raises(ConfigError, match=rf"^pretrain.devices: expected at most {n - 1} .* got {n};"):
        pretrain.run(tiny_cfg(devices=n, strategy="ddp"), tiny_project)
    assert _written(tiny_project.root) == before  # no MLflow store, checkpoint or output


@two_cpus
def test_ddp_outside_the_stage_command_is_refused(tiny_project):
    from components.stages import pretrain

    before = _written(tiny_project.root)
    # pytest's own process: Lightning would start a second pytest as rank 1
    with pytest.raises(ConfigError, match="run pretraining as `encoderflow stage pretrain`") as err:
        pretrain.run(tiny_cfg(devices=2, strategy="ddp"), tiny_project)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="do not fill one global batch of 2048"):
        pretrain.run(tiny_cfg(devices=2, strategy="ddp", batch_size=1024), tiny_project)
    assert _written(tiny_project.root) == before


def test_a_launcher_world_that_params_do_not_match_is_refused(tiny_project, monkeypatch):
    from components.stages import pretrain

    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun --nproc-per-node 2, params left at one process
    before = _written(tiny_project.root)
    with pytest.raises(ConfigError, match="a launcher started 2 processes, but pretrain.devices x "
                                          "pretrain.num_nodes is 1"):
        pretrain.run(tiny_cfg(), tiny_project)
    assert _written(tiny_project.root) == before


def test_the_flow_runs_multi_process_pretraining_as_a_stage_command(tmp_path):
    from flows import stagerun

    (tmp_path / "params.yaml").write_text(stagerun.params_yaml(tiny_cfg(devices=2, strategy="ddp")))
    assert not stagerun._in_process_ok("pretrain", tmp_path)  # DVC starts `encoderflow stage pretrain`
    assert stagerun.multi_process(tiny_cfg(devices=2, strategy="ddp").pretrain)
    assert not stagerun.multi_process(tiny_cfg().pretrain)
    (tmp_path / "params.yaml").write_text(stagerun.params_yaml(tiny_cfg()))
    assert stagerun._in_process_ok("pretrain", tmp_path)
