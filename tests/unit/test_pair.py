"""ingest.task: pair (issue #15): one class per pair of texts (text, text_pair).

Unit tests: pair ingest (dedup on the pair, split on the unordered pair, an empty side, the
missing pair column), the GX pair checks (self-pairs, leakage of a pair in either order),
the segment embedding (zero-initialised: the pretrained numbers are unchanged; no keys in a
single_label config), longest-first truncation. The tiny pair pipeline from ingest to
register, `encoderflow predict` on two columns and the pyfunc behind `mlflow models serve`
are tests/integration/test_task_pipelines.py. The bad-input rows live in
tests/integration/test_failure_modes.py (23-24).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from components.core.config import parse_params
from components.core.errors import DataError
from components.core.paths import Paths


def _ingest(root: Path, text: str, name: str = "a.csv", **ingest):
    from components.stages.ingest import ingest as run_ingest

    (root / name).write_text(text, encoding="utf-8")
    cfg = parse_params({"ingest": {"task": "pair", "source": f"file:{name}", "val_fraction": 0.0,
                                   "test_fraction": 0.0, "max_duplicate_fraction": 1.0, **ingest}})
    return run_ingest(cfg.ingest, Paths.at(root)), cfg


def test_pair_ingest_dedups_on_the_pair_and_splits_on_the_unordered_pair(project):
    import pandas as pd

    from components.data.prepare import pair_id, pair_split_key, split_of

    csv = ("text,text_pair,label\n"
           "a cat,a kitten,dup\n"
           "a cat,a dog,diff\n"          # the same first text in another pair: kept
           "a cat,a kitten,dup\n"        # the same (a, b) again: a duplicate, dropped
           "a kitten,a cat,dup\n"        # the reverse order: another row, same split
           "lonely text,,\n")            # unlabeled: its non-empty side is pretraining text
    _ingest(project, csv)
    assert json.loads((project / "data/prepared/labels.json").read_text()) == {"labels": ["diff", "dup"],
                                                                              "task": "pair"}
    train = pd.read_parquet(project / "data/prepared/train.parquet")
    assert list(train.columns) == ["id", "text", "text_pair", "label", "label_name"]
    assert sorted(zip(train["text"], train["text_pair"])) == [("a cat", "a dog"), ("a cat", "a kitten"),
                                                              ("a kitten", "a cat")]
    assert set(train["id"]) == {pair_id("a cat", "a dog"), pair_id("a cat", "a kitten"), pair_id("a kitten", "a cat")}
    report = json.loads((project / "reports/ingest.json").read_text())
    assert report["duplicates"]["labelled"] == 1 and report["task"] == "pair" and report["splits"]["unlabeled"] == 1
    # the split is keyed on the unordered pair, so (a, b) and (b, a) never straddle splits
    for a, b in [("x", "y"), ("long text one", "two")]:
        assert split_of(pair_split_key(a, b), 0.3, 0.3) == split_of(pair_split_key(b, a), 0.3, 0.3)


def test_pair_ingest_counts_an_empty_side_as_an_empty_row(project):
    rows = "".join(f"text {i},other {i},{'y' if i % 2 else 'n'}\n" for i in range(20))
    summary, _ = _ingest(project, "text,text_pair,label\n" + rows + "one side,,y\n")
    assert summary["train"] == 20 and summary["empty_dropped"] == 1
    with pytest.raises(DataError, match=r"^ingest: file:a.csv: 2 of 22 rows are empty \(9.1%; more than "
                                        r"ingest.max_empty_fraction=0.05\)$"):
        _ingest(project, "text,text_pair,label\n" + rows + "one side,,y\n,other side,n\n")


def test_pair_ingest_needs_the_pair_column(project):
    with pytest.raises(DataError, match=r"^ingest: a.csv: column 'text_pair' not found \(ingest.task is pair; "
                                        r"columns: text, label\)$"):
        _ingest(project, "text,label\na,x\nb,y\n")
    assert not (project / "data").exists()
    summary, _ = _ingest(project, "first,second,label\na,b,x\nc,d,y\n", text_column="first",
                         text_pair_column="second")
    assert summary["train"] == 2


def test_pair_validate_flags_self_pairs_and_pairs_leaking_in_either_order(project):
    import pandas as pd

    from components.data.leakage import pair_sets

    frames = {"train": pd.DataFrame({"id": ["1", "2"], "text": ["a", "b"], "text_pair": ["b", "c"]}),
              "val": pd.DataFrame({"id": ["3"], "text": ["z"], "text_pair": ["z"]}),
              "test": pd.DataFrame({"id": ["4", "5"], "text": ["b", "a"], "text_pair": ["a", "c"]})}
    sets = pair_sets(frames)
    assert sets["val"] == {"self": ["3"], "train": []}
    assert sets["test"] == {"self": [], "train": ["4"], "val": []}  # (b, a) is train's (a, b)

    from components.stages import validate

    rows = "".join(f"text {i},other {i},{'y' if i % 2 else 'n'}\n" for i in range(20))
    _, cfg = _ingest(project, "text,text_pair,label\n" + rows + "same,same,y\n")
    with pytest.raises(DataError, match="train: 1 rows pair a text with itself"):
        validate.check(cfg, Paths.at(project))
    report = json.loads((project / "reports/validation.json").read_text())
    assert report["critical_failures"] == 1
    assert report["messages"]["critical"] == ["train: 1 rows pair a text with itself (text == text_pair)"]


def test_segment_embedding_starts_at_zero_and_only_exists_for_pair():
    from components.core.config import ModelConfig
    from components.model.encoder import EncoderConfig, add_segments, build_encoder

    torch.manual_seed(0)
    cfg = EncoderConfig.from_params(ModelConfig(hidden_size=16, num_layers=1, num_heads=2, ffn_size=32,
                                                max_length=16), vocab_size=30, pad_id=0)
    enc = build_encoder(cfg).eval()
    assert "segments" not in cfg.to_dict() and not any("seg" in k for k in enc.state_dict())
    ids = torch.tensor([[2, 7, 8, 3, 9, 10, 3]])  # [CLS] a a [SEP] b b [SEP]
    mask = torch.ones_like(ids, dtype=torch.bool)
    before = enc(ids, mask)[1]
    assert add_segments(enc, sep_id=3)
    assert torch.equal(enc(ids, mask)[1], before)  # zero-initialised: the same numbers
    assert enc.cfg.to_dict()["segments"] == 2 and "body.embeddings.seg.weight" in enc.state_dict()
    with torch.no_grad():
        enc.body.embeddings.seg.weight[1] += 1.0  # segment 1 = after the first [SEP]
    assert not torch.equal(enc(ids, mask)[1], before)
    rebuilt = build_encoder(EncoderConfig(**enc.cfg.to_dict()))
    rebuilt.load_state_dict(enc.state_dict())  # a saved pair model loads back
