"""pretrain's pure parts: packing, masking, the sparse loss, resumable batches, the LR schedule;
its input checks and its checkpoint key. Real Lightning runs: tests/integration/test_pretrain.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from components.core.errors import DataError
from components.core.paths import Paths
from components.model.data import IGNORE, MLMBatches, _gen, mask_tokens
from components.model.packing import PackedBlocks

from builders.mlm_project import tiny_cfg


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(st.lists(st.integers(5, 50), min_size=1, max_size=20), max_size=30),
       seq_len=st.integers(2, 16))
def test_pack_loses_and_duplicates_nothing(docs, seq_len):
    stream = np.array([t for d in docs for t in d], dtype=np.int64)
    blocks = PackedBlocks([np.array(d, dtype=np.int32) for d in docs], seq_len, pad_id=0)
    ids, mask = np.asarray(blocks.ids), np.asarray(blocks.attn)
    assert ids.shape[1] == seq_len and ids.shape == mask.shape
    assert np.array_equal(ids[mask], stream)  # order kept, nothing lost or duplicated
    assert (ids[~mask] == 0).all()
    assert mask[:-1].all() if len(ids) else len(stream) == 0  # only the last block has padding
    assert (~mask).sum() < seq_len


def _masking_batch(n=400, t=64):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 200, (n, t), generator=g)
    ids[:, 0], ids[:, t // 2] = 2, 3  # [CLS], [SEP] inside the stream
    attn = torch.ones(n, t, dtype=torch.bool)
    attn[: n // 2, 3 * t // 4:] = False
    ids = ids.masked_fill(~attn, 0)
    return ids, attn


def test_masking_rule_and_proportions():
    ids, attn = _masking_batch()
    inputs, labels = mask_tokens(ids, attn, torch.Generator().manual_seed(1), rate=0.15, mask_id=4,
                                 special_ids=[0, 1, 2, 3, 4], vocab_size=200)
    chosen = labels != IGNORE
    special = torch.isin(ids, torch.tensor([0, 1, 2, 3, 4]))
    assert not (chosen & (special | ~attn)).any()  # never specials, never padding
    assert torch.equal(inputs[~chosen], ids[~chosen])  # unchosen positions untouched
    assert torch.equal(labels[chosen], ids[chosen])
    eligible = (attn & ~special).sum().item()
    assert abs(chosen.sum().item() / eligible - 0.15) < 0.01
    n = chosen.sum().item()
    masked = (inputs[chosen] == 4).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    replaced = 1 - masked - kept
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(replaced - 0.1) < 0.02
    assert not torch.isin(inputs[chosen & (inputs != 4)], torch.tensor([0, 1, 2, 3])).any()


def test_masking_is_seeded_and_never_empty():
    ids, attn = _masking_batch(2, 8)
    kw = dict(rate=0.001, mask_id=4, special_ids=[0, 1, 2, 3, 4], vocab_size=200)
    a = mask_tokens(ids, attn, torch.Generator().manual_seed(5), **kw)
    b = mask_tokens(ids, attn, torch.Generator().manual_seed(5), **kw)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert (a[1] != IGNORE).sum() >= 1  # a loss is always defined


def test_sparse_loss_equals_dense_loss_over_masked_positions():
    from components.model.encoder import EncoderConfig
    from components.model.lit_mlm import LitMLM

    cfg = EncoderConfig.from_params(tiny_cfg().model, vocab_size=200)
    torch.manual_seed(0)
    lit = LitMLM(cfg, lr=1e-3, beta2=0.98, weight_decay=0.0, max_steps=1, warmup_fraction=0, schedule="linear")
    ids, attn = _masking_batch(8, 32)
    inputs, labels = mask_tokens(ids, attn, torch.Generator().manual_seed(0), rate=0.15, mask_id=4,
                                 special_ids=[0, 1, 2, 3, 4], vocab_size=200)
    batch = {"input_ids": inputs, "attention_mask": attn, "labels": labels}
    states = lit.encoder.token_states(inputs, attn)
    dense = torch.nn.functional.cross_entropy(lit.head(states.reshape(-1, 32)), labels.reshape(-1),
                                              ignore_index=IGNORE)
    assert torch.allclose(lit.mlm_loss(batch), dense, atol=1e-5)


def test_batches_resume_at_any_offset():
    blocks = PackedBlocks([np.arange(5, 5 + 500)], 10, 0)
    ids, attn = np.asarray(blocks.ids), np.asarray(blocks.attn)
    masking = dict(rate=0.15, mask_id=4, special_ids=[0, 1, 2, 3, 4], vocab_size=600)
    full = MLMBatches(ids, attn, 4, seed=3, masking=masking)
    first = [b for _, b in zip(range(30), iter(full))]  # crosses epochs (12 batches per epoch)
    resumed = iter(MLMBatches(ids, attn, 4, seed=3, masking=masking, start=lambda: 17))
    for expected in first[17:]:
        got = next(resumed)
        assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert not torch.equal(first[0]["input_ids"], first[12]["input_ids"])  # new permutation per epoch


def test_each_epoch_permutation_is_drawn_once_and_equals_its_definition():
    blocks = PackedBlocks([np.arange(5, 5 + 500)], 10, 0)  # 50 blocks: 12 micro-batches of 4 an epoch
    masking = dict(rate=0.15, mask_id=4, special_ids=[0, 1, 2, 3, 4], vocab_size=600)
    data = MLMBatches(blocks.ids, blocks.attn, 4, seed=3, masking=masking)
    for b in (0, 5, 13, 1, 30, 11):  # across epochs and back
        epoch, j = divmod(b, 12)
        perm = torch.randperm(50, generator=_gen(3, 1, epoch)).numpy()
        assert np.array_equal(data.rows(b), perm[j * 4:(j + 1) * 4])


def test_lr_schedule_and_precision():
    from components.model.optim import lr_lambda
    from components.model.precision import resolve_precision

    f = lr_lambda(100, 0.1, "cosine")
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(100) == pytest.approx(0.0)
    assert f(55) == pytest.approx(0.5)
    assert resolve_precision("32") == "32" and resolve_precision("bf16-mixed") == "bf16-mixed"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if native else "32")


def test_missing_inputs_and_bad_seq_len(project):
    from components.core.errors import ConfigError
    from components.stages import pretrain

    with pytest.raises(DataError, match="tokenizer.json: not found"):
        pretrain.run(tiny_cfg(), Paths.at(project))
    with pytest.raises(ConfigError, match="pretrain.seq_len"):
        pretrain.run(tiny_cfg(seq_len=64), Paths.at(project))


def test_checkpoint_key_covers_the_stage_code(tiny_project, monkeypatch):
    from components.stages import dvcgraph, pretrain, table

    deps = dvcgraph.code_deps(table.get("pretrain"))
    assert {"components/model/encoder.py", "components/stages/pretrain.py"} <= set(deps)
    cfg = tiny_cfg()
    before = pretrain.run_key(cfg, tiny_project)
    monkeypatch.setattr(pretrain, "code_digest", lambda: "edited code")
    assert pretrain.run_key(cfg, tiny_project) != before
