"""Run one stage without DVC: projects that are not DVC repos.

The flow calls the stage function in its own process (no skipping, no lock
file): `run_in_process`. A failure becomes StageFailed with the error's first
line; a bug keeps its traceback as the exception's cause.

The one exception is multi-process pretraining (devices x num_nodes > 1, or a
strategy other than "auto"). Lightning's DDP launcher re-runs the running
command once per device, so that command must be `encoderflow stage pretrain`,
never the flow's process: `run_command` starts it as a subprocess with the
run's resolved params (params.yaml plus --set values) in a temporary file.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from components.core.errors import EncoderflowError
from flows.stagerun import ERROR_ENV, StageFailed, StageResult, child_env, read_error


def run_in_process(name: str, root: str | Path, cfg) -> StageResult:
    """Call the stage function directly; multi-process pretraining runs as an
    `encoderflow stage pretrain` subprocess instead (`multi_process`)."""
    from components.core.paths import Paths
    from components.stages import table as stages

    t0 = time.perf_counter()
    if name == "pretrain" and multi_process(cfg.pretrain):
        run_command(name, root, cfg)
        return StageResult(name, "ran", time.perf_counter() - t0, "subprocess")
    try:
        stages.get(name).load()(cfg, Paths.at(root))
    except EncoderflowError as e:
        raise StageFailed(name, str(e).splitlines()[0]) from e
    except Exception as e:  # a bug: still name the stage, keep the traceback as the cause
        raise StageFailed(name, f"{type(e).__name__}: {e}".splitlines()[0]) from e
    return StageResult(name, "ran", time.perf_counter() - t0, "in-process")


def multi_process(p) -> bool:
    """True when pretraining (params section `p`) starts processes of its own: Lightning's
    DDP launcher re-runs the running command once per device, which must therefore be
    `encoderflow stage pretrain`, never the flow's process."""
    return p.devices * p.num_nodes > 1 or p.strategy != "auto"


def params_yaml(cfg) -> str:
    """A params.yaml text that parses back to `cfg` (every key spelled out).

    >>> import yaml
    >>> from components.core.config import Params, parse_params
    >>> parse_params(yaml.safe_load(params_yaml(Params()))) == Params()
    True
    """
    import dataclasses

    import yaml

    def plain(x):  # tuples -> lists, for yaml.safe_dump
        return {k: plain(v) for k, v in x.items()} if isinstance(x, dict) else \
            [plain(v) for v in x] if isinstance(x, (list, tuple)) else x

    return yaml.safe_dump(plain(dataclasses.asdict(cfg)), sort_keys=False)


def run_command(name: str, root: str | Path, cfg) -> None:
    """`encoderflow stage NAME` as a subprocess in `root`, with `cfg` (params.yaml plus the
    run's overrides) written to a temporary params file; StageFailed with its one line."""
    with tempfile.TemporaryDirectory(prefix="encoderflow-stage-") as tmp:
        params, err_file = Path(tmp) / "params.yaml", Path(tmp) / "error.txt"
        params.write_text(params_yaml(cfg), encoding="utf-8")
        env = {**os.environ, **child_env({ERROR_ENV: str(err_file)})}
        code = subprocess.call(["encoderflow", "stage", name, "--params", str(params)], cwd=root, env=env)
        if code:
            detail = read_error(err_file)
            raise StageFailed(name, detail or f"`encoderflow stage {name}` exited with {code} (see the output above)")
