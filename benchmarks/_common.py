"""What every benchmark script shares: the header it prints, threads, params, a parameter
count and the peak RSS of a command run in its own process.

Scripts import this after putting the repository root first on sys.path (running
`python benchmarks/x.py` puts benchmarks/ there, where tokenize.py would shadow the
stdlib module):

    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from benchmarks import _common as C

The other shared parts live beside it, one idea each: _lineage (the lineage block of a
--json file), _report (printed tables and the --json file), _mlm_step (the training-step
benchmarks' data, step and timing windows), _shapes, _workspace and _students (the student
benchmarks quality.py and label_efficiency.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _lineage

ROOT = _lineage.ROOT


def header(title: str) -> None:
    """Print what ran where: the exact command, code, CPU, cores, torch / transformers, threads."""
    import torch

    lin = _lineage.lineage()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    try:
        import transformers
        tf = transformers.__version__
    except ImportError:
        tf = "not installed"
    print(f"# {title}")
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"code: commit {lin['git_commit'] or 'none (not a git checkout)'}"
          f"{' with uncommitted changes' if lin['git_dirty'] else ''} | {lin['date']}")
    print(f"machine: {lin['cpu']} | {os.cpu_count()} logical cores | avx512_bf16={lin['bf16']} amx={amx}")
    print(f"software: python {platform.python_version()} | torch {torch.__version__} | "
          f"transformers {tf} | torch threads {torch.get_num_threads()}")
    try:
        load = os.getloadavg()
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              "(above 0 means other processes share the CPU)")
    except OSError:
        pass
    print(flush=True)


def set_threads(n: int | None) -> None:
    """torch threads (and no extra tokenizer threads when n == 1); quiet Lightning's info lines."""
    import torch

    if n:
        torch.set_num_threads(n)
        if n == 1:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def params_file(project: Path) -> Path:
    """The project's params.yaml, or this checkout's when the project has none."""
    own = Path(project) / "params.yaml"
    return own if own.is_file() else ROOT / "params.yaml"


def load_cfg(params: Path, overrides: list[str]):
    """params.yaml + --set values, parsed as the CLI does (telemetry off first)."""
    from components.core import env
    from components.core.config import load_params

    env.configure()
    return load_params(params, list(overrides))


@contextlib.contextmanager
def in_dir(path: Path):
    """Stages log to a project-relative MLflow store: run them from the project folder."""
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


def count_params(module) -> int:
    """Parameters of a torch module, each shared (tied) tensor once."""
    return sum(t.numel() for t in {id(t): t for t in module.parameters()}.values())


# --------------------------------------------------------------------------- peak RSS of a command

# Linux carries the forking process's RSS into a child's ru_maxrss (it is set from the old
# mm at exec), so a child of a big process would never report less than that process's size.
# A small launcher forks the measured command instead and reports its children's peak.
_LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
             "sys.exit(rc)")


def measure(cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one command in its own process; stderr goes
    to `log`, whose last lines a failure shows."""
    rss_file = log.with_suffix(".maxrss")
    t0 = time.perf_counter()
    with open(log, "wb") as err:
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(rss_file), *cmd], cwd=cwd,
                              stdout=subprocess.PIPE, stderr=err, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-8:]
        raise SystemExit(f"error: {' '.join(cmd[:4])} exited {proc.returncode} (log {log}):\n" + "\n".join(tail))
    return wall, int(rss_file.read_text()) / 1024, proc.stdout.decode()  # ru_maxrss: KiB on Linux
