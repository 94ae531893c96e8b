"""CLI commands for the model registry and inference (registered on the `encoderflow` app).

    encoderflow models [--history]       versions, aliases, metrics, lineage / audit trail of the
                                         student and its teacher (<name>-teacher)
    encoderflow promote VERSION          @champion -> VERSION (the old one is remembered)
    encoderflow rollback                 @champion -> the previous champion
        (models / promote / rollback take --model NAME: default register.model_name,
         the student; --model <name>-teacher acts on the teacher)
    encoderflow predict INPUT -o OUT     labels + probabilities, streamed in batches
                                         (--model URI or a local folder, e.g. models/finetuned)
    encoderflow embed INPUT -o OUT       sentence vectors (.parquet or .npy)
    encoderflow ui                       MLflow UI on the project's store (127.0.0.1), or with
                                         --backend postgresql://USER@HOST/DB a team's server
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Optional

import typer

from components.core import env
from components.core.errors import EncoderflowError
from components.core.redact import redact
from flows.app import ParamsOpt, SetOpt, app, fail


def _cfg(params: Path, overrides: Optional[List[str]]):
    """params.yaml when present (its tracking store, model name), else the defaults."""
    env.configure()
    from components.core.config import Params, load_params

    if params.is_file() or overrides:
        return load_params(params, tuple(overrides or ()))
    return Params()


def _client(cfg):
    from components.registry import client as registry

    return registry.connect(cfg.project, Path(".").resolve())


def _short(value: str, n: int = 8) -> str:
    return value[:n] if value else "-"


NameOpt = typer.Option(None, "--model", help="Registered model name (default: register.model_name, the "
                       "student; <register.model_name>-teacher is its teacher).")


def _name(cfg, name: Optional[str]) -> str:
    return name or cfg.register.model_name


@app.command()
def promote(version: str = typer.Argument(..., help="Model version to make @champion."),
            model: Optional[str] = NameOpt, params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt):
    """Make VERSION the @champion (the replaced champion can be restored with `rollback`)."""
    try:
        from components.core import runlock
        from components.registry import client as registry

        cfg = _cfg(params, set_)
        name = _name(cfg, model)
        with runlock.hold("."):  # not while this project's pipeline may be moving aliases
            changed, old = registry.promote(_client(cfg), name, version)
        undo = "encoderflow rollback" + (f" --model {name}" if model else "")
        if changed:
            typer.echo(f"{name}: version {version} is now @champion"
                       + (f" (previous champion: {old}; undo with `{undo}`)" if old else ""))
        else:
            typer.echo(f"{name}: version {version} is already @champion")
    except EncoderflowError as e:
        fail(e)


@app.command()
def rollback(model: Optional[str] = NameOpt, params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt):
    """Return @champion to the previous champion (a second rollback undoes the first)."""
    try:
        from components.core import runlock
        from components.registry import client as registry

        cfg = _cfg(params, set_)
        name = _name(cfg, model)
        with runlock.hold("."):  # not while this project's pipeline may be moving aliases
            replaced, restored = registry.rollback(_client(cfg), name)
        typer.echo(f"{name}: @champion rolled back from version {replaced} to version {restored}")
    except EncoderflowError as e:
        fail(e)


def _history_table(registry, client, name: str):
    from rich.table import Table

    table = Table(title=f"{name}: alias changes (oldest first)")
    for col in ("time", "action", "by", "alias", "change", "status", "note"):
        table.add_column(col)
    for rec in registry.history(registry.get_model(client, name)):
        if rec.get("action") == "external":
            change = ", ".join(f"@{a}: {o or '-'} -> {v or '-'}" for a, (o, v) in rec["changes"].items())
            alias = ", ".join(rec["changes"])
        else:
            change, alias = f"{rec.get('from') or '-'} -> {rec.get('version')}", rec.get("alias", "")
        table.add_row(rec.get("time", ""), rec.get("action", ""), rec.get("by", ""), alias,
                      change, rec.get("status", ""), str(rec.get("note", ""))[:60])
    return table


def _versions_table(registry, client, name: str):
    """One row per version. `teacher` (only when some version has one) names the teacher:
    its init, and for the student the teacher's registered version; `train run` is the
    finetune (student) or teacher run. The key columns never shrink below their values."""
    from rich import box
    from rich.table import Table

    rows = registry.versions(client, name)
    with_teacher = any("encoderflow.teacher_init" in r["tags"] for r in rows)
    table = Table(title=f"{name}: registered versions", box=box.SIMPLE_HEAD, show_edge=False)
    for col, width in (("version", 7), ("aliases", 11), ("created", 16), ("accuracy", 8), ("macro_f1", 8),
                       ("gate", 10), ("teacher", 12), ("git", 8), ("data", 8), ("tokenizer", 8),
                       ("train run", 8), ("flow run", 8)):
        if col != "teacher" or with_teacher:
            table.add_column(col, min_width=width)
    for row in rows:
        t = row["tags"]
        git = _short(t.get("encoderflow.git_sha", "")) + ("+dirty" if t.get("encoderflow.git_dirty") == "true" else "")
        teacher = t.get("encoderflow.teacher_init", "-")
        if t.get("encoderflow.teacher_version"):
            teacher += f" v{t['encoderflow.teacher_version']}"
        train = t.get("encoderflow.finetune_run_id") or t.get("encoderflow.teacher_run_id", "")
        cells = [row["version"], " ".join(f"@{a}" for a in row["aliases"]), row["created"],
                 t.get("metric.accuracy", "-"), t.get("metric.macro_f1", "-"), t.get("gate.decision", "-")]
        cells += [teacher] if with_teacher else []
        cells += [git, _short(t.get("encoderflow.data_md5", "")), _short(t.get("encoderflow.tokenizer_md5", "")),
                  _short(train), _short(t.get("encoderflow.flow_run_id", ""))]
        table.add_row(*cells)
    return table


@app.command()
def models(history: bool = typer.Option(False, "--history", help="Show the audit trail of alias changes."),
           model: Optional[str] = typer.Option(None, "--model", help="Only this registered model "
                                               "(default: the student register.model_name and, when "
                                               "registered, its teacher <register.model_name>-teacher)."),
           params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt):
    """List registered versions with aliases, key metrics and lineage (or the alias history),
    for the student and its teacher."""
    try:
        from rich.console import Console

        from components.registry import client as registry

        cfg = _cfg(params, set_)
        client, name = _client(cfg), _name(cfg, model)
        if registry.get_model(client, name) is None:
            raise EncoderflowError(f"registered model {name!r} not found (run the register stage first)")
        names = [name]
        teacher = registry.teacher_name(name)
        if model is None and registry.get_model(client, teacher) is not None:
            names.append(teacher)
        console = Console(width=max(150, Console().width))
        for i, each in enumerate(names):
            registry.sync(client, each)  # records alias changes made in the UI since last time
            if i:
                console.print()
            console.print(_history_table(registry, client, each) if history
                          else _versions_table(registry, client, each))
    except EncoderflowError as e:
        fail(e)


ModelOpt = typer.Option(None, "--model", "-m", help="MLflow model URI (default: @champion of register.model_name, "
                        "the student; e.g. models:/encoderflow-teacher@champion for the teacher), or a local "
                        "model folder (models/finetuned, models/teacher: no MLflow store needed).")
OutOpt = typer.Option(..., "--output", "-o", help="Output file.")
ColumnOpt = typer.Option("text", "--text-column", help="Column holding the text.")
PairColumnOpt = typer.Option("text_pair", "--text-pair-column",
                             help="pair models only: column holding the second text of each pair.")


def _open_model(params: Path, set_: Optional[List[str]], uri: Optional[str], input: Path,
                output: Path, text_column: str, out_kinds):
    """Check the input file, its text column and the output type, then load the model.

    Bad files fail here with a one-line error, before the (slower) model load.
    """
    from components.registry.batch_read import file_kind, read_batches
    from components.registry.load import load_model

    cfg = _cfg(params, set_)
    next(read_batches(input, text_column), None)
    file_kind(output, out_kinds, "output")
    uri = uri or f"models:/{cfg.register.model_name}@champion"
    if uri.startswith("models:/"):
        _client(cfg)  # points mlflow at the project's registry (one-line error if unreachable)
    return uri, load_model(uri)


@app.command()
def predict(input: Path = typer.Argument(..., help="Input .csv, .jsonl or .parquet."),
            output: Path = OutOpt, model: Optional[str] = ModelOpt, text_column: str = ColumnOpt,
            params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt,
            text_pair_column: str = PairColumnOpt):
    """Predict a label and class probabilities for every row (streamed; output .csv/.jsonl/.parquet)."""
    try:
        from components.registry import predict as batch
        from components.registry.batch_write import PRED_OUT

        uri, loaded = _open_model(params, set_, model, input, output, text_column, PRED_OUT)
        n = batch.predict_file(loaded, input, output, text_column, pair_column=text_pair_column)
        typer.echo(f"predict: {n} rows scored with {redact(uri)} -> {output}")
    except EncoderflowError as e:
        fail(e)


@app.command()
def embed(input: Path = typer.Argument(..., help="Input .csv, .jsonl or .parquet."),
          output: Path = OutOpt, model: Optional[str] = ModelOpt, text_column: str = ColumnOpt,
          params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt,
          text_pair_column: str = PairColumnOpt):
    """Sentence vectors for every row (streamed; output .parquet or .npy)."""
    try:
        from components.registry import predict as batch
        from components.registry.batch_write import EMBED_OUT

        uri, loaded = _open_model(params, set_, model, input, output, text_column, EMBED_OUT)
        n, dim = batch.embed_file(loaded, input, output, text_column, pair_column=text_pair_column)
        typer.echo(f"embed: {n} rows x {dim} dims with {redact(uri)} -> {output}")
    except EncoderflowError as e:
        fail(e)


LOOPBACK = "127.0.0.1"


def ui_command(cfg, root: Path, host: str = LOOPBACK, port: int = 5000, backend: Optional[str] = None,
               artifacts: Optional[str] = None) -> tuple[list[str], dict]:
    """The `mlflow server` command line and environment: the project's store, or `backend`.

    The store URIs travel in the environment (flows/mlflow_server.py), not on the
    command line, where `ps` would show any password they carry to every local user.
    """
    from components.core.tracking import tracking_uri
    from flows.mlflow_server import server_command

    return server_command(backend or tracking_uri(cfg.project, root),
                          artifacts or cfg.project.artifact_location, root, host, port)


@app.command()
def ui(host: str = typer.Option(LOOPBACK, "--host", help="Interface to bind (default: loopback only; "
                                "the MLflow UI has no login, so anyone who reaches it can edit models)."),
       port: int = typer.Option(5000, "--port", help="Port to listen on."),
       backend: Optional[str] = typer.Option(None, "--backend", help="Backend store instead of the "
                                             "project's, e.g. postgresql://USER@HOST:5432/DB (password: "
                                             "PGPASSWORD or ~/.pgpass, never in the address)."),
       artifacts: Optional[str] = typer.Option(None, "--artifacts-destination", help="Where the server "
                                               "keeps artifacts (folder or URI; default: "
                                               "project.artifact_location, mlartifacts/)."),
       params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt):
    """Start the MLflow UI on the project's runs and models (Ctrl-C stops it)."""
    try:
        from components.core.tracking import is_server
        from flows.mlflow_server import check_backend

        cfg = _cfg(params, set_)
        if backend is None and is_server(cfg.project.tracking_uri):
            raise EncoderflowError(f"project.tracking_uri {cfg.project.tracking_uri} is already a server: "
                                   "open it in a browser (or start one with --backend)")
        if backend is not None:
            check_backend(backend)  # no password in it; PostgreSQL: the login works
        cmd, environ = ui_command(cfg, Path(".").resolve(), host, port, backend, artifacts)
        from flows.schedule import is_loopback

        if not is_loopback(host):
            typer.secho(f"warning: --host {host} exposes the MLflow UI (no authentication) to "
                        "the network", fg=typer.colors.YELLOW, err=True)
        typer.echo(f"MLflow UI: http://{host}:{port}  (models: http://{host}:{port}/#/models)")
        try:
            code = subprocess.call(cmd, env=environ)
        except KeyboardInterrupt:
            code = 0
        raise typer.Exit(code)
    except EncoderflowError as e:
        fail(e)
