"""Save / load an encoder folder without pickle: model.safetensors + config.json + tokenizer.json.

config.json layout: {"format": 1, "encoder": {EncoderConfig fields}, **extra}.
`write_folder` / `read_folder` and the file names are shared with the fine-tuned classifier
folder and its bi-encoder subfolder.

    save_encoder(enc, Path("models/pretrained"), paths.tokenizer, extra={"steps": 2000})
    enc = load_encoder(Path("models/pretrained"))
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from components.core.errors import DataError, first_line

FORMAT = 1
WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.json"


def write_folder(folder: Path, module, config: dict, tokenizer) -> None:
    """Write a model folder (created): `module`'s state dict as WEIGHTS (safetensors), `config`
    as CONFIG (sorted JSON) and TOKENIZER, copied from a tokenizer.json path or saved from a
    tokenizers.Tokenizer. Use inside atomic_dir for stage outputs."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
    (folder / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if isinstance(tokenizer, (str, Path)):
        shutil.copyfile(tokenizer, folder / TOKENIZER)
    else:
        tokenizer.save(str(folder / TOKENIZER))


def read_folder(folder: Path, kind: str, build, what: str = "fine-tuned model"):
    """(module, config dict, tokenizers.Tokenizer) of a folder written by `write_folder` whose
    config.json has this "kind"; build(config) -> the nn.Module its weights load into (strict).
    A missing file or a folder that does not fit is a one-line DataError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    folder = Path(folder)
    for name in (WEIGHTS, CONFIG, TOKENIZER):
        if not (folder / name).is_file():
            raise DataError(f"{folder / name}: not found (expected a folder written by finetune)")
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        if config.get("kind") != kind:
            raise KeyError("kind")
        module = build(config)
        module.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
    except (ValueError, KeyError, TypeError, RuntimeError, OSError, SafetensorError) as e:
        raise DataError(f"{folder}: not a valid {what} folder ({first_line(e, with_type=True)})") from None
    return module, config, tokenizer


def save_encoder(encoder, folder: Path, tokenizer_file: Path, extra: dict | None = None) -> None:
    """Write the three files into `folder` (created). Use inside atomic_dir for stage outputs."""
    config = {"format": FORMAT, "encoder": encoder.cfg.to_dict(), **(extra or {})}
    write_folder(folder, encoder, config, tokenizer_file)


def read_config(folder: Path):
    """The EncoderConfig stored in `folder`/config.json (DataError if missing or invalid)."""
    from components.model.encoder import EncoderConfig

    path = Path(folder) / CONFIG
    if not path.is_file():
        raise DataError(f"{path}: encoder config not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))["encoder"]
        return EncoderConfig(**raw)
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: invalid encoder config ({type(e).__name__}: {e})") from None


def tokenizer_vocab_size(tokenizer_file: Path) -> int:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(tokenizer_file)).get_vocab_size()
    except Exception as e:  # tokenizers raises plain Exception subclasses
        raise DataError(f"{tokenizer_file}: unreadable tokenizer ({e})") from None


def load_encoder(folder: Path, dropout: float | None = None):
    """Rebuild the encoder from `folder`; `dropout` overrides the saved value (fine-tuning)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from components.model.encoder import build_encoder

    folder = Path(folder)
    for name in (WEIGHTS, CONFIG, TOKENIZER):
        if not (folder / name).is_file():
            raise DataError(f"{folder / name}: not found (expected an encoder folder written by save_encoder)")
    cfg = read_config(folder)
    vocab = tokenizer_vocab_size(folder / TOKENIZER)
    if vocab != cfg.vocab_size:
        raise DataError(f"{folder / CONFIG}: vocab_size {cfg.vocab_size} does not match "
                        f"{folder / TOKENIZER} vocab size {vocab}")
    if dropout is not None:
        cfg = dataclasses.replace(cfg, dropout=dropout)
    encoder = build_encoder(cfg)
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{folder / WEIGHTS}: unreadable weights ({e})") from None
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise DataError(f"{folder / WEIGHTS}: weights do not match {folder / CONFIG} ({first_line(e)})") from None
    return encoder.eval()
