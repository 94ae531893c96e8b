"""The console entry point: --help everywhere, one-line errors, exit codes."""

import os
from pathlib import Path

from flows.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _commands():
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_every_command_has_help(cli):
    names = _commands()
    assert {"stage", "run", "check-params"} <= set(names)
    for name in names:
        code, output = cli(name, "--help")
        assert code == 0, (name, output)
        assert "Usage" in output


def test_unknown_stage(tmp_path, cli):
    code, output = cli("stage", "nope", "--params", str(ROOT / "params.yaml"))
    assert code == 1
    assert "unknown stage 'nope'" in output


def test_configure_sets_telemetry_and_offline(monkeypatch):
    from components.core import env

    for key in list(env.QUIET) + list(env.OFFLINE):
        monkeypatch.delenv(key, raising=False)
    env.configure("hf:imdb")
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert os.environ["DVC_NO_ANALYTICS"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert "HF_DATASETS_OFFLINE" not in os.environ
    env.configure("sample:rotten_tomatoes")
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
