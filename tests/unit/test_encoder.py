"""Encoder families, MLM head and the safetensors save/load round trip (tiny configs)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from components.core.config import ModelConfig
from components.core.errors import ConfigError, DataError
from components.model.encoder import EncoderConfig, MLMHead, build_encoder
from components.model.io import load_encoder, save_encoder

V = 120
VARIANTS = [("transformer", "learned"), ("transformer", "sinusoidal"), ("transformer", "rotary"),
            ("lstm", "learned"), ("cnn", "learned")]


def tiny(family="transformer", positions="learned", pooling="mean", **kw) -> EncoderConfig:
    model = ModelConfig(family=family, hidden_size=32, num_layers=2, num_heads=4, ffn_size=64,
                        positions=positions, pooling=pooling, max_length=16, kernel_sizes=(3, 5))
    return EncoderConfig.from_params(model, vocab_size=V, **kw)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 5:] = False  # row 1 is right-padded
    mask[2, 2:] = False
    return ids.masked_fill(~mask, 0), mask


@pytest.mark.parametrize("family,positions", VARIANTS)
@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_shapes_and_padding_does_not_change_outputs(family, positions, pooling):
    torch.manual_seed(0)
    enc = build_encoder(tiny(family, positions, pooling)).eval()
    ids, mask = batch()
    states, pooled = enc(ids, mask)
    assert states.shape == (3, 9, 32) and pooled.shape == (3, 32) and enc.output_size == 32
    # Row 1 alone, without its padding, and with different junk ids in the pad slots.
    alone_states, alone = enc(ids[1:2, :5], mask[1:2, :5])
    junk = ids.clone()
    junk[1, 5:] = 7
    _, pooled_junk = enc(junk, mask)
    assert torch.allclose(pooled[1], alone[0], atol=1e-5)
    assert torch.allclose(states[1, :5], alone_states[0], atol=1e-5)
    assert torch.allclose(pooled[1], pooled_junk[1], atol=1e-5)
    assert torch.isfinite(pooled).all()


@pytest.mark.parametrize("family,positions", VARIANTS)
def test_layer_groups_partition_parameters(family, positions):
    enc = build_encoder(tiny(family, positions))
    groups = enc.layer_groups()
    assert len(groups) == enc.cfg.num_layers + 1
    assert enc.input_embedding.weight in set(groups[0].parameters())
    seen = [id(p) for g in groups for p in g.parameters()]
    assert len(seen) == len(set(seen)) == len(list(enc.parameters()))


def test_positions_matter_for_transformer():
    torch.manual_seed(0)
    for positions in ("learned", "sinusoidal", "rotary"):
        enc = build_encoder(tiny(positions=positions, pooling="cls")).eval()
        ids = torch.tensor([[2, 10, 11, 12, 3]])
        swapped = torch.tensor([[2, 12, 11, 10, 3]])
        mask = torch.ones_like(ids, dtype=torch.bool)
        assert not torch.allclose(enc(ids, mask)[1], enc(swapped, mask)[1], atol=1e-4), positions


def test_mlm_head_is_tied_for_transformer_only():
    enc = build_encoder(tiny())
    head = MLMHead(enc)
    assert head.decoder is None
    assert all(p is not enc.input_embedding.weight for p in head.parameters())  # not registered twice
    logits = head(torch.randn(4, 32))
    assert logits.shape == (4, V)
    logits.sum().backward()
    assert enc.input_embedding.weight.grad is not None  # gradient reaches the tied embedding
    lstm = build_encoder(tiny("lstm"))
    assert MLMHead(lstm).decoder is not None


def test_bad_configs_raise_config_error():
    with pytest.raises(ConfigError, match="model.kernel_sizes"):
        EncoderConfig(**{**dataclasses.asdict(tiny("cnn")), "kernel_sizes": (2, 3)})
    with pytest.raises(ConfigError, match="model.hidden_size"):
        EncoderConfig(**{**dataclasses.asdict(tiny("lstm")), "hidden_size": 33})
    with pytest.raises(ConfigError, match="model.family"):
        EncoderConfig(**{**dataclasses.asdict(tiny()), "family": "rnn"})
    with pytest.raises(ConfigError, match="model.kernel_sizes"):
        ModelConfig(kernel_sizes=(4,))


def make_tokenizer(path, vocab_size=V):
    """A WordLevel tokenizer with exactly `vocab_size` ids and the contract's special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    vocab.update({f"w{i}": i for i in range(5, vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


@pytest.mark.parametrize("family,positions", VARIANTS)
def test_save_load_round_trip_without_pickle(tmp_path, monkeypatch, family, positions):
    torch.manual_seed(1)
    enc = build_encoder(tiny(family, positions)).eval()
    folder = tmp_path / "enc"
    save_encoder(enc, folder, make_tokenizer(tmp_path / "tokenizer.json"), extra={"steps": 3})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config["encoder"]["family"] == family and config["steps"] == 3
    # model.safetensors is the safetensors format (a JSON header, then raw tensor bytes), not
    # a pickle: the header parses and its tensors tile the rest of the file exactly.
    raw = (folder / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    spans = sorted(tuple(t["data_offsets"]) for t in header.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert set(header) == set(enc.state_dict())
    # Loading never reaches torch.load (the unpickler).
    def no_unpickling(*args, **kwargs):
        raise AssertionError("load_encoder called torch.load")

    monkeypatch.setattr(torch, "load", no_unpickling)
    loaded = load_encoder(folder)
    assert loaded.cfg == enc.cfg and not loaded.training
    ids, mask = batch()
    for a, b in zip(enc(ids, mask), loaded(ids, mask)):
        assert torch.equal(a, b)
    assert load_encoder(folder, dropout=0.1).cfg.dropout == 0.1


def test_load_rejects_mismatched_tokenizer(tmp_path):
    enc = build_encoder(tiny())
    save_encoder(enc, tmp_path / "enc", make_tokenizer(tmp_path / "tok.json", vocab_size=V + 5))
    with pytest.raises(DataError) as err:
        load_encoder(tmp_path / "enc")
    msg = str(err.value)
    assert f"vocab_size {V}" in msg and f"vocab size {V + 5}" in msg and "\n" not in msg


def test_load_rejects_corrupt_or_missing_files(tmp_path):
    enc = build_encoder(tiny())
    folder = tmp_path / "enc"
    save_encoder(enc, folder, make_tokenizer(tmp_path / "tok.json"))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(DataError, match="model.safetensors: unreadable weights"):
        load_encoder(folder)
    weights.unlink()
    with pytest.raises(DataError, match="model.safetensors: not found"):
        load_encoder(folder)


@pytest.mark.parametrize("family,positions", VARIANTS)
@pytest.mark.parametrize("padded", [False, True])
def test_selected_states_equal_dense_states_at_the_selection(family, positions, padded):
    """The MLM loss reads selected_states; the transformer computes its last block sparsely."""
    torch.manual_seed(0)
    enc = build_encoder(tiny(family, positions)).eval()
    ids, mask = batch()
    if not padded:
        mask = torch.ones_like(mask)  # packed blocks: no padding (the CPU path drops the mask)
    select = torch.zeros_like(mask)
    select[0, [1, 4, 8]] = True
    select[2, 0] = True  # row 1 selects nothing
    dense = enc.token_states(ids, mask)[select]  # [4, H]
    sparse = enc.selected_states(ids, mask, select)
    assert sparse.shape == dense.shape == (4, 32)
    assert torch.allclose(sparse, dense, atol=1e-5)
    # the gradients agree too, for every parameter
    params = list(enc.parameters())
    grads = [torch.autograd.grad(out.sum(), params, allow_unused=True)
             for out in (enc.token_states(ids, mask)[select], enc.selected_states(ids, mask, select))]
    for g_dense, g_sparse in zip(*grads):
        assert (g_dense is None) == (g_sparse is None)
        assert g_dense is None or torch.allclose(g_dense, g_sparse, atol=1e-5)
