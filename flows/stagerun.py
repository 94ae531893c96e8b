"""What running one stage gives the flow back, whichever way it ran.

The flow runs each stage in one of two ways (flows/pipeline.py picks):

- in a DVC repo, through `dvc repro` (flows/stage_dvc.py): DVC starts the
  stage's command `encoderflow stage NAME` as its own subprocess, exactly as a
  `dvc repro` typed by hand does;
- elsewhere, by calling the stage function (flows/stage_local.py).

Either way the flow gets a `StageResult`, or a `StageFailed` whose `str()` is
"stage 'validate' failed: <one-line error>". A subprocess's output goes
straight to the terminal, so the one line travels in a file instead: the
caller creates it (`error_file`), names it in ENCODERFLOW_ERROR_FILE, and the
`encoderflow stage` command writes its `error: ...` message there
(`write_error`, called by flows/app.py's `fail`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from components.core.errors import EncoderflowError

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
    # "dvc": through `dvc repro` (its command a subprocess that DVC starts); "in-process":
    # the stage function called in the flow's process; "subprocess": `encoderflow stage NAME`
    # started by the flow itself (multi-process pretraining outside a DVC repo).
    driver: str


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment additions for stage commands: `extra`, plus this
    interpreter's bin folder first on PATH.

    dvc.yaml runs `encoderflow stage NAME` through the shell; this makes it
    resolve to the encoderflow installed next to the running Python even when
    the virtualenv is not activated.

    >>> child_env({"A": "1"})["PATH"].startswith(str(Path(sys.executable).parent))
    True
    """
    env = dict(extra or {})
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    return env


@contextlib.contextmanager
def error_file() -> Iterator[Path]:
    """An empty temporary file for a stage command's one-line error (ERROR_ENV); removed after."""
    fd, name = tempfile.mkstemp(prefix="encoderflow-error-", suffix=".txt")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def read_error(path: Path) -> str:
    """The one line a failed `encoderflow stage` command left in `path` ("" if none)."""
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def write_error(message: str) -> None:
    """Called by the `encoderflow stage` command on failure: hand the one-line
    message to the flow that started it (no-op when none did)."""
    target = os.environ.get(ERROR_ENV)
    if target:
        Path(target).write_text(message.splitlines()[0] if message else "", encoding="utf-8")
