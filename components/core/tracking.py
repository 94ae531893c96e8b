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

from components.core.config import Params, ProjectConfig
from components.core.errors import first_line

PARENT_ENV = "ENCODERFLOW_PARENT_RUN_ID"
ERROR_TAG = "encoderflow.error"  # on a FAILED run: its one-line error


def tracking_uri(cfg: ProjectConfig, root: Path | None = None) -> str:
    """Resolve a relative sqlite path against the project root."""
    uri = cfg.tracking_uri
    prefix = "sqlite:///"
    if root is not None and uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str((Path(root) / uri[len(prefix):]).resolve())
    return uri


def experiment_id(cfg: ProjectConfig, root: Path | None = None) -> str:
    """Point mlflow at the configured store and return the experiment id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(cfg, root))
    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is not None:
        return exp.experiment_id
    location = cfg.artifact_location
    if "://" not in location:
        location = Path(root or ".").joinpath(location).resolve().as_uri()
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
