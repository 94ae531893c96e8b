"""ingest.task (issue #15): multi_label through every stage, single_label with 3 classes.

Unit tests: threshold tuning, the multi_label metrics and the F1 bootstrap, the config
checks, multi_label ingest (JSONL lists, delimited strings, rows with no labels) and its
GX checks. The tiny real pipelines from ingest to register, the registered multi_label
pyfunc behind `mlflow models serve` and `encoderflow predict` on it are
tests/integration/test_task_pipelines.py. The bad-input rows live in
tests/integration/test_failure_modes.py (20-22).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.core.config import load_params, parse_params
from components.core.errors import ConfigError, DataError
from components.core.paths import Paths
from components.evaluation.multilabel import macro_f1, micro_f1, multilabel_metrics, row_counts
from components.model.thresholds import THRESHOLD_GRID, tune_thresholds

# --- threshold tuning ----------------------------------------------------------------------------


def test_tune_thresholds_maximizes_each_labels_f1_on_its_own():
    # label 0: positives score 0.3 and 0.35, negatives 0.1 and 0.2 -> any threshold in
    # (0.2, 0.3] gets F1 1; label 1: positives 0.9, negatives 0.6 -> (0.6, 0.9]; ties -> nearest 0.5
    probs = np.array([[0.3, 0.9], [0.35, 0.6], [0.1, 0.9], [0.2, 0.6]])
    target = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    thresholds, f1 = tune_thresholds(probs, target)
    assert thresholds == [0.3, 0.65] and f1 == [1.0, 1.0]
    for c, t in enumerate(thresholds):  # really the best of the grid
        best = max(2 * ((probs[:, c] >= g) & (target[:, c] == 1)).sum()
                   / max(1, (probs[:, c] >= g).sum() + target[:, c].sum()) for g in THRESHOLD_GRID)
        assert f1[c] == pytest.approx(best)


def test_tune_thresholds_keeps_half_without_positives_or_rows():
    probs = np.array([[0.9, 0.2], [0.8, 0.7]])
    assert tune_thresholds(probs, np.array([[1, 0], [1, 0]]))[0][1] == 0.5  # label 1: no positive in val
    assert tune_thresholds(np.zeros((0, 3)), np.zeros((0, 3))) == ([0.5] * 3, [0.0] * 3)


def test_tune_thresholds_ties_go_to_the_threshold_nearest_half():
    # every threshold in (0.2, 0.8] separates the classes: 0.5 itself wins the tie
    assert tune_thresholds(np.array([[0.8], [0.2]]), np.array([[1], [0]]))[0] == [0.5]


# --- metrics ------------------------------------------------------------------------------------------


def test_f1_from_row_counts_matches_torchmetrics():
    import torch
    import torchmetrics.functional.classification as tmf

    rng = np.random.default_rng(0)
    pred, target = rng.integers(0, 2, (50, 4)), rng.integers(0, 2, (50, 4))
    target[:, 3] = 0  # a label absent from the split: F1 0, averaged in like torchmetrics does
    sums = row_counts(pred, target).sum(axis=0)
    p, y = torch.tensor(pred), torch.tensor(target)
    assert macro_f1(sums) == pytest.approx(tmf.multilabel_f1_score(p, y, num_labels=4, average="macro").item())
    assert micro_f1(sums) == pytest.approx(tmf.multilabel_f1_score(p, y, num_labels=4, average="micro").item())


def test_multilabel_metrics_keys_and_thresholds():
    probs = np.array([[0.9, 0.4], [0.2, 0.7], [0.6, 0.1]])
    target = np.array([[1, 1], [0, 1], [1, 0]])
    m = multilabel_metrics(probs, target, ["a", "b"], [0.5, 0.3], bootstrap_samples=20)
    assert m["subset_accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["micro_f1"] == 1.0
    assert {"precision.a", "recall.b", "f1.b", "hamming_loss", "macro_f1_ci_low", "roc_auc"} <= set(m)
    assert multilabel_metrics(probs, target, ["a", "b"], [0.5, 0.5], bootstrap_samples=20)["subset_accuracy"] < 1


def test_gate_paired_bootstrap_of_macro_f1():
    from components.evaluation.gate import decide, paired_bootstrap_stat

    rng = np.random.default_rng(1)
    target = rng.integers(0, 2, (200, 3))
    good = row_counts(target, target)
    bad = row_counts(rng.integers(0, 2, (200, 3)), target)
    assert paired_bootstrap_stat(good, good, "macro_f1", 200, seed=0) == (0.0, 0.0, 0.0)
    d = decide(good, bad, champion_version="1", min_gain=0.01, floor_accuracy=0.0, floors={"tfidf_lr": 0.9},
               samples=200, seed=0, metric="macro_f1")
    assert d.alias == "champion" and d.metric == "macro_f1" and d.accuracy == 1.0
    assert d.gain == pytest.approx(1.0 - macro_f1(bad.sum(axis=0))) and d.ci_low > 0
    d = decide(bad, good, champion_version="1", min_gain=0.0, floor_accuracy=0.0, floors={},
               samples=200, seed=0, metric="macro_f1")
    assert d.alias == "challenger" and d.gain < 0


# --- config -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, message", [
    ({"ingest": {"task": "triplet"}}, "ingest.task: expected one of 'single_label', 'multi_label', 'pair', got 'triplet'"),
    ({"ingest": {"task": "pair"}, "register": {"metric": "micro_f1"}},
     "register.metric: expected one of accuracy, macro_f1 for ingest.task pair"),
    ({"ingest": {"task": "pair"}, "teacher": {"enabled": False},
      "finetune": {"augment_copies": 1, "distill": {"enabled": False}}},
     "finetune.augment_copies: expected 0 while ingest.task is pair"),
    ({"ingest": {"task": "multi_label"}, "register": {"metric": "accuracy"}},
     "register.metric: expected one of macro_f1, micro_f1, subset_accuracy for ingest.task multi_label"),
    ({"register": {"metric": "f1"}}, "register.metric: expected one of accuracy, macro_f1 for ingest.task"),
    ({"ingest": {"label_delimiter": "|"}}, "ingest.label_delimiter: expected \"\" unless ingest.task is multi_label"),
    ({"ingest": {"task": "multi_label", "labels": ["a"]}}, "ingest.labels: expected at least 2 names for multi_label"),
])
def test_task_config_errors(raw, message):
    with pytest.raises(ConfigError, match="^params.yaml: " + message.replace("(", r"\(").replace(")", r"\)")
                       .replace("|", r"\|")):
        parse_params(raw)


def test_gate_metric_defaults_to_the_tasks_primary_metric():
    assert parse_params({}).gate_metric == "accuracy"
    assert parse_params({"ingest": {"task": "multi_label"}}).gate_metric == "macro_f1"
    assert parse_params({"ingest": {"task": "multi_label"}, "register": {"metric": "micro_f1"}}).gate_metric == "micro_f1"


def test_shipped_params_default_to_single_label():
    cfg = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    assert (cfg.ingest.task, cfg.ingest.label_delimiter, cfg.register.metric) == ("single_label", "", "")


# --- multi_label ingest + validate ----------------------------------------------------------------


def _ingest(root: Path, files: dict, **ingest):
    from components.stages.ingest import ingest as run_ingest

    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    cfg = parse_params({"ingest": {"task": "multi_label", "val_fraction": 0.0, "test_fraction": 0.0,
                                   "max_duplicate_fraction": 1.0, **ingest}})
    return run_ingest(cfg.ingest, Paths.at(root)), cfg


def test_multi_label_ingest_jsonl_lists_csv_delimited_and_empty_sets(project):
    import pandas as pd

    rows = [{"text": "one", "label": ["b", "a"]}, {"text": "two", "label": []}, {"text": "three", "label": ["c"]},
            {"text": "four"}, {"text": "five", "label": ["a", "a"]}]
    _ingest(project, {"a.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n",
                      "b.csv": "text,label\nsix,c| a\nseven,[]\neight,\n"},
            source="file:*.[jc]s*", label_delimiter="|")
    assert json.loads((project / "data/prepared/labels.json").read_text()) == {"labels": ["a", "b", "c"],
                                                                              "task": "multi_label"}
    train = pd.read_parquet(project / "data/prepared/train.parquet").set_index("text")
    assert {t: list(v) for t, v in train["label_name"].items()} == {
        "one": ["a", "b"], "two": [], "three": ["c"], "five": ["a"], "six": ["a", "c"], "seven": []}
    assert list(train.loc["one", "label"]) == [0, 1]
    report = json.loads((project / "reports/ingest.json").read_text())
    assert report["no_label_rows"]["train"] == 2 and report["splits"]["unlabeled"] == 2  # four, eight
    assert report["label_counts"]["train"] == {"a": 3, "b": 1, "c": 2}


def test_multi_label_ingest_checks_ingest_labels(project):
    with pytest.raises(DataError, match=r"a.jsonl: line 2: label 'z' is not in ingest.labels \(a, b\)"):
        _ingest(project, {"a.jsonl": '{"text": "x", "label": ["a"]}\n{"text": "y", "label": ["b", "z"]}\n'},
                source="file:a.jsonl", labels=["a", "b"])
    assert not (project / "data").exists()


def test_multi_label_validate_checks_min_count_and_cardinality(project):
    from components.stages import validate

    lines = [json.dumps({"text": f"text {i}", "label": ["a"] if i % 3 else ["a", "b"]}) for i in range(30)]
    lines += [json.dumps({"text": f"none {i}", "label": []}) for i in range(5)]
    _, cfg = _ingest(project, {"a.jsonl": "\n".join(lines) + "\n"}, source="file:a.jsonl")
    paths = Paths.at(project)
    assert validate.check(cfg, paths)["critical_failures"] == 0
    report = json.loads((project / "reports/validation.json").read_text())
    card = next(r for r in report["expectations"] if r["check"] == "label_cardinality" and r["split"] == "train")
    assert card["details"]["no_label_rows"] == 5 and card["details"]["labels_per_row_max"] == 2

    strict = parse_params({"ingest": {"task": "multi_label"},
                           "validate": {"min_label_count": 11, "max_no_label_fraction": 0.1}})
    with pytest.raises(DataError) as e:
        validate.check(strict, paths)
    assert "train: 1 label(s) on fewer than 11 train rows (validate.min_label_count): b (10)" in str(e.value)
    assert "train: 5 rows = 14.29% have no label (allowed: 10.00%)" in str(e.value)


# --- tiny pipelines ---------------------------------------------------------------------------------
