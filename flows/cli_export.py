"""`encoderflow export`: a fine-tuned model (folder or registered version) as an ONNX folder.

    encoderflow export models/finetuned --format onnx -o exported/
    encoderflow export models:/encoderflow@champion --format onnx --int8 -o exported-int8/

Thin: the work is components/registry/onnx_export.py; the folder it writes is what
registry/onnx_pyfunc.py serves (and what `encoderflow predict --model DIR` reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from components.core.errors import EncoderflowError
from flows.app import ParamsOpt, SetOpt, app, fail
from flows.cli_models import _cfg, _client


@app.command()
def export(
    model: str = typer.Argument(..., help="A model folder (models/finetuned, models/teacher) or a registry URI "
                                "(models:/NAME@champion, models:/NAME/3) of a torch-served version."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write (an earlier export there is "
                                "replaced; any other existing folder is refused)."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    int8: bool = typer.Option(False, "--int8", help="Quantize the weights to int8 (ONNX Runtime dynamic "
                              "quantization): smaller and faster, slightly different probabilities."),
    params: Path = ParamsOpt, set_: Optional[List[str]] = SetOpt,
):
    """Export a model to ONNX: one graph from token ids to probabilities (+ pooled vectors),
    checked against torch before the folder appears."""
    try:
        from components.registry import onnx_export

        if ":/" in model:  # a registry URI, not a folder
            _client(_cfg(params, set_))  # points mlflow at the project's registry (one-line error if unreachable)
        family, fp32, q = onnx_export.export(model, output, int8=int8, fmt=fmt)
        typer.echo(f"export: {model} ({family}) -> {output} ({'int8' if q else 'fp32'})")
        typer.echo(f"  fp32 vs torch on {fp32.n} probe texts: {fp32.describe()}")
        if q is not None:
            typer.echo(f"  int8 vs torch on {q.n} probe texts: {q.describe()}")
    except EncoderflowError as e:
        fail(e)
