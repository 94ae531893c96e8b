"""Pretraining on several processes, planned but not run: sharding (no block twice in one
optimizer step, two ranks see what one process sees at double batch) and the one-line
refusals before anything is written. Real 2-process DDP: tests/system/test_ddp.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.core.config import parse_params
from components.core.errors import ConfigError, DataError
from components.model.data import MLMBatches, micro_per_epoch
from components.model.distributed import usable_cpus

from builders.mlm_project import tiny_cfg

two_cpus = pytest.mark.skipif(usable_cpus() < 2, reason="needs 2 usable CPUs")


MASKING = dict(rate=0.15, mask_id=4, special_ids=[0, 1, 2, 3, 4], vocab_size=600)


# --------------------------------------------------------------------------- sharding


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


# --------------------------------------------------------------------------- refusals


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


def test_the_flow_runs_multi_process_pretraining_as_a_stage_command():
    """Outside DVC the flow starts `encoderflow stage pretrain` for these params (in a DVC
    repo every stage command is DVC's subprocess anyway)."""
    from flows import stage_local

    assert stage_local.multi_process(tiny_cfg(devices=2, strategy="ddp").pretrain)
    assert stage_local.multi_process(tiny_cfg(strategy="ddp").pretrain)
    assert not stage_local.multi_process(tiny_cfg().pretrain)
