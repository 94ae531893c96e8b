import dataclasses
from pathlib import Path

import pytest
import yaml

from components.core.config import Params, load_params, parse_params
from components.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_params_parse_and_match_defaults():
    cfg = load_params(ROOT / "params.yaml")
    assert isinstance(cfg, Params)
    # The shipped file spells out every default, so docs and code agree.
    assert cfg == Params()


def test_params_are_frozen():
    cfg = Params()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.pretrain.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"pretrain": {"lrr": 1}}, "pretrain.lrr: unknown key"),
        ({"nope": {}}, "nope: unknown key"),
        ({"pretrain": {"lr": -1}}, "pretrain.lr: expected a float > 0, got -1"),
        ({"pretrain": {"lr": "fast"}}, "pretrain.lr: expected a float > 0, got 'fast'"),
        ({"pretrain": {"mask_rate": 1.5}}, "pretrain.mask_rate: expected a float > 0 and < 1, got 1.5"),
        ({"pretrain": {"max_steps": True}}, "pretrain.max_steps: expected an integer >= 1, got True"),
        ({"model": {"family": "rnn"}}, "model.family: expected one of 'transformer', 'lstm', 'cnn', 'static', got 'rnn'"),
        ({"model": {"kernel_sizes": [3, "x"]}}, "model.kernel_sizes[1]: expected an integer"),
        ({"model": {"hidden_size": 100, "num_heads": 3}}, "model.num_heads: expected a divisor"),
        ({"ingest": {"val_fraction": 0.6, "test_fraction": 0.5}}, "ingest.val_fraction + ingest.test_fraction"),
        ({"ingest": "x"}, "ingest: expected a mapping"),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    text = str(err.value)
    assert text.startswith("params.yaml: ")
    assert message in text
    assert "\n" not in text


def test_overrides_are_typed(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"pretrain": {"lr": 0.1}}))
    cfg = load_params(path, ["pretrain.lr=5e-4", "model.family=lstm", "tokenize.lowercase=false"])
    assert cfg.pretrain.lr == 5e-4 and cfg.model.family == "lstm" and cfg.tokenize.lowercase is False


def test_override_errors(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("{}")
    with pytest.raises(ConfigError, match="pretrain.nope: unknown key"):
        load_params(path, ["pretrain.nope=1"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_params(path, ["pretrain.lr"])


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_params(bad)
