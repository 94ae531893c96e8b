"""A tiny, real encoderflow project (git + DVC) for the flow / DVC / schedule tests.

`make(root)` copies the repo's components/, flows/, dvc.yaml, .dvcignore and
.gitignore into `root`, writes a complete params.yaml (defaults + the tiny overrides of
tests/builders/tiny_pipeline.py, source `file:data/incoming/*.csv`), a small CSV in
data/incoming/, then `git init` + commit and `dvc init`, like a user's clone.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from builders import tiny_pipeline

REPO = Path(__file__).resolve().parents[2]
# pytest-timeout for a test that runs the whole flow or may be the first to build `base`: a real
# `encoderflow run`, which `encoderflow()` below bounds at 900 s, plus the test's own work.
RUNS_THE_FLOW = pytest.mark.timeout(1800)
SOURCE = "file:data/incoming/*.csv"
# On top of tiny_pipeline.TINY: fewer steps/epochs/resamples (the tests check
# orchestration, not model quality).
FAST = {
    "ingest": {"source": SOURCE, "retries": 0},
    "pretrain": {"max_steps": 2, "checkpoint_every": 2, "val_every": 2},
    "finetune": {"max_epochs": 1},
    "evaluate": {"bootstrap_samples": 10},
}


def _plain(obj):
    """Tuples -> lists, recursively (yaml.safe_dump cannot write tuples)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def params(overrides: dict | None = None) -> dict:
    """Every section at its default, then the tiny config, then `overrides`."""
    from components.core.config import Params

    raw = _plain(dataclasses.asdict(Params()))
    for layer in (tiny_pipeline.TINY, FAST, overrides or {}):
        for section, values in layer.items():
            raw[section].update(values)
    return raw


def write_params(root: Path, overrides: dict | None = None) -> None:
    text = yaml.safe_dump(params(overrides), sort_keys=False)
    (root / "params.yaml").write_text(text, encoding="utf-8")


def write_csv(path: Path, n: int, seed: int = 0) -> None:
    """n labelled rows + n // 4 unlabeled ones (empty label: pretraining text)."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = tiny_pipeline.sentences(n + n // 4, seed)
    rows = rows[:n] + [(text, "") for text, _ in rows[n:]]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)


def sh(root: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in `root` (git, or `dvc` through this interpreter)."""
    if cmd[0] == "dvc":
        cmd = (sys.executable, "-m", "dvc", *cmd[1:])
    # dvc.yaml's `encoderflow stage NAME` must resolve to this virtualenv's script
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def make(root: Path, n: int = 320, overrides: dict | None = None, dvc: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("components", "flows"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copyfile(REPO / name, root / name)
    write_params(root, overrides)
    write_csv(root / "data" / "incoming" / "part-000.csv", n)
    (root / "data" / "corpus").mkdir(parents=True, exist_ok=True)  # ingest's other DVC dep
    (root / "data" / "corpus" / ".gitkeep").touch()
    sh(root, "git", "init", "-q")
    sh(root, "git", "config", "user.email", "test@example.com")
    sh(root, "git", "config", "user.name", "test")
    if dvc:
        sh(root, "dvc", "init", "-q")
        sh(root, "dvc", "config", "core.analytics", "false")
        sh(root, "dvc", "config", "core.check_update", "false")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "tiny project")
    return root


def dvc_status(root: Path) -> str:
    """`dvc status` output; "" when everything is up to date."""
    text = sh(root, "dvc", "status").stdout
    return "" if "Data and pipelines are up to date." in text else text


def encoderflow(root: Path, *args: str, env: dict | None = None, timeout: float = 900):
    """Run the installed `encoderflow` console script in `root` (PREFECT_HOME in the project)."""
    exe = Path(sys.executable).parent / "encoderflow"
    environ = {**os.environ, "PREFECT_HOME": str(root / ".prefect"), **(env or {})}
    return subprocess.run([str(exe), *args], cwd=root, env=environ, capture_output=True,
                          text=True, timeout=timeout)


_BASE: dict[str, tuple[Path, subprocess.CompletedProcess]] = {}


def base(factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A tiny project after one real `encoderflow run` (built once per pytest process).

    Tests copy it with `clone` before changing anything.
    """
    reuse = os.environ.get("ENCODERFLOW_TEST_BASE")  # dev loop: a base built earlier
    if "base" not in _BASE and reuse and (Path(reuse) / "dvc.lock").is_file():
        _BASE["base"] = (Path(reuse), subprocess.CompletedProcess([], 0, "", ""))
    if "base" not in _BASE:
        root = make(factory.mktemp("flow_base") / "proj", n=96)
        out = encoderflow(root, "run")
        if out.returncode != 0:
            raise AssertionError(f"encoderflow run failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
        _BASE["base"] = (root, out)
    return _BASE["base"]


def clone(src: Path, dst: Path) -> Path:
    """A full copy (git, DVC cache, outputs, MLflow store); not the Prefect home."""
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(".prefect"))
    return dst


def lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))


def skew_file(root: Path, n: int = 500) -> Path:
    """A CSV of n distinct positive rows: train's majority class goes above
    validate.max_majority_fraction (0.9), a critical validation failure."""
    import pandas as pd

    path = root / "data" / "incoming" / "part-skew.csv"
    rows = [(f"positive review number {i} was great and superb", "positive") for i in range(n)]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path
