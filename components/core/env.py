"""The one place that makes every library offline and quiet.

Called by the CLI (and the test suite) before anything imports Prefect, MLflow,
DVC, GX or HF. It never runs at import time.
"""

from __future__ import annotations

import os

QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLIENT_ENABLE_TELEMETRY": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def configure(source: str | None = None) -> None:
    """Switch telemetry off; switch HF offline unless `source` is an `hf:` URI.

    Values the user already exported win, so `HF_HUB_OFFLINE=0` still works.
    """
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    if source is None or not source.startswith("hf:"):
        for key, value in OFFLINE.items():
            os.environ.setdefault(key, value)


def restore(saved: dict[str, str | None]) -> None:
    """Put back environment variables saved as {name: os.environ.get(name)}: None = unset.

    >>> saved = {"ENCODERFLOW_DOCTEST_X": os.environ.get("ENCODERFLOW_DOCTEST_X")}
    >>> os.environ["ENCODERFLOW_DOCTEST_X"] = "1"; restore(saved); "ENCODERFLOW_DOCTEST_X" in os.environ
    False
    """
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
