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


def first_line(err: BaseException | str, limit: int | None = None, *, with_type: bool = False) -> str:
    """The first line of an error's message, or of a text, for a one-line error.

    Blank lines around the message are skipped. An error with no message gives its
    type name, a blank text gives "". `limit` cuts the line to that many characters;
    `with_type` prefixes the error's type name ("OSError: disk full").

    >>> first_line(ValueError("bad\\nmore"))
    'bad'
    >>> first_line(KeyboardInterrupt())
    'KeyboardInterrupt'
    >>> first_line("\\n  warning: x \\n y", limit=7)
    'warning'
    >>> first_line(OSError("disk full"), with_type=True), first_line(OSError(), with_type=True)
    ('OSError: disk full', 'OSError')
    """
    lines = str(err).strip().splitlines()
    line = lines[0].strip() if lines else ""
    if isinstance(err, BaseException) and (with_type or not line):
        line = f"{type(err).__name__}: {line}" if line else type(err).__name__
    return line if limit is None else line[:limit]


class ConfigError(EncoderflowError):
    """params.yaml (or an override) is invalid: unknown key, wrong type, out of range."""


class DataError(EncoderflowError):
    """Input data is unreadable or breaks a contract."""
