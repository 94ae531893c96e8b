"""Where fine-tuning starts (`finetune.init`), and the gold rows it trains and selects on.

- "pretrained": models/pretrained (our encoder, MLM-pretrained) and its tokenizer; the gold
  rows are data/tokenized's ids (refused when data/tokenized was re-tokenized since);
- "random": the same architecture from params.model, random weights (the ablation), with
  models/tokenizer; data/tokenized's ids;
- a path to a local Hugging Face checkpoint folder (AutoModel + its fast tokenizer); the gold
  rows are data/prepared's text, tokenized with that tokenizer.

    backbone, tok, pad_id, max_len, kind = start(cfg, paths, "pretrained")
    (train_ids, train_y), (val_ids, val_y) = gold_splits(paths, kind, tok, n_classes)
"""

from __future__ import annotations

from pathlib import Path

from components.core.config import Params
from components.core.errors import ConfigError, DataError
from components.core.paths import Paths


def check_same_tokenizer(paths: Paths, pretrained_tok) -> None:
    """data/tokenized holds ids of models/tokenizer; the pretrained encoder learned the ids of
    its own copy. After a re-tokenize without re-pretraining they differ, and a smaller new
    vocab would even train silently on the wrong embeddings: refuse."""
    from tokenizers import Tokenizer

    if not paths.tokenizer.is_file():
        return
    rel = lambda p: p.relative_to(paths.root).as_posix() if paths.root in p.parents else str(p)  # noqa: E731
    try:
        current = Tokenizer.from_file(str(paths.tokenizer))
    except Exception as e:  # tokenizers raises plain Exception subclasses
        raise DataError(f"{rel(paths.tokenizer)}: unreadable tokenizer ({e})", stage="finetune") from None
    if current.get_vocab() != pretrained_tok.get_vocab():
        raise DataError(f"{rel(paths.tokenizer)}: does not match the tokenizer of "
                        f"{rel(paths.pretrained)} (vocab size {current.get_vocab_size()} vs "
                        f"{pretrained_tok.get_vocab_size()}); re-run pretrain after tokenize",
                        stage="finetune")


def start(cfg: Params, paths: Paths, init: str):
    """(backbone, tokenizers.Tokenizer, pad_id, max_length, kind) for a starting point; kind is
    "pretrained", "random", "static" (model2vec's embeddings of the teacher checkpoint) or "hf".
    Every call builds a fresh backbone."""
    from tokenizers import Tokenizer

    ft = cfg.finetune
    if init == "pretrained":
        from components.model.io import TOKENIZER, load_encoder

        enc = load_encoder(paths.pretrained, dropout=ft.dropout)
        tok = Tokenizer.from_file(str(paths.pretrained / TOKENIZER))
        check_same_tokenizer(paths, tok)
        return enc, tok, enc.cfg.pad_id, enc.cfg.max_length, "pretrained"
    if init == "model2vec":  # a static student: model2vec's embeddings of the teacher checkpoint
        from components.model.teacher_base import static_encoder

        enc, tok = static_encoder(paths.model2vec, cfg.model.ffn_size, ft.dropout, cfg.model.max_length)
        return enc, tok, enc.cfg.pad_id, enc.cfg.max_length, "static"
    if init == "random":
        from components.model.encoder import EncoderConfig, build_encoder
        from components.model.io import tokenizer_vocab_size

        if not paths.tokenizer.is_file():
            raise DataError(f"{paths.tokenizer}: not found (run tokenize first)")
        tok = Tokenizer.from_file(str(paths.tokenizer))
        pad = tok.token_to_id("[PAD]")
        enc_cfg = EncoderConfig.from_params(cfg.model, tokenizer_vocab_size(paths.tokenizer),
                                            pad_id=0 if pad is None else pad, dropout=ft.dropout)
        return build_encoder(enc_cfg), tok, enc_cfg.pad_id, enc_cfg.max_length, "random"
    folder = Path(init).expanduser()
    folder = folder if folder.is_absolute() else paths.root / folder
    if not folder.is_dir():
        raise ConfigError(f"finetune.init: expected pretrained | random | a local Hugging Face "
                          f"checkpoint folder, got {init!r} (folder not found)")
    from components.model.hf_backbone import HFBackbone

    backbone, tok = HFBackbone.from_folder(folder, pooling=cfg.model.pooling)
    tok.no_padding()  # some shipped tokenizer.json files pad to a fixed length; we pad per batch
    max_len = min(cfg.model.max_length, backbone.max_positions)
    return backbone, tok, backbone.pad_id, max_len, "hf"


def gold_splits(paths: Paths, kind: str, tok, n_classes: int):
    """Gold (train, val) as (ids per row, labels [N]): data/tokenized ids, or HF-tokenized prepared text."""
    from components.data.splits import text_split, tokenized_split
    from components.model.tokens import encode_texts

    out = []
    for split in ("train", "val"):
        if kind in ("hf", "static"):  # tokenized here with the starting point's own tokenizer
            texts, labels = text_split(paths.split(split), n_classes)
            seqs = encode_texts(tok, texts)
        else:
            seqs, labels = tokenized_split(paths.tokenized, split, n_classes)
        out.append((seqs, labels))
    return out
