"""Redact credentials from text before it reaches a log, an MLflow param or an artifact.

URIs may carry secrets (`postgresql://user:password@db/mlflow`, `ftp://user:pw@host/artifacts`,
`https://TOKEN@host/...`, `https://host/file?sig=...&token=...`). Everything encoderflow
logs, prints or records as a param / error message goes through `redact` first, so the
secret stays in params.yaml or the environment (prefer the environment:
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, AWS_*, HF_TOKEN) and nowhere else.

Pure string functions, stdlib only, no import-time work beyond compiling two patterns.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://userinfo@  (RFC 3986: userinfo has no '/', '?', '#'; the LAST '@' before the
# path ends it, so an unescaped '@' inside a password is still covered)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s'\"]*)@")

# ?token=... / &password=... / ;sig=... : any query key that names a secret
_SECRET_KEYS = (r"[\w.\-]*(?:token|passw(?:or)?d|pwd|secret|api[_\-]?key|access[_\-]?key|"
                r"sig(?:nature)?|credential|auth)")
_QUERY = re.compile(rf"(?P<key>[?&;](?i:{_SECRET_KEYS})=)(?P<value>[^&;#\s'\"]*)")


def redact(text: str) -> str:
    """`text` with URI credentials and secret query values replaced by `***`.

    >>> redact("postgresql://alice:s3cret@db.internal:5432/mlflow")
    'postgresql://***@db.internal:5432/mlflow'
    >>> redact("https://ghp_abc123@github.com/org/repo.git")
    'https://***@github.com/org/repo.git'
    >>> redact("MLflow registry at http://u:p@w@host/api is unreachable")
    'MLflow registry at http://***@host/api is unreachable'
    >>> redact("https://blob.example/x.csv?sv=2024&sig=AbC%2F&se=1")
    'https://blob.example/x.csv?sv=2024&sig=***&se=1'
    >>> redact("https://h/p?access_token=t0k&Password=pw")
    'https://h/p?access_token=***&Password=***'
    >>> redact("sqlite:///mlflow.db and file:data/*.csv, mail me at a@b.org")
    'sqlite:///mlflow.db and file:data/*.csv, mail me at a@b.org'
    >>> redact(redact("ftp://bob:pw@ftp.example/a")) == redact("ftp://bob:pw@ftp.example/a")
    True
    """
    if "@" not in text and "=" not in text:  # fast path: nothing to hide
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['key']}{MASK}" if m["value"] else m[0], text)


def redact_mapping(values: dict[str, str]) -> dict[str, str]:
    """`redact` applied to every value (keys are code-defined names, left as they are).

    >>> redact_mapping({"project.tracking_uri": "mysql://root:pw@db/ml", "ingest.seed": "1"})
    {'project.tracking_uri': 'mysql://***@db/ml', 'ingest.seed': '1'}
    """
    return {key: redact(value) for key, value in values.items()}
