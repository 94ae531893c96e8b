"""What the teacher's BASE checkpoint gives without labels: sentence vectors and static embeddings.

Both come from the checkpoint `teacher.init` names (model/hf_checkpoint.py), before any
fine-tuning, so they are label-free and stay honest in the label-efficiency study:

- `base_vectors`: the checkpoint's mean-pooled sentence vector of each text [N, H] (what
  all-MiniLM-L6-v2 was trained to produce, before its final L2 normalisation; pretrain's
  vector term compares directions only, so the norm does not matter);
- `distill_static`: model2vec's distillation of the checkpoint into static token embeddings
  (one forward pass per vocabulary token, PCA to `dims`, SIF weighting; Tulkens & van Dongen
  2024). The static student starts from that table, and evaluate's model2vec baseline is
  built from it the way a model2vec user would.

    vecs = base_vectors(folder, ["a fine film"], batch_size=128, max_length=128, precision="auto")
    distill_static(folder, 256, Path("models/model2vec"))   # model.safetensors, tokenizer.json, config.json
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from components.core.errors import DataError, first_line

CHUNK = 4096  # texts per progress-bar tick


def autocast(precision: str):
    """bf16 autocast for CPU inference when `precision` resolves to bf16-mixed, else a no-op."""
    import torch

    from components.model.precision import resolve_precision

    if resolve_precision(precision, "cpu") == "bf16-mixed":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def base_vectors(folder: Path, texts: list[str], batch_size: int, max_length: int, precision: str,
                 progress: bool = True) -> np.ndarray:
    """Mean-pooled sentence vectors [N, H] float32 of the checkpoint in `folder`, in input order
    (length-sorted, bounded batches inside; bf16 autocast where the CPU has it)."""
    from tqdm.auto import tqdm

    from components.model.batching import run_batches
    from components.model.tokens import truncate
    from components.model.hf_backbone import HFBackbone

    backbone, tok = HFBackbone.from_folder(folder, pooling="mean")
    backbone.eval()
    tok.no_padding()
    tok.no_truncation()
    length = min(max_length, backbone.max_positions)
    out = [np.zeros((0, backbone.output_size), dtype=np.float32)]
    with autocast(precision), tqdm(total=len(texts), desc="teacher: base vectors", unit="text",
                                   disable=not progress or None) as bar:
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start:start + CHUNK]
            seqs = [truncate(e.ids, length) for e in tok.encode_batch(chunk)]
            out.append(run_batches(seqs, backbone.pad_id, batch_size, lambda i, m: backbone(i, m)[1]))
            bar.update(len(chunk))
    return np.concatenate(out)


def distill_static(folder: Path, dims: int, out: Path, name: str) -> dict:
    """model2vec.distill of the checkpoint in `folder` (PCA to `dims`), saved into `out` (created;
    use inside atomic_dir); `name` (teacher.init) replaces the folder's absolute path in its
    config.json, so the same checkpoint gives the same bytes in every checkout. Returns
    {"vocab_size", "dims"}. A checkpoint model2vec cannot distil (no fast tokenizer,
    unreadable weights) is a one-line DataError."""
    import json
    import logging

    from model2vec.distill import distill

    logging.getLogger("model2vec").setLevel(logging.WARNING)
    try:
        model = distill(model_name=str(folder), pca_dims=dims, device="cpu")
    except Exception as e:  # noqa: BLE001 - transformers/model2vec raise many kinds; one line each
        raise DataError(f"{folder}: model2vec cannot distil this checkpoint into static embeddings "
                        f"({first_line(e, 200, with_type=True)}); set teacher.base: false or use another "
                        "teacher.init", stage="teacher") from None
    model.save_pretrained(str(out))
    (out / "README.md").unlink(missing_ok=True)  # a model card naming the (temporary) output folder
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config["tokenizer_name"] = name
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return {"vocab_size": int(model.embedding.shape[0]), "dims": int(model.embedding.shape[1])}


def static_encoder(folder: Path, mlp_size: int, dropout: float, max_length: int = 512):
    """(Encoder of family static whose token embeddings are model2vec's table in `folder`,
    its tokenizers.Tokenizer) for the static student: mean pooling, an MLP of mlp_size
    (0 = none). The tokenizer adds no [CLS]/[SEP] (model2vec's does not), pads with its [PAD]."""
    import torch
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from components.model.encoder import EncoderConfig, build_encoder

    folder = Path(folder)
    if (folder / "DISABLED.json").is_file():
        raise DataError(f"{folder}: no model2vec embeddings (teacher.base was false); a static student needs "
                        "them: set teacher.base: true", stage="finetune")
    try:
        table = load_file(str(folder / "model.safetensors"))
        vectors = next(iter(table.values())) if "embeddings" not in table else table["embeddings"]
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as e:  # noqa: BLE001 - safetensors / tokenizers raise plain exceptions
        raise DataError(f"{folder}: unreadable model2vec folder ({first_line(e, with_type=True)}); re-run the "
                        "teacher stage", stage="finetune") from None
    tok.no_padding()
    tok.no_truncation()
    pad = tok.token_to_id("[PAD]")
    vocab, dims = vectors.shape
    cfg = EncoderConfig(family="static", vocab_size=vocab, pad_id=0 if pad is None else pad, hidden_size=dims,
                        num_layers=1, num_heads=1, ffn_size=mlp_size, bias=True, positions="learned",
                        max_length=max_length, pooling="mean", kernel_sizes=(3,), dropout=dropout)
    encoder = build_encoder(cfg)
    with torch.no_grad():
        encoder.input_embedding.weight.copy_(torch.from_numpy(vectors.astype(np.float32)))
    return encoder, tok


def transfer_embeddings(folder: Path, tokenizer, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Our tokenizer's embedding table [V, dims] from model2vec's static embeddings of the
    teacher (`folder`, models/model2vec): each of our tokens is spelled out ("##ing" -> "ing"),
    tokenized with model2vec's tokenizer, and gets the mean of those tokens' vectors; special
    and unmatched tokens get none. Rows are rescaled to unit norm (our random init's expected
    norm: N(0, 1/dims) per component), keeping the direction model2vec learned from the
    teacher. Returns (table [V, dims], matched [V] bool). dims must equal the model2vec
    table's width (teacher.static_dims = model.hidden_size)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    table = load_file(str(Path(folder) / "model.safetensors"))
    vectors = (table["embeddings"] if "embeddings" in table else next(iter(table.values()))).astype(np.float32)
    if vectors.shape[1] != dims:
        raise DataError(f"{folder}: model2vec vectors have {vectors.shape[1]} dimensions but model.hidden_size "
                        f"is {dims}; set teacher.static_dims to {dims} or pretrain.embeddings: random",
                        stage="pretrain")
    theirs = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    theirs.no_padding()
    theirs.no_truncation()
    vocab = tokenizer.get_vocab()  # token -> id
    out = np.zeros((tokenizer.get_vocab_size(), dims), dtype=np.float32)
    matched = np.zeros(tokenizer.get_vocab_size(), dtype=bool)
    special_ids = {i for i, added in tokenizer.get_added_tokens_decoder().items() if added.special}
    words = {i: (t[2:] if t.startswith("##") else t) for t, i in vocab.items() if i not in special_ids}
    ids = sorted(words)
    for i, enc in zip(ids, theirs.encode_batch([words[i] for i in ids], add_special_tokens=False)):
        rows = [j for j in enc.ids if j < len(vectors)]
        v = vectors[rows].mean(0) if rows else None
        if v is not None and float(np.linalg.norm(v)) > 0:
            out[i], matched[i] = v / np.linalg.norm(v), True
    return out, matched
