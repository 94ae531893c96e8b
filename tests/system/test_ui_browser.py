"""`encoderflow ui` in a real browser (Playwright + Debian's chromium, headless, loopback only).

After a tiny pipeline run and two registrations, the MLflow UI must show the
registered model with its aliases and lineage tags, the evaluate run with its
metrics and confusion-matrix image; moving `@challenger` in the UI's alias
editor must reach the registry and be recorded by `encoderflow models
--history` as a "ui/external" change. Screenshots go to reports/ui/ of the test
project (and to $ENCODERFLOW_UI_SHOTS when set).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from components.core import lineage
from components.core.config import load_params
from components.core.paths import Paths
from components.registry import client as registry

from builders import tiny_pipeline
from builders.serving import free_port, wait_ready

pytestmark = pytest.mark.slow
# Debian's chromium; `make test` installs it with apt-get when it can. The env var
# exists to point the test elsewhere (e.g. at a missing path, to see the skip).
CHROMIUM = os.environ.get("ENCODERFLOW_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
NAME = "encoderflow"


@pytest.fixture
def ui(tmp_path_factory, tmp_path, monkeypatch):
    """(project root, base URL) with `encoderflow ui` running on a free loopback port."""
    pytest.importorskip("playwright", reason="BROWSER TEST SKIPPED: the Python package playwright is "
                        "missing (it is in the dev extra: run `make setup`)")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"BROWSER TEST SKIPPED: {CHROMIUM} is missing. `make test` installs Debian's "
                    "chromium with apt-get only when run as root or with passwordless sudo; install "
                    "it yourself with `sudo apt-get install chromium` (Playwright's own browser "
                    "download is not used)")
    from components.stages import register

    root = tiny_pipeline.clone(tiny_pipeline.cached_build(tmp_path_factory), tmp_path / "proj", with_store=True)
    monkeypatch.chdir(root)
    cfg = load_params(root / "params.yaml")
    register.run(cfg, Paths.at(root))  # v1: @champion
    register.run(cfg, Paths.at(root))  # v2: the same model again -> @challenger
    port = free_port()
    log = tmp_path / "ui.log"
    exe = Path(sys.executable).parent / "encoderflow"
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(exe), "ui", "--port", str(port)], cwd=root, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(port, proc, log, 120, "/health")
        assert log.read_text().splitlines()[0] == f"MLflow UI: {base}  (models: {base}/#/models)"
        yield root, base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI and the mlflow server it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_ui_shows_models_lineage_runs_and_edits_aliases(ui, cli):
    from mlflow import MlflowClient
    from playwright.sync_api import expect, sync_playwright

    root, base = ui
    shots = root / "reports" / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    client = registry.connect(load_params(root / "params.yaml").project, root)
    evaluate = client.search_runs([client.get_experiment_by_name("encoderflow").experiment_id],
                                  "tags.`encoderflow.stage` = 'evaluate'")[0]
    data_md5 = lineage.dir_md5(root / "data" / "prepared")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)

        page.goto(f"{base}/#/models/{NAME}")
        expect(page.get_by_text("Version 1", exact=True)).to_be_visible()
        expect(page.get_by_text("Version 2", exact=True)).to_be_visible()
        close = page.get_by_role("button", name="Close")  # the MLflow Assistant side panel
        if close.count():
            close.first.click()
        body = page.inner_text("body")
        assert "champion" in body and "challenger" in body and "encoderflow.git_sha" in body
        page.screenshot(path=str(shots / "1_registered_model.png"), full_page=True)

        page.goto(f"{base}/#/models/{NAME}/versions/1")
        expect(page.get_by_role("heading", name="Version 1")).to_be_visible()
        expect(page.get_by_text(data_md5).first).to_be_visible()  # lineage tag value
        body = page.inner_text("body")
        for key in ("encoderflow.finetune_run_id", "encoderflow.evaluate_run_id", "encoderflow.tokenizer_md5",
                    "encoderflow.git_sha", "encoderflow.dvc_lock_md5", "encoderflow.flow_run_id"):
            assert key in body, key
        assert "champion" in body and "baseline: tfidf_lr" in body  # alias + metrics table
        page.screenshot(path=str(shots / "2_version_lineage.png"), full_page=True)

        run_url = f"{base}/#/experiments/{evaluate.info.experiment_id}/runs/{evaluate.info.run_id}"
        page.goto(run_url)
        expect(page.get_by_text("model.accuracy", exact=True)).to_be_visible()
        assert "baseline.tfidf_lr.accuracy" in page.inner_text("body")
        page.screenshot(path=str(shots / "3_evaluate_run_metrics.png"))
        page.goto(run_url + "/artifacts/plots/confusion_matrix.png")
        image = page.locator("img[src^='blob:']").first
        expect(image).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=image.element_handle())
        page.screenshot(path=str(shots / "4_confusion_matrix.png"))

        # move @challenger to version 1 through the UI's alias editor
        page.goto(f"{base}/#/models/{NAME}/versions/1")
        page.get_by_title("Edit aliases").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("combobox").fill("challenger")
        dialog.get_by_role("combobox").press("Enter")
        page.screenshot(path=str(shots / "5_alias_editor.png"))
        dialog.get_by_role("button", name="Save aliases").click()
        expect(dialog).to_be_hidden()
        page.reload()
        expect(page.get_by_role("heading", name="Version 1")).to_be_visible()
        expect(page.get_by_text("challenger").first).to_be_visible()
        page.screenshot(path=str(shots / "6_version_after_alias_edit.png"))
        browser.close()

    aliases = registry.aliases(MlflowClient(client._registry_uri).get_registered_model(NAME))
    assert aliases == {"champion": "1", "challenger": "1"}
    code, output = cli("models", "--history")
    assert code == 0 and "ui/external" in output
    last = registry.history(client.get_registered_model(NAME))[-1]
    assert last["by"] == "ui/external" and last["changes"] == {"challenger": ["2", "1"]}

    if os.environ.get("ENCODERFLOW_UI_SHOTS"):
        out = Path(os.environ["ENCODERFLOW_UI_SHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copyfile(png, out / png.name)
    assert len(list(shots.glob("*.png"))) == 6
