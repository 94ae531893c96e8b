"""The Prefect flow: the stages of components/stages/table.py, in order, as tasks.

One flow run = one MLflow parent run named "pipeline"; every stage opens a
child run under it (components.core.tracking.stage_run reads the parent id from
ENCODERFLOW_PARENT_RUN_ID, the Prefect flow run id from ENCODERFLOW_FLOW_RUN_ID;
the flow sets both in its environment, which the `encoderflow stage NAME`
subprocesses that DVC starts inherit). In a DVC repo each task is `dvc repro
NAME` (flows/stage_dvc.py), so unchanged stages are skipped and `dvc status` is
clean afterwards; elsewhere each task calls the stage function
(flows/stage_local.py).

A failing stage ends the flow in a Failed state whose message is
"stage 'validate' failed: <one-line error>"; later stages do not run and the
outputs of earlier stages stay. Either way a markdown artifact
(key "encoderflow-run") summarises the run. The failed stage's MLflow run
and the parent "pipeline" run end FAILED (tag encoderflow.failed_stage).

One run per project at a time: the flow holds components/core/runlock.py's lock
(.encoderflow/run.lock) throughout; another run, scheduled or by hand, is
refused with "pipeline already running (pid N)".
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NONE

from components.core import env, lineage, runlock, tracking
from components.core.errors import ConfigError, EncoderflowError
from components.core.paths import Paths
from components.stages import table as stages
from flows import stage_dvc, stage_local, stagerun, summary

ARTIFACT_KEY = "encoderflow-run"
INCOMING = "data/incoming"  # DVC watches it (ingest dep); file: sources belong there
CORPUS_DIR = "data/corpus"  # the same for ingest.unlabeled_source


@task(cache_policy=NONE, persist_result=False)
def run_stage(name: str, root: str, driver: str, cfg=None, force: bool = False) -> dict:
    """One stage through DVC (or in-process); DVC does the caching, not Prefect."""
    if driver == "dvc":
        result = stage_dvc.run_with_dvc(name, root, force=force)
    else:
        result = stage_local.run_in_process(name, root, cfg)
    print(f"{name}: {result.status} ({result.seconds:.1f}s)")
    return dataclasses.asdict(result)


def _retry_delays(n: int) -> list[float]:
    """Seconds before each ingest retry: 5, 15, 45, ... (capped at 5 min)."""
    return [min(300.0, 5.0 * 3 ** i) for i in range(n)]


def resolve_params(root: Path, params: str, overrides: list[str], driver: str, log):
    """Validate params (+ overrides). DVC runs write overrides into params.yaml."""
    from components.core.config import load_params

    path = (root / params).resolve()
    cfg = load_params(path, overrides)  # strict: a bad override fails here, file untouched
    if driver == "dvc":
        if path != root / "params.yaml":
            raise ConfigError(f"--params {params}: DVC-driven runs read params.yaml (dvc.yaml "
                              "tracks it); copy the file there or use --set")
        if overrides:
            from flows.paramsfile import write_overrides

            if write_overrides(path, overrides):
                log.info("params.yaml updated with %s (DVC reads params.yaml; dvc.lock records "
                         "it; `git diff params.yaml` shows it)", ", ".join(overrides))
        for key, source, folder in (("ingest.source", cfg.ingest.source, INCOMING),
                                    ("ingest.unlabeled_source", cfg.ingest.unlabeled_source.strip(), CORPUS_DIR)):
            if source.startswith("file:"):
                pattern = (root / source[len("file:"):].strip()).resolve()
                if root / folder not in pattern.parents:
                    log.warning("%s %s is outside %s: DVC will not notice new files there (run "
                                "`dvc repro -f ingest` after adding data)", key, source, folder)
    return cfg


class ParentRun:
    """The MLflow parent run "pipeline" (client API: no global active run, so
    in-process stages can open their own runs under it)."""

    def __init__(self, cfg, root: Path, flow_run_id: str):
        from mlflow import MlflowClient

        self.root = root
        exp = tracking.experiment_id(cfg.project, root)
        self.client = MlflowClient(tracking.tracking_uri(cfg.project, root))
        tags = {"encoderflow.stage": "pipeline", **lineage.code_tags(root),
                lineage.PREFIX + "flow_run_id": flow_run_id}
        self.run_id = self.client.create_run(exp, run_name="pipeline", tags=tags).info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for f in dataclasses.fields(cfg)
                  for k, v in tracking.flat_params(getattr(cfg, f.name), f"{f.name}.").items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def finish(self, results: list[dict], failed: str | None, ok: bool, error: str | None = None) -> None:
        from mlflow.entities import Metric, RunTag

        tags = {**lineage.tags(self.root),  # after the run: the lock that reproduces it
                "encoderflow.stages_ran": ",".join(r["name"] for r in results if r["status"] == "ran"),
                "encoderflow.failed_stage": failed or ""}
        if error:
            from components.core.redact import redact

            tags[tracking.ERROR_TAG] = redact(error)[:500]
        metrics = []
        if ok:
            report = summary.read_report(Paths.at(self.root), "metrics") or {}
            now = int(time.time() * 1000)
            metrics = [Metric(k, v, now, 0) for k, v in sorted(summary.flatten(report).items())]
        for i in range(0, max(len(metrics), 1), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000],
                                  tags=[RunTag(k, v) for k, v in tags.items()] if i == 0 else [])
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


@flow(name="encoderflow", persist_result=False, log_prints=True)
def pipeline(root: str = ".", params: str = "params.yaml", overrides: list[str] | None = None,
             force: bool = False):
    """Run every stage in order (ingest -> validate -> tokenize -> ... -> register).

    force: run every stage even if DVC finds nothing changed (`dvc repro -f`)."""
    from prefect import get_run_logger
    from prefect.runtime import flow_run
    from prefect.states import Failed

    log = get_run_logger()
    root_p = Path(root).resolve()
    driver = "dvc" if stage_dvc.is_dvc_repo(root_p) else "in-process"
    try:  # scheduled runs lock here; under `encoderflow run` the lock is already ours
        with runlock.hold(root_p):
            try:  # may write --set values into params.yaml: under the lock
                cfg = resolve_params(root_p, params, list(overrides or ()), driver, log)
            except EncoderflowError as e:
                return Failed(message=f"params: {e}")
            env.configure(cfg.ingest.source)
            try:  # a dead tracking server: one line in seconds, before any stage or MLflow run
                tracking.check_server(cfg.project, root_p)
            except EncoderflowError as e:
                return Failed(message=str(e))
            return _run_stages(cfg, root_p, driver, str(flow_run.get_id() or ""), log, force)
    except runlock.AlreadyRunning as e:
        log.error("%s", e)
        return Failed(message=str(e))


def _run_stages(cfg, root_p: Path, driver: str, flow_run_id: str, log, force: bool = False):
    """The body of the flow, with the run lock held."""
    from prefect.states import Failed

    log.info("running %d stages (%s) in %s", len(stages.STAGES), driver, root_p)
    saved = {k: os.environ.get(k) for k in (tracking.PARENT_ENV, lineage.FLOW_RUN_ENV)}
    parent = ParentRun(cfg, root_p, flow_run_id)
    os.environ[tracking.PARENT_ENV] = parent.run_id
    os.environ[lineage.FLOW_RUN_ENV] = flow_run_id
    results: list[dict] = []
    failed = error = None
    completed = False
    try:
        for st in stages.STAGES:
            opts: dict = {"name": st.name, "task_run_name": st.name}
            if st.name == "ingest":
                opts.update(retries=cfg.ingest.retries,
                            retry_delay_seconds=_retry_delays(cfg.ingest.retries))
            try:
                results.append(run_stage.with_options(**opts)(st.name, str(root_p), driver, cfg, force))
            except stagerun.StageFailed as e:
                failed, error = e.name, e.detail
                log.error("%s", e)
                break
        completed = failed is None
    finally:
        try:
            parent.finish(results, failed, ok=completed, error=error)
            from prefect.artifacts import create_markdown_artifact

            create_markdown_artifact(
                key=ARTIFACT_KEY, description="encoderflow pipeline run summary",
                markdown=summary.render(results, list(stages.NAMES), Paths.at(root_p),
                                        failed=failed, error=error, flow_run_id=flow_run_id,
                                        mlflow_run_id=parent.run_id))
        finally:
            env.restore(saved)
    if failed:
        return Failed(message=f"stage {failed!r} failed: {error}")
    return {"stages": results, "flow_run_id": flow_run_id, "mlflow_run_id": parent.run_id,
            "driver": driver}


@dataclasses.dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str  # "" on success, else the Failed state's message
    flow_run_id: str
    result: dict | None


def run_local(root: str | Path = ".", params: str = "params.yaml",
              overrides: list[str] | tuple[str, ...] = (), force: bool = False) -> Outcome:
    """Run the flow once on Prefect's local ephemeral API (what `encoderflow run` does).

    Flow heartbeats are off: they let a server detect crashed runs, and
    nothing watches an ephemeral API (saves ~1 s joining the heartbeat thread).
    """
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
        temporary_settings,
    )

    # The ephemeral API migrates a fresh database on first use: 20 s (Prefect's
    # default) is not enough on a busy 2-core laptop.
    timeout = max(120, get_current_settings().server.ephemeral.startup_timeout_seconds)
    updates = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: timeout}
    try:
        with temporary_settings(updates=updates):
            state = pipeline(root=str(root), params=params, overrides=list(overrides) or None,
                             force=force, return_state=True)
    except RuntimeError as e:  # e.g. "Timed out while attempting to connect to ephemeral ..."
        raise EncoderflowError(f"prefect: {str(e).splitlines()[0]}") from e
    run_id = str(state.state_details.flow_run_id or "")
    if state.is_completed():
        return Outcome(True, "", run_id, state.result())
    return Outcome(False, state.message or state.name or "failed", run_id, None)


def where_to_look(outcome: Outcome, tracking_uri: str = "sqlite:///mlflow.db",
                  root: str | Path = ".") -> str:
    """The closing lines of `encoderflow run`: where each result is, how to open it."""
    parent = (outcome.result or {}).get("mlflow_run_id", "")
    # DVC does not track the Data Docs (components/stages/validate.py): a checkout whose
    # validate stage DVC skipped may have none yet.
    docs = "open reports/data_docs/index.html in a browser"
    if not (Path(root) / "reports" / "data_docs" / "index.html").is_file():
        docs = "reports/data_docs/index.html: not built here yet (`encoderflow stage validate`)"
    run = f"  (parent run 'pipeline' {parent})" if parent else ""
    mlflow_lines = ([f"  MLflow runs + models  {tracking_uri}{run}"] if tracking.is_server(tracking_uri) else
                    ["  MLflow runs + models  encoderflow ui  -> http://127.0.0.1:5000" + run,
                     f"                        or: mlflow ui --backend-store-uri {tracking_uri}"])
    lines = [
        "Where to look:",
        *mlflow_lines,
        f"  Data Docs             {docs}",
        "  Plots                 reports/plots/ (PNG + CSV); `dvc plots show` renders all curves",
        f"  Prefect flow run      {outcome.flow_run_id or '?'}: PREFECT_HOME=.prefect prefect server "
        "start, then",
        f"                        http://127.0.0.1:4200/runs/flow-run/{outcome.flow_run_id}"
        "  (`encoderflow schedule` serves the same UI)",
    ]
    return "\n".join(lines)
