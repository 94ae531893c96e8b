"""The console entry point as a subprocess (`python -m flows.cli`): one-line errors without a
traceback, and --debug shows it. The in-process checks are tests/unit/test_cli.py."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
