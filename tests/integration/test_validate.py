"""validate stage: real GX checkpoint on tiny prepared splits written here.

A clean dataset passes; each planted defect is caught by the expectation
meant for it, with the expected unexpected_count, and the reports are written
even when the stage fails.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import socket

import pandas as pd
import pytest

from components.core.config import Params, ValidateConfig
from components.core.errors import DataError
from components.core.paths import Paths
from components.stages import validate

LABELS = ["negative", "positive"]


def _rows(start: int, n: int, labelled: bool = True) -> pd.DataFrame:
    texts = [f"review number {start + i} says the film was {'good' if i % 2 else 'bad'}"
             for i in range(n)]
    df = pd.DataFrame({"id": [hashlib.sha1(t.encode()).hexdigest() for t in texts], "text": texts})
    if labelled:
        df["label"] = pd.Series([i % 2 for i in range(n)], dtype="int64")
        df["label_name"] = [LABELS[i % 2] for i in range(n)]
    return df


def clean_splits() -> dict[str, pd.DataFrame]:
    """train 20 rows (10/10), val 4, test 4, unlabeled 6; no text shared."""
    return {"train": _rows(0, 20), "val": _rows(100, 4), "test": _rows(200, 4),
            "unlabeled": _rows(300, 6, labelled=False)}


def write(root, splits, labels=LABELS) -> Paths:
    paths = Paths.at(root)
    paths.prepared.mkdir(parents=True, exist_ok=True)
    for name, df in splits.items():
        df.to_parquet(paths.split(name), index=False)
    paths.labels.write_text(json.dumps({"labels": labels}))
    return paths


def run(paths, **validate_params):
    cfg = dataclasses.replace(Params(), validate=ValidateConfig(**validate_params))
    return validate.check(cfg, paths)  # run() minus MLflow


def report(paths) -> dict:
    return json.loads(paths.report("validation").read_text())


def row(rep: dict, split: str, check: str) -> dict:
    (found,) = [r for r in rep["expectations"] if r["split"] == split and r["check"] == check]
    return found


def failing(paths, **validate_params) -> tuple[str, dict]:
    """Run expecting a critical failure; return (error message, report)."""
    with pytest.raises(DataError) as err:
        run(paths, **validate_params)
    assert (paths.data_docs / "index.html").is_file()  # reports written despite the failure
    rep = report(paths)
    assert rep["success"] is False
    return str(err.value), rep


def failed_checks(rep: dict) -> set[tuple[str, str]]:
    return {(r["split"], r["check"]) for r in rep["expectations"] if not r["success"]}


def test_clean_dataset_passes_and_writes_reports(project, monkeypatch):
    def no_network(self, address):  # GX must not phone home (analytics, version check)
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access to {address}")
        return real_connect(self, address)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", no_network)
    paths = write(project, clean_splits())
    summary = run(paths)
    rep = report(paths)
    assert summary["critical_failures"] == 0 and summary["warnings"] == 0
    assert rep["success"] is True and rep["rows"] == {"train": 20, "val": 4, "test": 4, "unlabeled": 6}
    assert all(r["success"] for r in rep["expectations"])
    assert {r["split"] for r in rep["expectations"]} == {"train", "val", "test", "unlabeled"}
    assert row(rep, "train", "class_balance")["observed_value"] == 0.5
    assert (paths.data_docs / "index.html").is_file()
    assert list(paths.data_docs.glob("validations/train/**/*.html"))
    assert sorted(p.name for p in paths.reports.iterdir()) == ["data_docs", "validation.json"]


def test_null_and_empty_text(project):
    splits = clean_splits()
    splits["train"].loc[3, "text"] = None
    splits["val"].loc[0, "text"] = ""
    splits["val"].loc[1, "text"] = "   "
    msg, rep = failing(write(project, splits))
    assert row(rep, "train", "text_not_null")["unexpected_count"] == 1
    assert row(rep, "val", "text_not_empty")["unexpected_count"] == 2
    assert "validate: train: 1 texts are null" in msg
    assert "validate: val: 2 texts are empty or whitespace only" in msg


def test_label_outside_label_set(project):
    splits = clean_splits()
    splits["test"].loc[2, "label"] = 7
    splits["val"].loc[[0, 3], "label_name"] = "neutral"
    msg, rep = failing(write(project, splits))
    assert row(rep, "test", "label_in_set")["unexpected_count"] == 1
    assert row(rep, "val", "label_name_in_set")["unexpected_count"] == 2
    assert failed_checks(rep) == {("test", "label_in_set"), ("val", "label_name_in_set")}
    assert "test: 1 labels are not ids of labels.json (0..1)" in msg


def test_label_missing_from_train(project):
    msg, rep = failing(write(project, clean_splits(), labels=LABELS + ["neutral"]))
    found = row(rep, "train", "labels_in_train")
    assert found["unexpected_count"] == 1 and found["missing"] == [2]
    assert failed_checks(rep) == {("train", "labels_in_train")}
    assert "never appear in train: neutral" in msg


def test_too_long_text_is_critical_beyond_the_allowed_share(project):
    splits = clean_splits()
    splits["train"].loc[5, "text"] = "x" * 6000  # 1 of 20 rows = 5% > 1% allowed
    msg, rep = failing(write(project, splits))
    assert row(rep, "train", "text_length_share")["unexpected_count"] == 1
    assert row(rep, "train", "text_length")["severity"] == "warning"
    assert "outside [1, 5000] characters (allowed: 1.00%)" in msg


def test_length_outliers_within_the_allowed_share_only_warn(project, caplog):
    splits = clean_splits()
    splits["train"].loc[5, "text"] = "x" * 6000  # 5% <= 10% allowed below
    paths = write(project, splits)
    with caplog.at_level(logging.WARNING, logger="components.stages.validate"):
        summary = run(paths, max_length_outlier_fraction=0.1)
    rep = report(paths)
    assert summary["warnings"] == 1 and rep["success"] is True
    assert failed_checks(rep) == {("train", "text_length")}
    assert "1 texts (5.00%) have a length outside [1, 5000]" in caplog.text


def test_duplicate_text_within_a_split(project):
    splits = clean_splits()
    splits["val"] = pd.concat([splits["val"], splits["val"].iloc[[1]]], ignore_index=True)
    msg, rep = failing(write(project, splits))
    assert row(rep, "val", "text_unique")["unexpected_count"] == 2  # both copies count
    assert row(rep, "val", "id_unique")["severity"] == "warning"
    assert "val: 2 rows have a text that occurs more than once" in msg


def test_leakage_between_train_and_test(project):
    splits = clean_splits()
    splits["test"] = pd.concat([splits["test"], splits["train"].iloc[:3]], ignore_index=True)
    msg, rep = failing(write(project, splits))
    leak = row(rep, "test", "no_leak_train")
    assert leak["unexpected_count"] == 3 and leak["name"] == "expect_column_values_to_not_be_in_set"
    assert failed_checks(rep) == {("test", "no_leak_train")}
    assert msg.splitlines()[1] == "validate: 3 texts appear in both train and test"
    assert msg.startswith("validate: 1 critical check failed, first: ")
    assert "(see reports/validation.json" in msg.splitlines()[0]


def test_test_text_in_unlabeled_and_an_empty_val_split_are_warnings(project):
    splits = clean_splits()
    splits["unlabeled"] = pd.concat([splits["unlabeled"], splits["test"].iloc[:2, :2]], ignore_index=True)
    splits["val"] = splits["val"].iloc[:0]  # ingest.val_fraction > 0, so a warning
    paths = write(project, splits)
    assert run(paths)["warnings"] == 2
    rep = report(paths)
    assert failed_checks(rep) == {("test", "no_leak_unlabeled"), ("val", "rows")}
    assert row(rep, "test", "no_leak_unlabeled")["unexpected_count"] == 2
    assert rep["messages"]["warning"] == ["val: the split has no rows",
                                          "2 texts appear in both unlabeled and test"]


def test_class_imbalance(project):
    splits = clean_splits()
    splits["train"]["label"] = pd.Series([0] + [1] * 19, dtype="int64")
    splits["train"]["label_name"] = [LABELS[x] for x in splits["train"]["label"]]
    msg, rep = failing(write(project, splits))
    balance = row(rep, "train", "class_balance")
    assert balance["observed_value"] == pytest.approx(0.95) and balance["unexpected_count"] == 19
    assert failed_checks(rep) == {("train", "class_balance")}
    assert "majority class has 19 rows = 95.00% of train (allowed: 90.00%)" in msg


def test_replacement_characters(project):
    splits = clean_splits()
    splits["train"].loc[4, "text"] = "caf\ufffd \ufffd\ufffd review\x07"  # 4 bad characters
    msg, rep = failing(write(project, splits))
    assert row(rep, "train", "bad_char_share")["unexpected_count"] == 4
    assert row(rep, "train", "bad_char_rows")["unexpected_count"] == 1
    assert failed_checks(rep) == {("train", "bad_char_share"), ("train", "bad_char_rows")}
    assert "of characters are control or U+FFFD (4 characters" in msg


def test_missing_column_and_missing_file(project):
    splits = clean_splits()
    splits["val"] = splits["val"].drop(columns=["label_name"])
    msg, rep = failing(write(project, splits))
    assert failed_checks(rep) == {("val", "column_label_name")}
    assert "val: column 'label_name' is missing (columns: id, text, label)" in msg
    Paths.at(project).split("test").unlink()
    with pytest.raises(DataError, match=r"data/prepared/test.parquet: not found"):
        run(Paths.at(project))


def test_cli_prints_one_line_per_failure_and_logs_to_mlflow(project, cli):
    import mlflow

    splits = clean_splits()
    splits["val"] = pd.concat([splits["val"], splits["train"].iloc[2:4]], ignore_index=True)
    splits["train"].loc[0, "text"] = None
    write(project, splits)
    (project / "params.yaml").write_text("validate:\n  max_text_chars: 5000\n")
    code, out = cli("stage", "validate")
    assert code == 1
    assert "error: validate: 2 critical checks failed" in out
    assert "validate: 2 texts appear in both train and val" in out
    assert "validate: train: 1 texts are null" in out
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    (mlrun,) = mlflow.search_runs(experiment_names=["encoderflow"], output_format="list")
    assert mlrun.info.run_name == "validate" and mlrun.info.status == "FAILED"
    assert mlrun.data.metrics["critical_failures"] == 2 and mlrun.data.metrics["rows.val"] == 6
    assert mlrun.data.tags["validation.success"] == "false"
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(mlrun.info.run_id)] == ["validation.json"]


def test_small_helpers():
    from components.data.leakage import overlap
    from components.data.validation_report import kwargs_summary

    assert overlap(["a", None, "b"], ["b", "c", None]) == ["b"]
    assert kwargs_summary({"value_set": list(range(9)), "column": "t", "batch_id": "x"}) == {
        "column": "t", "value_set": "[9 values]"}


def _tracked_files(root, paths: list[str]) -> dict[str, bytes]:
    """{relative path: bytes} of every file under the given project paths."""
    out = {}
    for rel in paths:
        top = root / rel
        for p in sorted([top] if top.is_file() else top.rglob("*")):
            if p.is_file():
                out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


@pytest.mark.slow
def test_rerun_by_hand_leaves_every_tracked_output_byte_identical(tmp_path):
    """What a new user tries: `dvc repro validate`, then `encoderflow stage validate` by hand
    on the same data. Every output DVC tracks for the stage (its outs, metrics and plots in
    the stage table) comes out byte-identical, so `dvc status` stays clean."""
    from builders import flow_project as fp

    from components.stages.table import get

    root = fp.make(tmp_path / "p", n=96)
    fp.sh(root, "dvc", "repro", "validate")
    stage = get("validate")
    tracked = [*stage.outs, *stage.metrics, *stage.plots]
    before = _tracked_files(root, tracked)
    assert "reports/validation.json" in before
    stamps = {p: (root / p).stat().st_mtime_ns for p in ("reports/validation.json",
                                                          "reports/data_docs/index.html")}

    out = fp.encoderflow(root, "stage", "validate")

    assert out.returncode == 0, out.stdout + out.stderr
    assert all((root / p).stat().st_mtime_ns != t for p, t in stamps.items())  # really rewritten
    assert _tracked_files(root, tracked) == before
    status = fp.sh(root, "dvc", "status", "validate").stdout
    assert "up to date" in status, status
