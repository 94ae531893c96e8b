"""tokenize stage: tokenizer contract, round trips, leakage, outputs, report numbers.

Every test builds its own tiny prepared splits (no ingest needed).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from components.core.config import Params, TokenizeConfig
from components.core.errors import DataError
from components.core.paths import Paths
from components.data.tokenizer_train import SPECIAL_TOKENS, UNK_ID, train_tokenizer
from components.data.tokenizer_report import split_stats
from components.stages.tokenize import tokenize

from builders.data import PLANTED, TRAIN, tokenize_project

MODELS = ("wordpiece", "bpe", "unigram")


@pytest.fixture(scope="module")
def trained():
    """One tokenizer per model type, trained on TRAIN (lowercase, small vocab)."""
    return {m: train_tokenizer(TRAIN, TokenizeConfig(model=m, vocab_size=300), show_progress=False)
            for m in MODELS}


@pytest.fixture(scope="module")
def stage_out(tmp_path_factory):
    """The stage run once (without MLflow) on a tiny project."""
    root = tmp_path_factory.mktemp("tok")
    paths = tokenize_project(root)
    cfg = TokenizeConfig(vocab_size=300, max_length=16, batch_size=2)
    return paths, cfg, tokenize(cfg, paths, show_progress=False)


@pytest.mark.parametrize("model", MODELS)
def test_all_models_train_with_the_special_token_contract(trained, model):
    tok = trained[model]
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert 5 < tok.get_vocab_size() <= 300
    enc = tok.encode("a good film")
    assert enc.ids[0] == 2 and enc.ids[-1] == 3  # [CLS] ... [SEP]
    tokens = tok.encode("a [MASK] film").tokens
    assert "[MASK]" in tokens and "[" not in tokens  # special: never split or lowercased


def test_normalizer_is_nfc_and_lowercase():
    decomposed = "Cafe\u0301 ÉTÉ"  # e + combining acute
    assert train_tokenizer(TRAIN, TokenizeConfig(vocab_size=300), False).normalizer.normalize_str(
        decomposed) == "caf\u00e9 été"  # NFC composed, lowercased, accents kept
    cased = train_tokenizer(TRAIN, TokenizeConfig(vocab_size=300, lowercase=False), False)
    assert cased.normalizer.normalize_str(decomposed) == "Caf\u00e9 ÉTÉ"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("text", ["Hello, World! It's a good film.", "The movie: déjà vu, again!",
                                  "北京的天气很好。", "Hello 北京, good film!"])
def test_round_trip(trained, model, text):
    tok = trained[model]
    norm = tok.normalizer.normalize_str(text)
    assert norm == text.lower()  # these inputs are already NFC
    enc = tok.encode(text)
    assert UNK_ID not in enc.ids  # all characters were seen in training
    decoded = tok.decode(enc.ids)
    if model == "wordpiece":
        # WordPiece decoding joins pre-tokenizer pieces with one space: exact up to spacing.
        pieces = [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(norm)]
        assert decoded == " ".join(pieces)
        assert decoded.replace(" ", "") == norm.replace(" ", "")
    else:  # byte-level BPE and Metaspace Unigram are lossless
        assert decoded == norm


@pytest.mark.parametrize("model", MODELS)
def test_chinese_characters_are_separate_tokens(trained, model):
    text = "我爱北京天安门"
    enc = trained[model].encode(text)
    offsets = enc.offsets[1:-1]  # without [CLS]/[SEP]
    # every token lies inside one character, and every character is covered
    assert set(offsets) == {(i, i + 1) for i in range(len(text))}
    if model == "wordpiece":
        assert enc.tokens[1:-1] == list(text)
    elif model == "unigram":
        assert [t for t in enc.tokens[1:-1] if t != "▁"] == list(text)
    # bpe: a character's UTF-8 bytes may be 1-3 tokens, never merged with another character


@pytest.mark.parametrize("model", MODELS)
def test_training_is_deterministic(model):
    cfg = TokenizeConfig(model=model, vocab_size=300)
    first = train_tokenizer(TRAIN, cfg, False).to_str()
    assert all(train_tokenizer(TRAIN, cfg, False).to_str() == first for _ in range(3))


def test_val_and_test_text_never_enter_the_vocab(stage_out):
    from tokenizers import Tokenizer

    paths, _, _ = stage_out
    tok = Tokenizer.from_file(str(paths.tokenizer))
    vocab = tok.get_vocab()
    assert "plantedtrain" in vocab  # control: a word from train (3 times) is learned whole ...
    assert PLANTED not in vocab and "##" + PLANTED not in vocab  # ... the val/test one (7 times) is not
    content = tok.encode(PLANTED).tokens[1:-1]
    assert content == ["[UNK]"] or len(content) > 1
    assert "z" not in vocab and "q" not in vocab  # letters seen only in val/test: not even characters


def test_tokenized_dataset_layout(stage_out):
    import datasets

    paths, cfg, _ = stage_out
    dd = datasets.load_from_disk(str(paths.tokenized))
    assert set(dd) == {"train", "val", "test", "unlabeled"}
    for name, ds in dd.items():
        assert ds.column_names == ["input_ids", "label"]
        assert ds.features["input_ids"] == datasets.List(datasets.Value("int32"))
        assert ds.features["label"] == datasets.Value("int64")
        ids = ds["input_ids"]
        assert all(row[0] == 2 and row[-1] == 3 and 0 not in row for row in ids)  # [CLS]..[SEP], no [PAD]
    assert dd["unlabeled"]["label"] == [-1, -1]
    assert dd["train"]["label"] == [i % 2 for i in range(len(TRAIN))]
    assert len(dd["unlabeled"][0]["input_ids"]) == 102 > cfg.max_length  # "the plot " * 50: not truncated
    assert not list(paths.tokenized.glob(".cache")) and not list(paths.root.glob("data/.*"))  # no leftovers


def test_report_numbers_by_hand(tmp_path):
    # "☃" appears in no training text: wordpiece makes the whole word [UNK].
    paths = tokenize_project(tmp_path, test_texts=["good movie", "bad ☃ film", " ".join(["good"] * 11)])
    cfg = TokenizeConfig(vocab_size=300, max_length=8)
    report = json.loads(json.dumps(tokenize(cfg, paths, show_progress=False)))
    assert report == json.loads(paths.report("tokenizer").read_text())
    t = report["splits"]["test"]
    # content tokens 2 + 3 + 11 = 16; lengths with [CLS]/[SEP] = 4, 5, 13
    assert (t["texts"], t["tokens"], t["unk_tokens"], t["truncated"]) == (3, 16, 1, 1)
    assert t["unk_rate"] == pytest.approx(1 / 16)
    assert t["mean_tokens"] == round(22 / 3, 4)
    assert t["p95_tokens"] == pytest.approx(5 + 0.9 * (13 - 5))  # numpy's linear interpolation
    assert t["truncation_rate"] == pytest.approx(1 / 3)
    assert report["overall"]["texts"] == sum(s["texts"] for s in report["splits"].values())
    assert report["overall"]["unk_tokens"] == sum(s["unk_tokens"] for s in report["splits"].values())
    assert report["vocab_size"] <= 300 and report["special_tokens"]["[MASK]"] == 4
    assert report["trained_on"] == ["train", "unlabeled"]


def test_split_stats_of_an_empty_split():
    s = split_stats(np.zeros(0, dtype=np.int64), 0, max_length=8)
    assert s["texts"] == 0 and s["unk_rate"] is None and s["truncation_rate"] is None


def test_missing_split_and_column_are_one_line_errors(tmp_path):
    paths = tokenize_project(tmp_path)
    paths.split("unlabeled").unlink()
    with pytest.raises(DataError, match=r"data/prepared/unlabeled.parquet: not found"):
        tokenize(TokenizeConfig(vocab_size=300), paths, show_progress=False)
    pd.DataFrame({"id": ["a"], "body": ["x"]}).to_parquet(paths.split("unlabeled"))
    with pytest.raises(DataError, match=r"unlabeled.parquet: column 'text' not found \(columns: id, body\)"):
        tokenize(TokenizeConfig(vocab_size=300), paths, show_progress=False)
    pd.DataFrame({"id": ["a", "b"], "text": ["x", None]}).to_parquet(paths.split("unlabeled"))
    with pytest.raises(DataError, match=r"unlabeled.parquet: row 1: text is null"):
        tokenize(TokenizeConfig(vocab_size=300), paths, show_progress=False)
    pd.DataFrame({"text": ["x"], "label": ["positive"]}).to_parquet(paths.split("val"))
    with pytest.raises(DataError, match=r"val.parquet: column 'label' has type (large_)?string"):
        tokenize(TokenizeConfig(vocab_size=300), paths, show_progress=False)


def test_stage_outputs_are_byte_identical_across_runs(tmp_path):
    paths = tokenize_project(tmp_path)
    cfg = TokenizeConfig(vocab_size=300)

    def digests():
        tokenize(cfg, paths, show_progress=False)
        files = sorted(p for d in (paths.tokenized, paths.tokenizer_dir) for p in d.rglob("*") if p.is_file())
        return {str(p.relative_to(tmp_path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    first = digests()
    assert "data/tokenized/train/state.json" in first and "models/tokenizer/tokenizer.json" in first
    assert digests() == first  # what DVC hashes does not change when nothing changed


def test_empty_unlabeled_split_encodes_to_empty_dataset(tmp_path):
    """A corpus with no unlabeled text is valid: the split is simply empty."""
    import datasets
    import pandas as pd

    from components.data.tokenizer_train import train_tokenizer
    from components.data.split_encode import encode_splits

    paths = Paths.at(tmp_path)
    paths.prepared.mkdir(parents=True)
    texts = ["a good film", "a bad film", "very good", "very bad"]
    for split in ("train", "val", "test"):
        pd.DataFrame({"id": [str(i) for i in range(4)], "text": texts, "label": [1, 0, 1, 0],
                      "label_name": ["p", "n", "p", "n"]}).to_parquet(paths.split(split))
    pd.DataFrame({"id": pd.Series([], dtype=str), "text": pd.Series([], dtype=str)}).to_parquet(
        paths.split("unlabeled"))
    tok = train_tokenizer(texts, Params().tokenize, show_progress=False)
    out = encode_splits(tok, paths, batch_size=2, cache_dir=tmp_path / "cache")
    assert len(out["unlabeled"]) == 0 and len(out["train"]) == 4
    assert out["unlabeled"].features["input_ids"] == datasets.List(datasets.Value("int32"))
