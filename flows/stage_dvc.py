"""Run one stage the way `dvc repro` would, so the flow and DVC never disagree.

In a DVC repo (a `.dvc/` folder at the project root) the flow runs each stage
through DVC's documented Python entry point, `Repo(root).reproduce(NAME)`,
which is what the `dvc repro NAME` command calls. DVC skips the stage when
its deps and params are unchanged, restores it from the run cache when it has
seen them before, and otherwise starts the stage's command, `encoderflow stage
NAME`, as its own subprocess, then records what ran in dvc.lock. So after a
flow run `dvc status` is clean and `dvc repro` is a no-op. Nothing of DVC's
internals is touched: any DVC 3 that keeps `Repo.reproduce` works.

`reproduce(NAME)` (not single_item) also re-hashes upstream data sources such
as a `dvc add`-ed data/incoming; upstream stages the flow already ran are
skipped quickly. Calling it in the flow's process rather than starting a
`dvc repro NAME` subprocess per stage saves DVC's own start-up once per stage
(benchmarks/noop.py times both ways on a no-op pipeline).

Each stage command is a fresh process, as under `dvc repro`: it imports torch,
Lightning, MLflow or GX itself and leaves no state behind in the flow. It
inherits the flow's environment (the MLflow parent run id, the Prefect flow
run id) plus ERROR_ENV (the file its one-line error goes to) and a PATH that
finds the `encoderflow` next to this Python. Multi-process pretraining needs
nothing special: Lightning's launcher re-runs that subprocess's command,
`encoderflow stage pretrain`, once per device.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from components.core import env as project_env
from flows.stagerun import ERROR_ENV, StageFailed, StageResult, child_env, error_file, read_error


def is_dvc_repo(root: str | Path) -> bool:
    return (Path(root) / ".dvc").is_dir()


def up_to_date(root: str | Path) -> bool:
    """True when `root` is a DVC repo in which `dvc status` finds nothing changed: no stage's
    deps, params or outs, and no tracked data (DVC's public `Repo.status`)."""
    if not is_dvc_repo(root):
        return False
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(str(root)) as repo:
        return not repo.status()


@contextlib.contextmanager
def _environ(extra: dict[str, str]):
    """os.environ plus `extra` while the block runs (DVC passes os.environ to the command)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        project_env.restore(saved)


def run_with_dvc(name: str, root: str | Path, force: bool = False) -> StageResult:
    """`dvc repro NAME` in `root`, in this process; raises StageFailed with the stage's error.

    force: `dvc repro -f -s NAME`: run this stage even if nothing changed, without
    its run cache (the flow forces every stage in order, so each runs once).
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    t0 = time.perf_counter()
    dvc_log = logging.getLogger("dvc")
    propagate, dvc_log.propagate = dvc_log.propagate, False  # DVC prints it; Prefect would again
    try:
        # DVC resolves targets and paths against the cwd (its CLI runs from the
        # repo root); the flow runs one stage at a time, so a chdir is safe here.
        with error_file() as err, contextlib.chdir(root), \
                _environ(child_env({ERROR_ENV: str(err)})), Repo(str(root)) as repo:
            opts = {"force": True, "single_item": True} if force else {}
            try:
                done = repo.reproduce(name, **opts)
            except DvcException as e:
                detail = read_error(err)
                if not detail:  # DVC's own problem, or a crash before the CLI could report
                    cause = e.__cause__ or e
                    detail = f"{cause} (see the output above)" if cause is not e else str(e)
                raise StageFailed(name, detail) from e
    finally:
        dvc_log.propagate = propagate
    status = "ran" if any(getattr(s, "name", None) == name for s in done) else "skipped"
    return StageResult(name, status, time.perf_counter() - t0, "dvc")
