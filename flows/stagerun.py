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

from components.errors import EncoderflowError

ERROR_ENV = "ENCODERFLOW_ERROR_FILE"


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
        with contextlib.chdir(root), Repo(str(root)) as repo:
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
    from components import stages
    from components.paths import Paths

    t0 = time.perf_counter()
    try:
        stages.get(name).load()(cfg, Paths.at(root))
    except EncoderflowError as e:
        raise StageFailed(name, str(e).splitlines()[0]) from e
    except Exception as e:  # a bug: still name the stage, keep the traceback as the cause
        raise StageFailed(name, f"{type(e).__name__}: {e}".splitlines()[0]) from e
    return StageResult(name, "ran", time.perf_counter() - t0, "in-process")
