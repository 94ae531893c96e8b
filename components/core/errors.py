"""The one exception type users see.

Every expected failure (bad params, bad data, missing files, failed
validation) raises `EncoderflowError` with a one-line message that names the
problem and where it is. The CLI prints it without a traceback and exits
non-zero; `--debug` shows the traceback.
"""

from __future__ import annotations


class EncoderflowError(Exception):
    """A user-facing error: `str(err)` is one line naming what and where."""

    def __init__(self, message: str, *, stage: str | None = None):
        self.stage = stage
        super().__init__(message)

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{self.stage}: {msg}" if self.stage and not msg.startswith(f"{self.stage}:") else msg


class ConfigError(EncoderflowError):
    """params.yaml (or an override) is invalid: unknown key, wrong type, out of range."""


class DataError(EncoderflowError):
    """Input data is unreadable or breaks a contract."""
