"""The `mlflow server` that `encoderflow ui` starts, and a team's backend store on PostgreSQL.

    encoderflow ui                                      the project's store (sqlite:///mlflow.db)
    PGPASSWORD=... encoderflow ui --backend postgresql://mlflow@db.internal:5432/mlflow \\
        --artifacts-destination /srv/mlflow/artifacts   a shared server (proxied artifacts)

Store addresses reach `mlflow server` through environment variables
(MLFLOW_BACKEND_STORE_URI, MLFLOW_ARTIFACTS_DESTINATION: options it reads), not its
command line, which `ps` shows to every local user. A --backend address that holds a
password is refused: libpq takes the password from PGPASSWORD or ~/.pgpass, and the user
from the address or PGUSER. Before the server starts, a PostgreSQL backend is logged into
once, so a wrong password is one line naming host:port/db (mlflow server would die at
start-up with a page of traceback).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from components.core.errors import ConfigError, EncoderflowError
from components.core.redact import redact

POSTGRES = ("postgresql", "postgres")  # SQLAlchemy spells it postgresql[+driver]://


def _scheme(uri: str) -> str:
    """The database family of a SQLAlchemy address: "postgresql+psycopg2://..." -> "postgresql"."""
    return uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""


def refuse_password(uri: str) -> None:
    """A ConfigError when `uri` carries a password (in user:password@ or ?password=).

    >>> refuse_password("postgresql://mlflow@db:5432/mlflow")
    >>> refuse_password("postgresql://mlflow:s3cret@db:5432/mlflow")
    Traceback (most recent call last):
    ...
    components.core.errors.ConfigError: --backend postgresql://***@db:5432/mlflow: the address holds a password (ps, shell history and logs would show it); remove it and export PGPASSWORD instead (or add a ~/.pgpass line)
    """
    parts = urlsplit(uri)
    in_query = any(k.lower() == "password" for k in parse_qs(parts.query, keep_blank_values=True))
    if parts.password or in_query:
        raise ConfigError(f"--backend {redact(uri)}: the address holds a password (ps, shell history "
                          "and logs would show it); remove it and export PGPASSWORD instead "
                          "(or add a ~/.pgpass line)")


def postgres_target(uri: str) -> str:
    """host:port/db of a PostgreSQL address, with libpq's defaults filled in.

    >>> postgres_target("postgresql+psycopg2://mlflow@db.internal/mlflow")
    'db.internal:5432/mlflow'
    """
    parts = urlsplit(uri)
    host = parts.hostname or os.environ.get("PGHOST", "localhost")
    port = parts.port or os.environ.get("PGPORT", "5432")
    db = parts.path.lstrip("/") or os.environ.get("PGDATABASE") or parts.username or os.environ.get("PGUSER", "")
    return f"{host}:{port}/{db}"


def _reason(err: BaseException) -> str:
    """libpq's reason, without its "connection to server at ... failed:" preamble.

    >>> _reason(Exception('connection to server at "127.0.0.1", port 5 failed: FATAL:  '
    ...                   'password authentication failed for user "mlflow"\\n'))
    'password authentication failed for user "mlflow"'
    """
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    found = re.search(r"failed:\s*(?:FATAL:\s*)?(.+)$", line)
    return (found.group(1) if found else line).strip()


def check_backend(uri: str, timeout: int = 10) -> None:
    """Refuse a password in `uri`; for PostgreSQL, log in once (one-line error if that fails)."""
    refuse_password(uri)
    if _scheme(uri) not in POSTGRES:
        return
    import psycopg2

    dsn = "postgresql://" + uri.split("://", 1)[1]  # libpq's own URI form (no +driver)
    try:
        psycopg2.connect(dsn, connect_timeout=timeout).close()
    except psycopg2.Error as e:
        reason = _reason(e)
        hint = ("; export PGPASSWORD (or add a ~/.pgpass line) for that user"
                if "password" in reason else "")
        raise EncoderflowError(f"PostgreSQL at {postgres_target(uri)}: {redact(reason)}{hint}") from None


def server_command(backend: str, artifacts: str, root: Path, host: str, port: int) -> tuple[list[str], dict]:
    """`mlflow server` argv and environment: one worker, no job runner, proxied artifacts.

    `artifacts` is a URI (s3://...) or a folder, made absolute against `root`.
    """
    from components.core.tracking import with_driver

    if "://" not in artifacts:
        artifacts = (root / artifacts).resolve().as_uri()
    backend = with_driver(backend)  # postgresql:// -> postgresql+psycopg2:// (SQLAlchemy 2.1)
    cmd = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts",
           "--host", host, "--port", str(port), "--workers", "1"]
    return cmd, {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                 "MLFLOW_BACKEND_STORE_URI": backend, "MLFLOW_ARTIFACTS_DESTINATION": artifacts}
