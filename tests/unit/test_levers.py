"""benchmarks/levers.py: the lever syntax and the table docs/results.md renders from its --json file."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from benchmarks import levers
from components.core.config import Params

ROOT = Path(__file__).resolve().parents[2]



def test_a_lever_is_a_name_and_its_overrides():
    assert levers.parse_lever(" 8 epochs = finetune.static.max_epochs=8 ,finetune.static.lr=0.001") == \
        ("8 epochs", ["finetune.static.max_epochs=8", "finetune.static.lr=0.001"])


@pytest.mark.parametrize("text", ["bad", "=finetune.max_epochs=2", "name=", "name=finetune.max_epochs"])
def test_a_malformed_lever_is_one_error_line(text):
    with pytest.raises(SystemExit, match="expected NAME=KEY=VALUE"):
        levers.parse_lever(text)


def test_the_table_compares_each_lever_with_the_anchor_and_keeps_a_failed_one(tmp_path):
    row = {"accuracy_ci": [0.7, 0.8], "macro_f1": 0.7, "epochs": 4, "train_s": 12.34}
    rows = [{"lever": levers.ANCHOR, "set": [], "accuracy": 0.75, "val_accuracy": 0.76, **row},
            {"lever": "more", "set": ["finetune.static.max_epochs=8"], "accuracy": 0.7625, "val_accuracy": 0.77,
             **row},
            {"lever": "bad", "set": ["finetune.static.max_epochs=0"], "error": "expected an integer >= 1"}]
    out = tmp_path / "levers.json"
    levers.report(types.SimpleNamespace(student="static", json=out), Params(), rows, n_test=80)
    data = json.loads(out.read_text())
    assert data["results"]["levers"] == rows and data["results"]["student"] == "static"
    table = data["tables"][0]["rows"]
    assert table[0] == [levers.ANCHOR, "params.yaml as it is", "0.750 (0.700–0.800)", "0.760", "anchor", "4", "12"]
    assert table[1][1] == "`--set finetune.static.max_epochs=8`" and table[1][4] == "+1.2"
    assert table[2][2] == "failed: expected an integer >= 1"


def test_the_default_levers_are_valid_overrides():
    from components.core.config import load_params

    for sets in [s for rows in levers.LEVERS.values() for _, s in rows]:
        load_params(ROOT / "params.yaml", sets)  # raises on an unknown key or a bad value
