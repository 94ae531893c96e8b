"""A local model folder names the same inputs as its registered version's MLflow signature
(registry/load.py builds them without importing MLflow, which keeps `encoderflow predict` on an
ONNX export fast to start)."""

from __future__ import annotations

import pytest

from components.registry.load import _Inputs
from components.registry.publish import _signature


@pytest.mark.parametrize(("task", "bi_encoder", "names", "required"), [
    ("single_label", False, ["text"], ["text"]),
    ("multi_label", False, ["text"], ["text"]),
    ("pair", False, ["text", "text_pair"], ["text", "text_pair"]),
    ("pair", True, ["text", "text_pair"], ["text"]),  # a bi-encoder embeds single texts
])
def test_folder_inputs_match_the_registered_signature(task, bi_encoder, names, required):
    schema = _signature(["a", "b"], task, bi_encoder).inputs
    mine = _Inputs(task, bi_encoder)
    assert schema.input_names() == mine.input_names() == names
    assert schema.required_input_names() == mine.required_input_names() == required


def test_scoring_an_export_folder_imports_neither_mlflow_nor_torch():
    """The predict path of an ONNX export (load.FolderModel -> onnx_runtime): a fresh interpreter,
    since this test process has both imported already."""
    import subprocess
    import sys

    code = ("import sys; from components.registry import load, onnx_runtime, frames, predict; "
            "print(sorted(m for m in ('mlflow', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
