"""The registered pyfunc's code: the files it ships and their third-party imports (a static
walk, no registry). Registering for real: tests/integration/test_register.py."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout


def test_inference_files_stay_within_the_allowed_imports():
    from components.registry import pyfunc as pyfunc_model

    files, third = pyfunc_model.inference_files(ROOT)
    names = {f.relative_to(ROOT).as_posix() for f in files}
    assert {"components/__init__.py", "components/registry/pyfunc.py", "components/model/classifier.py",
            "components/core/errors.py"} <= names
    assert third - {"transformers"} <= pyfunc_model.ALLOWED_IMPORTS  # transformers: HF backbones only
    assert pyfunc_model.pip_requirements({"mlflow"}) == [f"mlflow=={__import__('mlflow').__version__}"]
