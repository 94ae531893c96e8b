"""The unlabeled corpus (ingest.unlabeled_source): streamed ingest, tokenize, packed blocks.

- PackedBlocks (the memory-mapped view pretraining reads) equals the old in-memory packing
  (`old_pack(old_token_stream(...))`, kept here as the oracle) on random streams;
- length statistics from histograms equal the ones from arrays of lengths;
- a multi-file glob of text goes ingest -> tokenize -> pretrain's load_data, streamed, and the
  blocks pretraining reads are views into memory-mapped Arrow shards.
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.core.config import ConfigError, IngestConfig, TokenizeConfig, parse_params
from components.core.errors import DataError
from components.core.paths import CORPUS, Paths
from components.data.corpus import Hash64Set
from components.data.corpus_read import iter_texts
from components.data.length_stats import hist_stats, percentile
from components.model.packing import PackedBlocks


# --------------------------------------------------------------------------- the oracle


def old_pack(stream: np.ndarray, seq_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The in-memory packing pretraining used before (components/model/data.py `pack`)."""
    n = len(stream)
    blocks = -(-n // seq_len)
    ids = np.full(blocks * seq_len, pad_id, dtype=np.int64)
    ids[:n] = stream
    mask = np.zeros(blocks * seq_len, dtype=bool)
    mask[:n] = True
    return ids.reshape(blocks, seq_len), mask.reshape(blocks, seq_len)


def old_token_stream(tokenized_dir: Path, splits) -> np.ndarray:
    """The old `token_stream`: every input_ids of `splits` in one int64 array."""
    import datasets

    dd = datasets.load_from_disk(str(tokenized_dir))
    parts = [dd[s].with_format("arrow")[:]["input_ids"].combine_chunks().flatten()
             .to_numpy(zero_copy_only=False).astype(np.int64)
             for s in splits if s in dd and len(dd[s])]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _table(docs: list[list[int]]):
    import pyarrow as pa

    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs], dtype=np.int64)]).astype(np.int32)
    flat = np.array([t for d in docs for t in d], dtype=np.int32)
    return pa.table({"input_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)),
                     "label": pa.array([-1] * len(docs), pa.int64())})


def save_splits(root: Path, splits: dict[str, list[list[int]]], batch: int) -> Path:
    """A tokenized DatasetDict whose splits hold `batch` rows per Arrow record batch, in
    shards of a few bytes (so blocks span chunk, shard and split boundaries)."""
    from components.data.tokenized import write_tables

    root.mkdir(parents=True, exist_ok=True)
    for name, docs in splits.items():
        tables = [_table(docs[i:i + batch]) for i in range(0, len(docs), batch)]
        write_tables(tables, root / name, fingerprint=name, shard_bytes=64)
    (root / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    return root


docs_st = st.lists(st.lists(st.integers(5, 60), min_size=1, max_size=12), max_size=25)
ORDER = ("train", "unlabeled", CORPUS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(train=docs_st, unlabeled=docs_st, corpus=docs_st, seq_len=st.integers(2, 20),
       batch=st.integers(1, 7), data=st.data())
def test_packed_view_equals_the_old_packer(tmp_path_factory, train, unlabeled, corpus, seq_len, batch, data):
    splits = {"train": train, "unlabeled": unlabeled, CORPUS: corpus}
    root = save_splits(tmp_path_factory.mktemp("packed") / "tokenized", splits, batch)
    ids, mask = old_pack(old_token_stream(root, ORDER), seq_len, pad_id=0)

    blocks = PackedBlocks.from_tokenized(root, ORDER, seq_len, pad_id=0)
    assert len(blocks.ids) == len(blocks.attn) == len(ids) and blocks.ids.shape == ids.shape
    assert np.array_equal(np.asarray(blocks.ids), ids) and np.asarray(blocks.ids).dtype == np.int64
    assert np.array_equal(np.asarray(blocks.attn), mask)
    if len(ids):
        rows = np.array(data.draw(st.lists(st.integers(0, len(ids) - 1), min_size=1, max_size=9)))
        assert np.array_equal(blocks.ids[rows], ids[rows]) and np.array_equal(blocks.attn[rows], mask[rows])
        assert np.array_equal(blocks.ids[-1], ids[-1]) and np.array_equal(blocks.ids[1:3], ids[1:3])
    # the same from plain arrays, one per document
    loose = PackedBlocks([np.array(d, dtype=np.int32) for s in ORDER for d in splits[s]], seq_len, 0)
    assert np.array_equal(np.asarray(loose.ids), ids)


@settings(max_examples=80, deadline=None)
@given(lengths=st.lists(st.integers(2, 300), max_size=60), max_length=st.integers(8, 200))
def test_histogram_stats_equal_the_array_stats(lengths, max_length):
    lengths = np.array(lengths, dtype=np.int64)
    got = hist_stats(np.bincount(lengths), 3, max_length)
    n = len(lengths)
    assert got["texts"] == n and got["tokens"] == int(lengths.sum()) - 2 * n
    if n:
        assert got["mean_tokens"] == round(float(lengths.mean()), 4)
        assert got["p95_tokens"] == round(float(np.percentile(lengths, 95)), 4)
        assert percentile(np.bincount(lengths), 95) == float(np.percentile(lengths, 95))  # bit for bit
        assert got["max_tokens"] == int(lengths.max())
        assert got["truncation_rate"] == float((lengths > max_length).mean())
    assert got["truncated"] == int((lengths > max_length).sum())


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 40), max_size=30), max_size=20))
def test_hash_set_agrees_with_a_python_set(batches):
    import components.data.corpus as corpus

    old = corpus.RECENT_MIN
    corpus.RECENT_MIN = 4  # merge into the sorted array often
    try:
        s, ref = Hash64Set([7]), {7}
        for keys in batches:
            arr = np.array(keys, dtype=np.uint64)
            assert s.contains(arr).tolist() == [k in ref for k in keys]
            s.update(keys)
            ref.update(keys)
            assert len(s) == len(ref)
    finally:
        corpus.RECENT_MIN = old


# --------------------------------------------------------------------------- the readers


def test_streaming_readers_lines_and_errors(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"\xef\xbb\xbfone\r\ntwo\x0bthree\n\n  \nfour")
    assert list(iter_texts(f, "a.txt", "text", 100)) == [(1, "one"), (2, "two"), (2, "three"), (5, "four")]
    f.write_bytes(b"ok\nbad \xe9 byte\n")
    with pytest.raises(DataError, match=r"a.txt: line 2: not valid UTF-8 \(byte 0xe9 at offset 7\)"):
        list(iter_texts(f, "a.txt", "text", 100))
    f.write_bytes(b"x" * 1000)  # no newline at all: never read whole
    with pytest.raises(DataError, match=r"a.txt: line 1: text has more than 10 characters"):
        list(iter_texts(f, "a.txt", "text", 10))
    f.write_bytes(b"\x89PNG\r\n\x1a\nrest")
    with pytest.raises(DataError, match="looks like a PNG image"):
        list(iter_texts(f, "a.txt", "text", 100))
    j = tmp_path / "b.jsonl"
    j.write_text('{"text": "a", "label": "pos"}\n\n{"text": null}\n{"body": "c"}\n', encoding="utf-8")
    assert list(iter_texts(j, "b.jsonl", "text", 100)) == [(1, "a"), (3, None), (4, None)]
    j.write_text('{"body": "a"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"b.jsonl: column 'text' not found \(columns: body\)"):
        list(iter_texts(j, "b.jsonl", "text", 100))
    c = tmp_path / "c.csv"
    c.write_text('id,text\n1,"multi\nline"\n2,plain\n', encoding="utf-8")
    assert list(iter_texts(c, "c.csv", "text", 100)) == [(2, "multi\nline"), (4, "plain")]
    c.write_text('text\n"open\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"c.csv: line 2: malformed CSV"):
        list(iter_texts(c, "c.csv", "text", 100))
    (tmp_path / "e.txt").write_bytes(b"\n \n")
    with pytest.raises(DataError, match="e.txt: empty file"):
        list(iter_texts(tmp_path / "e.txt", "e.txt", "text", 100))


def test_unlabeled_source_must_be_a_file_source():
    assert IngestConfig(unlabeled_source="file:data/corpus/*.txt").unlabeled_source
    for bad in ("hf:wikitext", "data/corpus", "file:"):
        with pytest.raises(ConfigError, match="ingest.unlabeled_source: expected"):
            IngestConfig(unlabeled_source=bad)


# --------------------------------------------------------------------------- end to end


WORDS = "the a film movie plot actor story scene music script cast ending night city river".split()


def _write_corpus(root: Path, labelled_text: str) -> list[str]:
    """Three text files (+ a jsonl) under data/corpus; returns the texts in source order."""
    import random

    rng = random.Random(0)
    folder = root / "data" / "corpus"
    folder.mkdir(parents=True)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))) + f" zebracorn{i}"
             for i in range(600)]
    for k in range(3):
        part = texts[k * 200:(k + 1) * 200]
        extra = [part[0], labelled_text] if k == 2 else []  # a repeat and a labelled text
        (folder / f"part-{k}.txt").write_text("\n".join(part + extra) + "\n", encoding="utf-8")
    return texts


def test_corpus_glob_streams_through_ingest_tokenize_and_pretrain_data(project, monkeypatch):
    import datasets
    import pandas as pd

    import components.data.corpus as corpus_mod
    from components.model.data import MLMBatches
    from components.stages.ingest import ingest
    from components.stages.pretrain import load_data
    from components.stages.tokenize import tokenize

    monkeypatch.setattr(corpus_mod, "ROW_GROUP", 128)  # several row groups / dedup batches
    rows = [(f"review {i} of a good film", "pos" if i % 2 else "neg") for i in range(60)]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(project / "raw.csv", index=False)
    texts = _write_corpus(project, rows[3][0])
    paths = Paths.at(project)
    cfg = IngestConfig(source="file:raw.csv", unlabeled_source="file:data/corpus/*.txt")
    summary = ingest(cfg, paths)

    assert summary[CORPUS] == 600
    table = pq.read_table(paths.split(CORPUS))
    assert table.column("text").to_pylist() == texts  # source order, first occurrence kept
    assert pq.ParquetFile(paths.split(CORPUS)).metadata.num_row_groups == 5  # written in pieces
    report = json.loads(paths.report("ingest").read_text())["corpus"]
    assert report["files"] == 3 and report["rows_read"] == 602
    assert report["duplicates"] == {"repeated": 1, "equal_to_labelled": 1}

    tok_report = tokenize(TokenizeConfig(vocab_size=200, min_frequency=1, max_length=32, batch_size=50),
                          paths, show_progress=False)
    assert tok_report["trained_on"] == ["train", "unlabeled", CORPUS]
    assert tok_report["splits"][CORPUS]["texts"] == 600
    dd = datasets.load_from_disk(str(paths.tokenized))
    assert list(dd) == ["train", "val", "test", "unlabeled", CORPUS]
    ds = dd[CORPUS]
    assert ds.cache_files and type(ds.data).__name__ == "MemoryMappedTable"
    assert ds.features == dd["train"].features and set(ds["label"]) == {-1}
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(paths.tokenizer))
    assert ds[0]["input_ids"] == tok.encode(texts[0]).ids  # the streamed encoding = the tokenizer's
    assert tok.token_to_id("zebracorn") is not None or tok.token_to_id("zeb") is not None  # corpus text trains it
    stats = hist_stats(np.bincount([len(r) for r in ds["input_ids"]]), 0, 32)
    assert tok_report["splits"][CORPUS]["mean_tokens"] == stats["mean_tokens"]

    params = parse_params({"pretrain": {"seq_len": 16, "batch_size": 4, "val_sequences": 3},
                           "model": {"max_length": 16}})
    info, train, val = load_data(params, paths)
    order = ("train", "unlabeled", CORPUS)
    ids, mask = old_pack(old_token_stream(paths.tokenized, order), 16, info["pad_id"])
    assert np.array_equal(np.asarray(train[0]), ids) and np.array_equal(np.asarray(train[1]), mask)
    blocks = train[0].blocks  # memory-mapped: every part is a view into a map, none owns its data
    assert blocks.parts and not any(p.flags.owndata for p in blocks.parts)
    assert blocks.maps and all(isinstance(m, mmap.mmap) for m in blocks.maps)
    assert len(blocks.maps) == sum(len(json.loads((paths.tokenized / s / "state.json").read_text())["_data_files"])
                                   for s in order)  # train, unlabeled and corpus shards
    assert val[0].shape == (3, 16) and isinstance(val[0], np.ndarray)
    masking = {"rate": 0.25, "mask_id": info["mask_id"], "special_ids": info["special_ids"],
               "vocab_size": info["vocab_size"]}
    batch = MLMBatches(*train, batch_size=4, seed=0, masking=masking).batch(0)
    assert batch["input_ids"].shape == (4, 16) and batch["input_ids"].dtype.is_floating_point is False


def test_corpus_errors_and_removal(project):
    import pandas as pd

    from components.stages.ingest import ingest

    rows = [(f"review {i} of a good film", "pos" if i % 2 else "neg") for i in range(40)]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(project / "raw.csv", index=False)
    paths = Paths.at(project)
    (project / "data" / "corpus").mkdir(parents=True)
    (project / "data" / "corpus" / "a.txt").write_text("same\n" * 10 + "other\n", encoding="utf-8")
    cfg = IngestConfig(source="file:raw.csv", unlabeled_source="file:data/corpus/*.txt")
    with pytest.raises(DataError, match=r"file:data/corpus/\*.txt: 9 of 11 non-empty rows are duplicates"):
        ingest(cfg, paths)
    assert not paths.prepared.exists()  # nothing half-written
    with pytest.raises(DataError, match=r"file:data/corpus/none\*.txt: no files match"):
        ingest(IngestConfig(source="file:raw.csv", unlabeled_source="file:data/corpus/none*.txt"), paths)
    (project / "data" / "corpus" / "a.txt").write_text("one text\nanother text\n", encoding="utf-8")
    ingest(cfg, paths)
    assert pq.read_table(paths.split(CORPUS)).num_rows == 2
    ingest(IngestConfig(source="file:raw.csv"), paths)  # unset again: no corpus file, no report block
    assert not paths.split(CORPUS).exists()
    assert "corpus" not in json.loads(paths.report("ingest").read_text())


def _mapped_kib(folder: Path) -> int:
    """RSS (KiB) of this process's mappings of files under `folder` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
            inside = len(head) >= 6 and head[5].startswith(str(folder))
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_gathering_releases_the_token_file_pages_it_touched(tmp_path, monkeypatch):
    import components.model.packing as packing

    docs = [[5 + (i * 7 + j) % 50 for j in range(40)] for i in range(4000)]  # 160k tokens, 625 KiB
    root = save_splits(tmp_path / "tokenized", {"train": docs}, batch=1000)
    monkeypatch.setattr(packing, "RELEASE_EVERY_ROWS", 10**9)
    blocks = PackedBlocks.from_tokenized(root, ("train",), 16, pad_id=0)
    assert _mapped_kib(root) == 0  # the record batch headers that indexing read are unmapped again
    rows = np.random.default_rng(0).permutation(len(blocks))
    before = blocks.ids[rows]
    assert _mapped_kib(root) > 400  # every page was read
    blocks.release()
    assert _mapped_kib(root) == 0
    assert np.array_equal(blocks.ids[rows], before)  # read again from the page cache, same values

    monkeypatch.setattr(packing, "RELEASE_EVERY_ROWS", 64)  # training's pattern: micro-batches of random rows
    blocks.release()
    for i in range(0, 320, 64):
        assert np.array_equal(blocks.ids[rows[i:i + 32]], before[i:i + 32])
        assert _mapped_kib(root) > 0  # 32 rows gathered since the last release: their pages are mapped
        assert np.array_equal(blocks.ids[rows[i + 32:i + 64]], before[i + 32:i + 64])
        assert _mapped_kib(root) == 0  # the 64th row released them
