"""The `encoderflow` command line (Typer). Thin: parse, configure, delegate."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from components.core import env
from components.core.errors import EncoderflowError
from flows import cli_export, cli_models  # noqa: F401  (register export; promote, rollback, models, predict, embed, ui)
from flows.app import ParamsOpt, SetOpt, app, fail, load


@app.command()
def stage(
    name: str = typer.Argument(..., help="Stage to run: ingest, validate, tokenize, ..."),
    params: Path = ParamsOpt,
    set_: Optional[List[str]] = SetOpt,
):
    """Run one stage with params.yaml (this is what dvc.yaml calls)."""
    env.configure()
    try:
        import contextlib

        from components.core import runlock, tracking
        from components.core.paths import Paths
        from components.model.distributed import launched_worker
        from components.stages import table as stages

        st = stages.get(name)
        cfg = load(params, set_)
        t0 = time.perf_counter()
        # A stage run by hand while the pipeline runs would interleave outputs: refused.
        # Stages that the pipeline itself starts (dvc repro) pass: the lock is their parent's.
        # So do the non-zero ranks that torchrun / srun start next to rank 0 (multi-process
        # pretraining): they are part of rank 0's run, which holds the lock.
        worker = launched_worker()
        if not worker and not os.environ.get(tracking.PARENT_ENV):  # by hand or `dvc repro`, not the flow
            tracking.check_server(cfg.project, Path(".").resolve())  # a dead server: one line, in seconds
        with contextlib.nullcontext() if worker else runlock.hold("."):
            summary = st.load()(cfg, Paths.at("."))
        if not worker:
            typer.echo(f"{name}: done in {time.perf_counter() - t0:.1f}s" + (f" {summary}" if summary else ""))
    except EncoderflowError as e:
        fail(e)
    except Exception as e:  # a bug: keep the traceback, still tell the flow the one line
        from components.core.redact import redact
        from flows.stagerun import write_error

        write_error(redact(f"{type(e).__name__}: {e}"))
        raise


@app.command()
def run(params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt,
        force: bool = typer.Option(False, "--force", "-f", help="Run every stage even if nothing "
                                   "changed (like `dvc repro -f`): pretraining starts from scratch.")):
    """Run the whole pipeline (a Prefect flow); unchanged stages are skipped (unless --force).

    In a DVC repo each stage runs through `dvc repro`, so dvc.lock records the
    run and `dvc repro` afterwards is a no-op; --set values are written into
    params.yaml there (DVC reads that file). Elsewhere stages run in-process.
    When `dvc status` finds nothing changed (and there is no --set or --force), the
    run says so and ends without starting Prefect: no flow or MLflow run is recorded.
    One run per project at a time: a second one exits at once with
    "pipeline already running (pid N)" (lock: .encoderflow/run.lock)."""
    env.configure()
    os.environ.setdefault("PREFECT_HOME", str(Path(".prefect").resolve()))  # runs stay with the project
    try:
        cfg = load(params, set_)
        from components.core import runlock, tracking
        from flows import pipeline, stage_dvc

        with runlock.hold("."):  # a second run is refused here, before Prefect starts
            if not (force or set_) and params.resolve() == Path("params.yaml").resolve() \
                    and stage_dvc.up_to_date("."):
                typer.echo(UP_TO_DATE)
                return
            tracking.check_server(cfg.project, Path(".").resolve())  # a dead server: one line, in seconds
            outcome = pipeline.run_local(".", str(params), tuple(set_ or ()), force=force)
        from components.core.redact import redact

        typer.echo(pipeline.where_to_look(outcome, redact(cfg.project.tracking_uri)))
        if not outcome.ok:
            fail(EncoderflowError(outcome.message))
    except EncoderflowError as e:
        fail(e)


UP_TO_DATE = ("Pipeline up to date: `dvc status` finds no stage, parameter or data changed, so nothing ran "
              "and no Prefect or MLflow run was recorded. `encoderflow run --force` runs every stage again.")


@app.command()
def schedule(
    cron: str = typer.Option("0 3 * * *", "--cron", help="When to run (cron; see --timezone)."),
    server: Optional[str] = typer.Option(None, "--server", help="Use this Prefect API instead of "
                                         "starting one, e.g. http://prefect.internal:4200/api"),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface the local server binds."),
    port: int = typer.Option(4200, "--port", help="Port of the local server."),
    name: str = typer.Option("scheduled", "--name", help="Deployment name."),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA timezone of --cron, e.g. Europe/Berlin."),
):
    """Serve the pipeline on a cron schedule from a local Prefect server (Ctrl-C stops both)."""
    env.configure()
    os.environ.setdefault("PREFECT_HOME", str(Path(".prefect").resolve()))
    try:
        from flows import schedule as sched

        sched.serve(Path("."), cron=cron, server=server, host=host, port=port, name=name,
                    timezone=timezone)
    except EncoderflowError as e:
        fail(e)


@app.command()
def deploy(
    pool: str = typer.Option(..., "--pool", help="Prefect work pool (type process) whose workers run it."),
    cron: Optional[str] = typer.Option(None, "--cron", help="When to run (cron; see --timezone). "
                                       "Without it: runs only when triggered."),
    name: Optional[str] = typer.Option(None, "--name", help="Deployment name (default: the pool's)."),
    server: str = typer.Option("http://127.0.0.1:4200/api", "--server", envvar="PREFECT_API_URL",
                               help="Prefect API to deploy to (the workers must reach it too)."),
    path: Path = typer.Option(Path("."), "--path", help="The checkout every worker runs in, at "
                              "this same path on each machine (default: this folder)."),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA timezone of --cron, e.g. Europe/Berlin."),
    create_pool: bool = typer.Option(False, "--create-pool", help="Create the process pool if missing."),
):
    """Deploy the pipeline to a Prefect work pool; `prefect worker start --pool NAME` runs it."""
    env.configure()
    try:
        from flows import deploy as dep

        dep.deploy(pool, server, name=name, cron=cron, timezone=timezone, path=path,
                   create_pool=create_pool)
    except EncoderflowError as e:
        fail(e)


@app.command("check-params")
def check_params(params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt):
    """Parse params.yaml strictly and print the resolved configuration."""
    env.configure()
    try:
        import dataclasses

        import yaml

        cfg = load(params, set_)
        from components.core.redact import redact

        typer.echo(redact(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)))
    except EncoderflowError as e:
        fail(e)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
