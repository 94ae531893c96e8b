"""The `encoderflow` Typer app and what every command shares: `fail`, `load`
and the --params/--set options. Commands live in flows/cli.py (pipeline) and
flows/cli_models.py (registry and inference); both import from here, and
flows/cli.py imports flows/cli_models.py, so there is no import cycle."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from components.core import env

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
    from components.core.redact import redact
    from flows.stagerun import write_error

    message = redact(str(err))  # no URI credentials in terminals, CI logs or run tags
    write_error(message)  # for the flow that started this stage, if any
    if _state["debug"]:
        raise err
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def load(params: Path, overrides: Optional[List[str]]):
    from components.core.config import load_params

    cfg = load_params(params, tuple(overrides or ()))
    env.configure(cfg.ingest.source)
    return cfg
