"""The Prefect flow on a real tiny project: real DVC, real MLflow, real stages.

`flow_project.base` runs `encoderflow run` once (the CLI, Prefect's ephemeral
API); the other tests copy that project and run the flow again under
prefect_test_harness.
"""

from __future__ import annotations

import json
import shutil

import pytest

from components.core import lineage
from components.stages.table import NAMES

from builders import flow_project as fp

pytestmark = [pytest.mark.slow, fp.RUNS_THE_FLOW]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return fp.base(tmp_path_factory)


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def _mlflow_runs(root):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              order_by=["attributes.start_time ASC"])


def _artifact_markdown(flow_run_id: str) -> str:
    from prefect.artifacts import Artifact

    art = Artifact.get("encoderflow-run")
    assert art is not None and str(art.flow_run_id) == flow_run_id
    return art.data


def test_cli_run_ran_every_stage_in_order_with_nested_lineage_runs(base):
    root, out = base
    assert "Where to look:" in out.stdout and "reports/data_docs/index.html" in out.stdout
    assert fp.dvc_status(root) == ""  # `dvc repro` would be a no-op
    assert list(fp.lock(root)["stages"]) == list(NAMES)

    runs = _mlflow_runs(root)
    parents = [r for r in runs if r.info.run_name == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert [r.info.run_name for r in children] == list(NAMES)  # in start order

    tags = parent.data.tags
    sha = fp.sh(root, "git", "rev-parse", "HEAD").stdout.strip()
    prepared = next(o for o in fp.lock(root)["stages"]["ingest"]["outs"] if o["path"] == "data/prepared")
    assert tags["encoderflow.git_sha"] == sha and tags["encoderflow.git_dirty"] == "false"
    assert tags["encoderflow.data_md5"] == prepared["md5"]  # our hash == DVC's hash
    assert tags["encoderflow.dvc_lock_md5"] == lineage.lock_md5(root)
    flow_run_id = tags["encoderflow.flow_run_id"]
    assert flow_run_id and flow_run_id in out.stdout
    for child in children:
        assert child.data.tags["encoderflow.flow_run_id"] == flow_run_id
        assert child.data.tags["encoderflow.git_sha"] == sha
        assert child.data.tags["encoderflow.data_md5"] == prepared["md5"]


def test_new_incoming_file_reruns_ingest_then_nothing_new_skips_all(base, harness, tmp_path):
    from flows.pipeline import run_local

    root = fp.clone(base[0], tmp_path / "p")
    # 20 rows already present: a new input file, the same prepared data.
    src = root / "data" / "incoming" / "part-000.csv"
    lines = src.read_text(encoding="utf-8").splitlines()
    (src.parent / "part-001.csv").write_text("\n".join(lines[:21]) + "\n", encoding="utf-8")
    assert "data/incoming" in fp.dvc_status(root)

    outcome = run_local(root)
    assert outcome.ok, outcome.message
    status = {s["name"]: s["status"] for s in outcome.result["stages"]}
    assert status == {**dict.fromkeys(NAMES, "skipped"), "ingest": "ran"}
    report = json.loads((root / "reports" / "ingest.json").read_text())
    assert "data/incoming/part-001.csv" in report["inputs"] and report["duplicates_dropped"] >= 20
    assert fp.dvc_status(root) == ""

    before = (root / "dvc.lock").read_bytes()
    again = run_local(root)  # nothing new: every stage skipped, in table order
    assert again.ok, again.message
    assert [(s["name"], s["status"]) for s in again.result["stages"]] == [(n, "skipped") for n in NAMES]
    assert again.result["driver"] == "dvc" and (root / "dvc.lock").read_bytes() == before
    md = _artifact_markdown(again.flow_run_id)
    assert "Status: **completed**" in md and "| register | skipped |" in md
    assert "## Metrics vs baselines" in md and "| accuracy |" in md


def test_force_reruns_every_stage_and_retrains_to_the_same_metrics(base, harness, tmp_path):
    from flows.pipeline import run_local

    root = fp.clone(base[0], tmp_path / "p")
    before = {n: (root / "reports" / n).read_bytes() for n in ("metrics.json", "pretrain.json")}
    outcome = run_local(root, force=True)  # what `encoderflow run --force` calls
    assert outcome.ok, outcome.message
    assert [(s["name"], s["status"]) for s in outcome.result["stages"]] == [(n, "ran") for n in NAMES]
    old, new = (json.loads(b) for b in (before["pretrain.json"], (root / "reports" / "pretrain.json").read_bytes()))
    assert new["mlflow_run_id"] != old["mlflow_run_id"] and new["tokens_per_s"] is not None  # trained
    assert (root / "reports" / "metrics.json").read_bytes() == before["metrics.json"]
    assert fp.dvc_status(root) == ""


def test_failed_stage_is_named_and_stops_the_run(base, harness, tmp_path):
    from flows.pipeline import run_local

    root = fp.clone(base[0], tmp_path / "p")
    fp.skew_file(root)
    outcome = run_local(root)
    assert not outcome.ok
    assert outcome.message.startswith("stage 'validate' failed: ")
    assert "\n" not in outcome.message and "critical" in outcome.message
    # ingest ran on the new data and kept its output; nothing after validate ran
    assert "part-skew.csv" in (root / "reports" / "ingest.json").read_text()
    assert (root / "models" / "finetuned").is_dir()
    lock, before = fp.lock(root)["stages"], fp.lock(base[0])["stages"]
    assert lock["ingest"] != before["ingest"] and lock["tokenize"] == before["tokenize"]
    md = _artifact_markdown(outcome.flow_run_id)
    assert "**failed** at stage `validate`" in md and "| tokenize | not run |" in md
    assert "## Validation" in md and "## Metrics" not in md  # no stale reports
    pipeline_run = [r for r in _mlflow_runs(root) if r.info.run_name == "pipeline"][-1]
    assert pipeline_run.info.status == "FAILED"
    assert pipeline_run.data.tags["encoderflow.failed_stage"] == "validate"


def test_bad_set_override_fails_before_any_stage_and_keeps_params_yaml(harness, tmp_path):
    from flows.pipeline import run_local

    root = fp.make(tmp_path / "p", n=8)
    text = (root / "params.yaml").read_text()
    bad = run_local(root, overrides=["register.min_gain=-1"])
    assert not bad.ok and bad.message.startswith("params: ") and "register.min_gain" in bad.message
    assert (root / "params.yaml").read_text() == text
    assert not (root / "dvc.lock").exists()


def test_without_dvc_stages_run_in_process(harness, tmp_path):
    from flows.pipeline import run_local

    root = fp.make(tmp_path / "p", n=96, dvc=False)
    shutil.rmtree(root / ".git")
    fp.skew_file(root)
    outcome = run_local(root)
    assert outcome.message.startswith("stage 'validate' failed: ")
    assert (root / "data" / "prepared" / "train.parquet").is_file()  # ingest ran in-process
    assert not (root / "dvc.lock").exists() and not (root / "data" / "tokenized").exists()


def test_params_rules_of_dvc_driven_runs(tmp_path, caplog):
    import logging

    from components.core.errors import ConfigError
    from flows.pipeline import resolve_params

    root = fp.make(tmp_path / "p", n=8, overrides={"ingest": {"source": "file:raw.csv"}})
    shutil.copyfile(root / "params.yaml", root / "other.yaml")
    log = logging.getLogger("test-flow")
    with pytest.raises(ConfigError, match="DVC-driven runs read params.yaml"):
        resolve_params(root, "other.yaml", [], "dvc", log)
    assert resolve_params(root, "other.yaml", [], "in-process", log).ingest.source == "file:raw.csv"
    with caplog.at_level(logging.WARNING, logger="test-flow"):
        resolve_params(root, "params.yaml", [], "dvc", log)
    assert "outside data/incoming" in caplog.text  # DVC would not see new files there


def test_ingest_is_retried(harness, tmp_path):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.pipeline import run_local

    root = fp.make(tmp_path / "p", n=8,
                   overrides={"ingest": {"retries": 1, "source": "file:data/incoming/none-*.csv"}})
    outcome = run_local(root)
    assert outcome.message.startswith("stage 'ingest' failed: ") and "none-*.csv" in outcome.message
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[UUID(outcome.flow_run_id)])))
    assert [(r.name, r.run_count) for r in runs] == [("ingest", 2)]  # 1 try + 1 retry


def test_where_to_look_says_when_the_data_docs_are_not_built(tmp_path):
    """DVC does not track the Data Docs: a checkout whose validate DVC skipped has none."""
    from flows.pipeline import Outcome, where_to_look

    outcome = Outcome(True, "", "f1", {"mlflow_run_id": "r1"})
    assert "reports/data_docs/index.html: not built here yet (`encoderflow stage validate`)" in \
        where_to_look(outcome, root=tmp_path)
    (tmp_path / "reports" / "data_docs").mkdir(parents=True)
    (tmp_path / "reports" / "data_docs" / "index.html").write_text("<html></html>")
    assert "open reports/data_docs/index.html in a browser" in where_to_look(outcome, root=tmp_path)
