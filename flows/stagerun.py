"""Run one stage the way `dvc repro` would, so the flow and DVC never disagree.

In a DVC repo (a `.dvc/` folder at the project root) a stage runs through
DVC's own stage runner, in-process: `Repo(root).reproduce(NAME)`. DVC skips
the stage when its deps and params are unchanged, restores it from the run
cache when it has seen them before, runs `encoderflow stage NAME` (a
subprocess) otherwise, and records what ran in dvc.lock. So after a flow run
`dvc status` is clean and `dvc repro` is a no-op. `reproduce(NAME)` (not
single_item) also re-hashes upstream data sources such as a `dvc add`-ed
data/incoming; upstream stages the flow already ran are skipped quickly.
In-process is ~3x faster than a `dvc repro NAME` subprocess per stage
(measured on a no-op 7-stage pipeline: 4.8-8.8 s vs 15-25 s, 2 busy cores).

When DVC decides a stage must run, its command `encoderflow stage NAME` runs
in this process too (`_stage_commands_in_process`): DVC still checks, caches,
records dvc.lock and the run cache exactly as for a subprocess, but torch,
Lightning, MLflow and GX are imported once per pipeline run instead of once
per stage (benchmarks/pipeline_overhead.py --tiny 96 --runs 5 --ab, 2 busy
cores: overhead of a warm run 52 s in-process vs 134 s with subprocesses).
Torch's global flags and os.environ are restored after each stage, so a stage
sees what a fresh `encoderflow stage` process would. Subprocesses are kept
where a stage may start processes of its own (pretrain with more than one
device, or a strategy other than "auto") and when ENCODERFLOW_STAGE_SUBPROCESS=1.

Outside a DVC repo the stage function runs in-process (no skipping, no lock).

Failures become `StageFailed("stage 'validate' failed: <one-line error>")`.
The stage command's output goes straight to the terminal, so the one line
travels in a file: the flow sets ENCODERFLOW_ERROR_FILE and the
`encoderflow stage` command writes its `error: ...` message there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from components.core.errors import EncoderflowError

ERROR_ENV = "ENCODERFLOW_ERROR_FILE"
SUBPROCESS_ENV = "ENCODERFLOW_STAGE_SUBPROCESS"  # "1": always run stage commands as subprocesses


class StageFailed(EncoderflowError):
    """A stage failed; `str()` is "stage 'NAME' failed: <one-line error>"."""

    def __init__(self, name: str, detail: str):
        if detail.startswith(f"{name}: "):  # EncoderflowError(stage=...) already names it
            detail = detail[len(name) + 2:]
        self.name, self.detail = name, detail
        super().__init__(f"stage {name!r} failed: {detail}")


@dataclass(frozen=True)
class StageResult:
    name: str
    status: str  # "ran" (executed, or restored from DVC's run cache) | "skipped" (unchanged)
    seconds: float
    driver: str  # "dvc" | "in-process"


def is_dvc_repo(root: str | Path) -> bool:
    return (Path(root) / ".dvc").is_dir()


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment additions for stage commands: `extra`, plus this
    interpreter's bin folder first on PATH.

    dvc.yaml runs `encoderflow stage NAME` through the shell; this makes it
    resolve to the encoderflow installed next to the running Python even when
    the virtualenv is not activated.
    """
    env = dict(extra or {})
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    return env


def write_error(message: str) -> None:
    """Called by the `encoderflow stage` command on failure: hand the one-line
    message to the flow that started it (no-op when none did)."""
    target = os.environ.get(ERROR_ENV)
    if target:
        Path(target).write_text(message.splitlines()[0] if message else "", encoding="utf-8")


def run_with_dvc(name: str, root: str | Path, env: dict[str, str] | None = None) -> StageResult:
    """`dvc repro NAME` in `root` (in-process); raises StageFailed with the stage's error."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    t0 = time.perf_counter()
    fd, err_file = tempfile.mkstemp(prefix="encoderflow-error-", suffix=".txt")
    os.close(fd)
    dvc_log = logging.getLogger("dvc")
    propagate, dvc_log.propagate = dvc_log.propagate, False  # DVC prints it; Prefect would again
    try:
        # DVC resolves targets and paths against the cwd (its CLI runs from the
        # repo root); the flow runs one stage at a time, so a chdir is safe here.
        with contextlib.chdir(root), Repo(str(root)) as repo, \
                _stage_commands_in_process(root, err_file):
            done = repo.reproduce(name, run_env=child_env({**(env or {}), ERROR_ENV: err_file}))
    except DvcException as e:
        detail = Path(err_file).read_text(encoding="utf-8").strip()
        if not detail:  # DVC's own problem, or a crash before the CLI could report
            cause = e.__cause__ or e
            detail = f"{cause} (see the output above)" if cause is not e else str(e)
        raise StageFailed(name, detail) from e
    finally:
        dvc_log.propagate = propagate
        os.unlink(err_file)
    status = "ran" if any(getattr(s, "name", None) == name for s in done) else "skipped"
    return StageResult(name, status, time.perf_counter() - t0, "dvc")


def run_in_process(name: str, root: str | Path, cfg) -> StageResult:
    """Call the stage function directly (projects that are not DVC repos)."""
    from components.stages import table as stages
    from components.core.paths import Paths

    t0 = time.perf_counter()
    try:
        stages.get(name).load()(cfg, Paths.at(root))
    except EncoderflowError as e:
        raise StageFailed(name, str(e).splitlines()[0]) from e
    except Exception as e:  # a bug: still name the stage, keep the traceback as the cause
        raise StageFailed(name, f"{type(e).__name__}: {e}".splitlines()[0]) from e
    return StageResult(name, "ran", time.perf_counter() - t0, "in-process")


def _in_process_ok(name: str, root: Path) -> bool:
    """False where the stage command must stay a subprocess."""
    if os.environ.get(SUBPROCESS_ENV, "") not in ("", "0"):
        return False
    if name != "pretrain":
        return True
    from components.core.config import load_params

    try:
        p = load_params(Path(root) / "params.yaml").pretrain
    except EncoderflowError:
        return False  # let the subprocess report the problem
    # DDP & co. relaunch the running command once per device: it must be `encoderflow stage`.
    return str(p.devices) == "1" and p.strategy in ("auto", "single_device")


@contextlib.contextmanager
def _stage_commands_in_process(root: str | Path, err_file: str):
    """While active, DVC runs `encoderflow stage NAME` by calling the stage here
    (what the CLI command does), not by starting a shell. Other commands, and a
    DVC without the hook this relies on, run as usual."""
    from dvc.stage import run as dvc_run
    from dvc.stage.exceptions import StageCmdFailedError

    original = getattr(dvc_run, "_run", None)
    if original is None:  # another DVC version: keep subprocesses
        yield
        return

    def run(executable, cmd, **kwargs):
        parts = cmd.split() if isinstance(cmd, str) else []
        if len(parts) != 3 or parts[:2] != ["encoderflow", "stage"] or not _in_process_ok(parts[2], root):
            return original(executable, cmd, **kwargs)
        try:
            _call_stage(parts[2], Path(kwargs.get("cwd") or root), kwargs.get("env") or {})
        except Exception as e:  # what the `encoderflow stage` command does on failure
            import traceback

            from components.core.redact import redact

            if not isinstance(e, EncoderflowError):  # a bug: show the traceback
                traceback.print_exc()
            detail = redact(str(e) if isinstance(e, EncoderflowError) else f"{type(e).__name__}: {e}")
            Path(err_file).write_text(detail.splitlines()[0] if detail else "", encoding="utf-8")
            raise StageCmdFailedError(cmd, 1) from e

    dvc_run._run = run
    try:
        yield
    finally:
        dvc_run._run = original


def _call_stage(name: str, cwd: Path, env: dict[str, str]) -> None:
    """`encoderflow stage NAME` in this process; torch flags and os.environ restored after."""
    from components.core import env as project_env
    from components.stages import table as stages
    from components.core.config import load_params
    from components.core.paths import Paths

    saved_env = dict(os.environ)
    saved_torch = _torch_flags()
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith(("DVC_", "ENCODERFLOW_"))})
        with contextlib.chdir(cwd):
            project_env.configure()
            cfg = load_params(Path("params.yaml"))
            project_env.configure(cfg.ingest.source)
            t0 = time.perf_counter()
            summary = stages.get(name).load()(cfg, Paths.at("."))
            print(f"{name}: done in {time.perf_counter() - t0:.1f}s" + (f" {summary}" if summary else ""))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        _restore_torch_flags(saved_torch)
        import gc

        gc.collect()


def _torch_flags() -> dict | None:
    """Process-wide torch switches a stage may flip (Lightning's `deterministic`)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return {"deterministic": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark),
            "threads": torch.get_num_threads(), "matmul": torch.get_float32_matmul_precision(),
            "grad": torch.is_grad_enabled()}


def _restore_torch_flags(flags: dict | None) -> None:
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if flags is None:  # the stage imported torch: back to a fresh process's defaults
        flags = {"deterministic": False, "warn_only": False, "cudnn": (False, False),
                 "threads": torch.get_num_threads(), "matmul": "highest", "grad": True}
    torch.use_deterministic_algorithms(flags["deterministic"], warn_only=flags["warn_only"])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags["cudnn"]
    torch.set_num_threads(flags["threads"])
    torch.set_float32_matmul_precision(flags["matmul"])
    torch.set_grad_enabled(flags["grad"])
