"""Several training processes (Lightning DDP): the checks made before anything is written.

world = pretrain.devices * pretrain.num_nodes processes. Each trains on its own
micro-batches (model/data.py shards them) and DDP averages the gradients, so one
optimizer step sees batch_size * world * grad_accum blocks: the global batch.

How the processes start (Lightning picks the launcher from the environment):
- On one node with nothing else around, the process that builds the Trainer is rank 0 and
  re-runs its own command line once per extra device, with LOCAL_RANK=1.. in the
  environment (Lightning's subprocess launcher). That command must be
  `encoderflow stage pretrain`; `relaunch_problem` refuses anything else (a test runner, the
  flow's own process), which would otherwise start copies of itself.
- Under torchrun or SLURM's srun the launcher starts every process and Lightning only joins
  them (RANK / SLURM_PROCID in the environment). `launched_worker` tells the CLI that such a
  process is a non-zero rank of rank 0's run, so it does not take the project's run lock.
"""

from __future__ import annotations

import os
import sys

from components.core.errors import ConfigError, DataError, first_line

KEYS = "pretrain.accelerator / pretrain.devices / pretrain.num_nodes / pretrain.strategy"


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, e.g. a container's or taskset's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def launched_worker(environ=None) -> bool:
    """True in a process that a launcher started as a non-zero rank (torchrun's RANK, srun's
    SLURM_PROCID, a Lightning child's LOCAL_RANK, a later node's NODE_RANK / GROUP_RANK).

    >>> launched_worker({"RANK": "1"}), launched_worker({"SLURM_PROCID": "0"}), launched_worker({})
    (True, False, False)
    """
    env = os.environ if environ is None else environ
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
        value = env.get(key, "")
        if value.isdigit() and int(value) > 0:
            return True
    return False


def launched_world(environ=None) -> int:
    """How many processes a launcher says it started together (torchrun's and Lightning's
    WORLD_SIZE, srun's SLURM_STEP_NUM_TASKS); 1 when none did.

    >>> launched_world({"WORLD_SIZE": "4"}), launched_world({"SLURM_STEP_NUM_TASKS": "2"}), launched_world({})
    (4, 2, 1)
    """
    env = os.environ if environ is None else environ
    sizes = [int(v) for v in (env.get("WORLD_SIZE", ""), env.get("SLURM_STEP_NUM_TASKS", "")) if v.isdigit()]
    return max(sizes, default=1)


def build_trainer(kwargs: dict):
    """pl.Trainer(**kwargs); Lightning's own refusals (no such accelerator, more GPUs than
    there are, ...) become one-line ConfigErrors naming the params keys."""
    import pytorch_lightning as pl
    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    try:
        return pl.Trainer(**kwargs)
    except (MisconfigurationException, ValueError, RuntimeError, ImportError) as e:
        got = ", ".join(f"{k} {kwargs.get(k)!r}" for k in ("accelerator", "devices", "num_nodes", "strategy"))
        raise ConfigError(f"{KEYS}: Lightning cannot use {got} here: {first_line(e, 300)}") from None


def relaunch_problem(argv: list[str]) -> str | None:
    """Why Lightning's subprocess launcher cannot re-run `argv` as another rank of the
    pretrain stage; None when argv is `encoderflow [opts] stage pretrain [opts]`.

    >>> relaunch_problem(["/venv/bin/encoderflow", "--debug", "stage", "pretrain", "--set", "a.b=1"]) is None
    True
    >>> relaunch_problem(["/venv/bin/pytest", "tests"]) is not None
    True
    """
    args = list(argv[1:])
    if "stage" in args and args[args.index("stage") + 1:args.index("stage") + 2] == ["pretrain"]:
        return None
    return f"this process is {' '.join(argv[:3])!r}"


def check_launch(trainer, batch_size: int, accum: int, n_blocks: int, where: str) -> None:
    """Refuse, before anything is written, what cannot work with this Trainer:
    more CPU processes than CPUs, data that does not fill one global batch, and a command
    Lightning cannot re-run per device."""
    from pytorch_lightning.accelerators import CPUAccelerator

    from components.model.data import micro_per_epoch

    world = trainer.world_size
    if world == 1:
        if launched_worker() or launched_world() > 1:  # e.g. torchrun --nproc-per-node 2 with devices 1:
            raise ConfigError(f"{KEYS}: a launcher started {launched_world()} processes, but "  # two full runs
                              "pretrain.devices x pretrain.num_nodes is 1 (set strategy ddp, and devices and "
                              "num_nodes to the launcher's processes per node and nodes)")
        return
    cpus = usable_cpus()
    if isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices > cpus:
        raise ConfigError(f"pretrain.devices: expected at most {cpus} (the CPUs here) with accelerator cpu, got "
                          f"{trainer.num_devices}; more processes than cores only time-share them (for a larger "
                          "global batch raise pretrain.batch_size or pretrain.grad_accum instead)")
    if micro_per_epoch(n_blocks, batch_size, world, accum) == 0:
        raise DataError(f"{where}: {n_blocks} packed blocks do not fill one global batch of "
                        f"{batch_size * world * accum} (pretrain.batch_size {batch_size} x {world} processes x "
                        f"grad_accum {accum}); lower pretrain.batch_size or use fewer devices", stage="pretrain")
    env = trainer.strategy.cluster_environment
    try:  # what Lightning checks only once training starts: e.g. devices vs torchrun's / srun's tasks per node
        env.validate_settings(num_devices=trainer.num_devices, num_nodes=trainer.num_nodes)
    except ValueError as e:
        raise ConfigError(f"{KEYS}: {first_line(e, 300)}") from None
    # strategy ddp: unless a launcher (torchrun, srun) started the processes, Lightning starts
    # this node's other ranks by re-running sys.argv
    if trainer.num_devices > 1 and not env.creates_processes_externally:
        problem = relaunch_problem(sys.argv)
        if problem:
            raise ConfigError(f"{KEYS}: {world} processes start by re-running the command once per device, so "
                              f"run pretraining as `encoderflow stage pretrain` (the flow does; {problem})")
