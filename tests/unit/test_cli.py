"""The console entry point: --help everywhere, one-line errors, exit codes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _commands():
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_every_command_has_help():
    names = _commands()
    assert {"stage", "run", "check-params"} <= set(names)
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_bad_param_is_one_line_error_without_traceback(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("pretrain:\n  lr: -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "check-params", "--params", str(params)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert err == [f"error: {params}: pretrain.lr: expected a float > 0, got -1"]
    assert "Traceback" not in result.stderr


def test_debug_shows_traceback(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("model:\n  family: rnn\n")
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--debug", "check-params", "--params", str(params)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_unknown_stage(tmp_path):
    result = runner.invoke(app, ["stage", "nope", "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 1
    assert "unknown stage 'nope'" in result.output


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
