"""MLflow helpers. No import-time side effects: mlflow is imported lazily.

Every stage logs into one MLflow run named after the stage. When a pipeline
run is in progress, its parent run id travels in the environment variable
`ENCODERFLOW_PARENT_RUN_ID`, so stages started in-process or as `dvc repro`
subprocesses all nest under the same parent run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Iterator

from components.core import env
from components.core.config import Params, ProjectConfig
from components.core.errors import first_line

PARENT_ENV = "ENCODERFLOW_PARENT_RUN_ID"
ERROR_TAG = "encoderflow.error"  # on a FAILED run: its one-line error


def with_driver(uri: str) -> str:
    """Name the PostgreSQL driver that is installed (psycopg2) in a bare postgresql:// address.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, which encoderflow does not
    ship; an address that names a driver is left alone.

    >>> with_driver("postgresql://mlflow@db:5432/mlflow"), with_driver("postgresql+psycopg://h/db")
    ('postgresql+psycopg2://mlflow@db:5432/mlflow', 'postgresql+psycopg://h/db')
    """
    scheme, sep, rest = uri.partition("://")
    return f"postgresql+psycopg2://{rest}" if sep and scheme.lower() in ("postgresql", "postgres") else uri


def tracking_uri(cfg: ProjectConfig, root: Path | None = None) -> str:
    """Resolve a relative sqlite path against the project root; name psycopg2 for PostgreSQL."""
    uri = with_driver(cfg.tracking_uri)
    prefix = "sqlite:///"
    if root is not None and uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str((Path(root) / uri[len(prefix):]).resolve())
    return uri


def is_server(uri: str) -> bool:
    """True for a tracking server (http/https), False for a store opened in-process.

    >>> is_server("http://127.0.0.1:5000"), is_server("sqlite:///mlflow.db")
    (True, False)
    """
    return uri.lower().startswith(("http://", "https://"))


# One request, no retries, a short timeout. MLflow's defaults (7 retries with exponential
# backoff, 120 s per request) keep a run against a closed port busy for minutes.
PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def _gist(err: BaseException) -> str:
    """ "[Errno 111] Connection refused" or "error code 401" rather than a page of urllib3.

    >>> _gist(Exception("Max retries exceeded ... [Errno 111] Connection refused'))"))
    '[Errno 111] Connection refused'
    >>> _gist(Exception("API request to /x failed with error code 401 != 200. Response body: ..."))
    'error code 401'
    """
    import re

    found = re.search(r"\[Errno -?\d+\][^'\")]*|Read timed out|timed out|error code \d+", str(err))
    return found.group(0).strip() if found else first_line(err, 200)


def check_server(cfg: ProjectConfig, root: Path | None = None) -> None:
    """Fail in seconds, with one line, when `project.tracking_uri` is a server that does not answer.

    A no-op for stores opened in-process (sqlite, postgresql, ...). Credentials come from
    the environment as for every MLflow call (MLFLOW_TRACKING_USERNAME / _PASSWORD / _TOKEN).
    """
    uri = tracking_uri(cfg, root)
    if not is_server(uri):
        return
    from mlflow import MlflowClient

    from components.core.errors import EncoderflowError
    from components.core.redact import redact

    saved = {key: os.environ.get(key) for key in PROBE_ENV}
    os.environ.update(PROBE_ENV)  # read by mlflow at each request: this probe only
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure means "cannot track runs there"
        gist = _gist(e)
        hint = ("; if it needs a login, export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                if gist in ("error code 401", "error code 403") else "")
        raise EncoderflowError(f"MLflow tracking server at {redact(uri)} is unreachable ({gist}){hint}") from None
    finally:
        env.restore(saved)


def experiment_id(cfg: ProjectConfig, root: Path | None = None) -> str:
    """Point mlflow at the configured store and return the experiment id.

    A new experiment on a tracking server keeps the server's artifact root
    (`mlflow-artifacts:/`, proxied by the server) unless `project.artifact_location`
    is a URI: a local folder would name a path on this machine, not on the server.
    """
    import mlflow

    uri = tracking_uri(cfg, root)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is not None:
        return exp.experiment_id
    location: str | None = cfg.artifact_location
    if "://" not in location and not location.startswith("mlflow-artifacts:"):
        location = None if is_server(uri) else Path(root or ".").joinpath(location).resolve().as_uri()
    return mlflow.create_experiment(cfg.experiment, artifact_location=location)


def flat_params(obj: Any, prefix: str = "") -> dict[str, str]:
    """One config section as `section.key` -> str, for mlflow.log_params; nested
    sections flatten to `section.sub.key`.

    Values are redacted (`user:password@` in URIs -> `***@`): params are shown to
    everyone who can read the tracking server.

    >>> @dataclasses.dataclass
    ... class D:
    ...     alpha: float = 0.5
    >>> @dataclasses.dataclass
    ... class F:
    ...     lr: float = 1e-3
    ...     distill: D = dataclasses.field(default_factory=D)
    >>> flat_params(F(), "finetune.")
    {'finetune.lr': '0.001', 'finetune.distill.alpha': '0.5'}
    """
    from components.core.redact import redact_mapping

    def walk(d: dict, pre: str):
        for key, value in d.items():
            if isinstance(value, dict):
                yield from walk(value, f"{pre}{key}.")
            else:
                yield f"{pre}{key}", str(value)

    return redact_mapping(dict(walk(dataclasses.asdict(obj), prefix)))


@contextlib.contextmanager
def stage_run(cfg: Params, stage: str, root: Path, sections: tuple[str, ...] = (),
              run_id: str | None = None, tags: dict[str, str] | None = None) -> Iterator[Any]:
    """Start (or resume, with `run_id`) the MLflow run of one stage.

    Logs the params of `sections`: the stage's params.yaml sections, which callers
    take from the stage table (`table.get(STAGE).params`; core does not import the
    stages). The run ends FINISHED on success and FAILED
    when the body raises (mlflow's own context manager does that), with the
    one-line error in the tag `encoderflow.error`.
    """
    import mlflow

    from components.core import lineage

    exp = experiment_id(cfg.project, root)
    parent = os.environ.get(PARENT_ENV) or None
    # Lineage (git sha, dirty flag, dvc.lock md5, Prefect flow run id) at the
    # start; the data hash at the end, so ingest's run names the data it made.
    all_tags = {"encoderflow.stage": stage, **lineage.code_tags(root), **(tags or {})}
    kwargs: dict[str, Any] = {"run_id": run_id} if run_id else {
        "experiment_id": exp, "run_name": stage, "parent_run_id": parent, "tags": all_tags}
    with mlflow.start_run(**kwargs) as run:
        if not run_id and sections:
            params: dict[str, str] = {}
            for section in sections:
                head, _, key = section.partition(".")
                if key:  # one key of a section ("register.model_name": a dotted DVC param)
                    params[section] = str(getattr(getattr(cfg, head), key))
                else:
                    params.update(flat_params(getattr(cfg, section), f"{section}."))
            mlflow.log_params(params)
        try:
            yield run
        except BaseException as e:  # the run ends FAILED; say why on the run itself
            with contextlib.suppress(Exception):  # never mask the stage's own error
                from components.core.redact import redact

                mlflow.set_tags({**lineage.data_tags(root), ERROR_TAG: redact(first_line(e, 500))})
            raise
        mlflow.set_tags(lineage.data_tags(root))
