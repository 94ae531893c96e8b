"""The `encoderflow` command line (Typer). Thin: parse, configure, delegate."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from components import env
from components.errors import EncoderflowError

app = typer.Typer(
    help="Build your own small, fast text encoder: ingest, validate, tokenize, pretrain, "
    "fine-tune, evaluate, register.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}

ParamsOpt = typer.Option(Path("params.yaml"), "--params", "-p", help="Path to params.yaml.")
SetOpt = typer.Option(None, "--set", "-s", help="Override a param: section.key=value (repeatable).")


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")):
    _state["debug"] = debug


def fail(err: BaseException) -> None:
    """Print a one-line error (traceback only with --debug) and exit non-zero."""
    if _state["debug"]:
        raise err
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def load(params: Path, overrides: Optional[List[str]]):
    from components.config import load_params

    cfg = load_params(params, tuple(overrides or ()))
    env.configure(cfg.ingest.source)
    return cfg


@app.command()
def stage(
    name: str = typer.Argument(..., help="Stage to run: ingest, validate, tokenize, ..."),
    params: Path = ParamsOpt,
    set_: Optional[List[str]] = SetOpt,
):
    """Run one stage with params.yaml (this is what dvc.yaml calls)."""
    env.configure()
    try:
        from components import stages
        from components.paths import Paths

        st = stages.get(name)
        cfg = load(params, set_)
        t0 = time.perf_counter()
        summary = st.load()(cfg, Paths.at("."))
        typer.echo(f"{name}: done in {time.perf_counter() - t0:.1f}s" + (f" {summary}" if summary else ""))
    except EncoderflowError as e:
        fail(e)


@app.command()
def run(params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt):
    """Run the whole pipeline, stage by stage."""
    env.configure()
    try:
        from components import stages
        from components.paths import Paths

        cfg = load(params, set_)
        for st in stages.STAGES:
            t0 = time.perf_counter()
            typer.echo(f"==> {st.name}")
            st.load()(cfg, Paths.at("."))
            typer.echo(f"{st.name}: done in {time.perf_counter() - t0:.1f}s")
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
        typer.echo(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    except EncoderflowError as e:
        fail(e)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
