"""The static family and the teacher checkpoint's label-free outputs (model/teacher_base.py).

Real parts on a tiny BERT saved with save_pretrained (no hub): model2vec's distillation, the
static encoder built from it, the base sentence vectors, and the static student trained by
fit_classifier on a tiny project's transfer set.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from components.core.config import parse_params
from components.core.errors import ConfigError, DataError
from components.model import teacher_base
from components.model.encoder import EncoderConfig, build_encoder


def _static_cfg(mlp: int = 8) -> EncoderConfig:
    return EncoderConfig(family="static", vocab_size=20, pad_id=0, hidden_size=6, num_layers=1, num_heads=1,
                         ffn_size=mlp, bias=True, positions="learned", max_length=16, pooling="mean",
                         kernel_sizes=(3,))


def test_static_encoder_pools_the_mean_of_its_token_embeddings_then_the_mlp():
    torch.manual_seed(0)
    enc = build_encoder(_static_cfg(mlp=0)).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0]])
    mask = ids != 0
    with torch.no_grad():
        states, pooled = enc(ids, mask)
    table = enc.input_embedding.weight.detach()
    assert states.shape == (1, 5, 6) and float(states[0, 3:].abs().sum()) == 0.0  # pads are zero states
    assert torch.allclose(pooled[0], table[[3, 4, 5]].mean(0), atol=1e-6)
    with_mlp = build_encoder(_static_cfg(mlp=8)).eval()
    assert with_mlp(ids, mask)[1].shape == (1, 8) and with_mlp.output_size == 8


def test_static_encoder_ignores_padding_and_token_order():
    torch.manual_seed(0)
    enc = build_encoder(_static_cfg()).eval()
    a = enc(torch.tensor([[3, 4, 5]]), torch.ones(1, 3, dtype=torch.bool))[1]
    b = enc(torch.tensor([[5, 3, 4, 0, 0, 0]]), torch.tensor([[1, 1, 1, 0, 0, 0]]).bool())[1]
    assert torch.allclose(a, b, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from builders import teacher_model

    return teacher_model.tiny_bert(tmp_path_factory.mktemp("bert") / "bert")


def test_distill_static_is_deterministic_and_names_no_local_path(tiny_bert, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    info = teacher_base.distill_static(tiny_bert, 8, a, "tiny-bert")
    teacher_base.distill_static(tiny_bert, 8, b, "tiny-bert")
    assert info["dims"] == 8 and info["vocab_size"] > 10
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not (a / "README.md").exists()
    assert json.loads((a / "config.json").read_text())["tokenizer_name"] == "tiny-bert"
    enc, tok = teacher_base.static_encoder(a, mlp_size=12, dropout=0.0)
    assert enc.cfg.family == "static" and enc.cfg.hidden_size == 8 and enc.output_size == 12
    ids = tok.encode("good film").ids
    from safetensors.numpy import load_file

    table = load_file(str(a / "model.safetensors"))["embeddings"].astype(np.float32)
    assert np.allclose(enc.input_embedding.weight[ids].detach().numpy(), table[ids], atol=1e-6)


def test_static_encoder_names_a_folder_without_embeddings(tmp_path):
    (tmp_path / "DISABLED.json").write_text("{}")
    with pytest.raises(DataError, match="teacher.base was false"):
        teacher_base.static_encoder(tmp_path, 8, 0.0)
    (tmp_path / "DISABLED.json").unlink()
    with pytest.raises(DataError, match="unreadable model2vec folder"):
        teacher_base.static_encoder(tmp_path, 8, 0.0)


def test_base_vectors_are_the_checkpoints_mean_pooled_states(tiny_bert):
    from components.model.hf_backbone import HFBackbone

    texts = ["good film", "a very bad movie indeed", "good"]
    vecs = teacher_base.base_vectors(tiny_bert, texts, batch_size=2, max_length=32, precision="32", progress=False)
    backbone, tok = HFBackbone.from_folder(tiny_bert, pooling="mean")
    with torch.inference_mode():
        enc = tok.encode(texts[1])
        ids = torch.tensor([enc.ids])
        want = backbone.eval()(ids, torch.ones_like(ids, dtype=torch.bool))[1][0].numpy()
    assert vecs.shape == (3, backbone.output_size)
    assert np.allclose(vecs[1], want, atol=1e-5)


def test_transfer_embeddings_spell_our_tokens_in_the_model2vec_table(tiny_bert, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    teacher_base.distill_static(tiny_bert, 8, tmp_path / "m2v", "tiny-bert")
    ours = Tokenizer(models.WordPiece({"[PAD]": 0, "[UNK]": 1, "good": 2, "##film": 3, "zzzqqq": 4},
                                      unk_token="[UNK]"))
    ours.pre_tokenizer = pre_tokenizers.Whitespace()
    table, matched = teacher_base.transfer_embeddings(tmp_path / "m2v", ours, 8)
    assert matched[2] and matched[3]  # "good" and "film" ("##" stripped) are in the tiny vocabulary
    assert np.allclose(np.linalg.norm(table[matched], axis=1), 1.0, atol=1e-5)
    with pytest.raises(DataError, match="teacher.static_dims to 16"):
        teacher_base.transfer_embeddings(tmp_path / "m2v", ours, 16)


@pytest.mark.parametrize("raw, message", [
    ({"teacher": {"base": False}}, "pretrain.vector_weight: expected 0 while teacher.base is false"),
    ({"teacher": {"base": False}, "pretrain": {"vector_weight": 0}},
     "finetune.static.enabled: a static student starts from teacher.base"),
    ({"teacher": {"base": False}, "pretrain": {"vector_weight": 0, "embeddings": "model2vec"},
      "finetune": {"static": {"enabled": False}}}, "pretrain.embeddings: model2vec needs teacher.base"),
])
def test_config_refuses_a_static_student_or_vectors_without_the_teachers_base_outputs(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)
