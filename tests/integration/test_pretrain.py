"""pretrain stage: packing, masking, sparse loss, resumable data, real Lightning runs (tiny)."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from components.core.config import parse_params
from components.core.errors import DataError
from components.core.paths import Paths
from components.model.data import IGNORE, MLMBatches, _gen, mask_tokens
from components.model.packing import PackedBlocks

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "the a film movie good bad great dull plot actor story funny boring scene music long short " \
        "love hate best worst fine slow fast dark bright sad happy odd new old script cast ending".split()


def write_tiny_project(root):
    """A tiny WordPiece tokenizer + data/tokenized DatasetDict per the data contract."""
    import datasets
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    rng = random.Random(0)
    texts = {s: [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) for _ in range(n)]
             for s, n in (("train", 160), ("val", 30), ("test", 20), ("unlabeled", 60))}
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts["train"] + texts["unlabeled"],
                            trainers.WordPieceTrainer(vocab_size=150, special_tokens=SPECIAL))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    paths = Paths.at(root)
    paths.tokenizer_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(paths.tokenizer))
    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                  "label": datasets.Value("int64")})
    dd = datasets.DatasetDict({
        s: datasets.Dataset.from_dict({"input_ids": [e.ids for e in tok.encode_batch(t)],
                                       "label": [-1 if s == "unlabeled" else i % 2 for i in range(len(t))]},
                                      features=features)
        for s, t in texts.items()})
    dd.save_to_disk(str(paths.tokenized))
    return paths


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_project(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_project(project, tiny_data):
    for sub in ("models", "data"):
        shutil.copytree(tiny_data.root / sub, project / sub)
    return Paths.at(project)


def tiny_cfg(**pretrain):
    raw = {"model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "ffn_size": 64, "max_length": 32},
           "pretrain": {"max_steps": 8, "batch_size": 4, "seq_len": 32, "checkpoint_every": 4,
                        "val_every": 4, "precision": "32", "warmup_fraction": 0.25, **pretrain}}
    return parse_params(raw)


# --------------------------------------------------------------------------- pure parts


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


# --------------------------------------------------------------------------- real Lightning runs


@pytest.mark.parametrize("family", ["transformer", "lstm", "cnn"])
def test_fast_dev_run_every_family(tiny_project, family):
    from components.model.io import load_encoder
    from components.stages import pretrain

    cfg = tiny_cfg()
    cfg = parse_params({"model": {**vars(cfg.model), "family": family}, "pretrain": vars(cfg.pretrain)})
    summary = pretrain.train(cfg, tiny_project, trainer_overrides={"fast_dev_run": True})
    assert summary["steps"] == 1 and summary["tokens_seen"] > 0
    assert np.isfinite(summary["final_val_loss"])
    encoder = load_encoder(tiny_project.pretrained)
    assert encoder.cfg.family == family
    assert not (tiny_project.checkpoints / "pretrain").exists() or \
        not any((tiny_project.checkpoints / "pretrain").rglob("*.ckpt"))  # dev runs keep no checkpoints


class Kill(RuntimeError):
    pass


class KillAt:
    """Raise once `global_step` reaches `step` (after the checkpoint of that step was written)."""

    def __new__(cls, step):
        import pytorch_lightning as pl

        class _Kill(pl.Callback):
            def on_train_batch_start(self, trainer, *args):
                if trainer.global_step >= step:
                    raise Kill(f"killed at step {trainer.global_step}")

        return _Kill()


def _weights(paths):
    from safetensors.torch import load_file

    return load_file(str(paths.pretrained / "model.safetensors"))


@pytest.mark.slow
def test_resume_matches_uninterrupted_run(tiny_project, tiny_data, tmp_path):
    import json

    import mlflow

    from components.stages import pretrain

    cfg = tiny_cfg(grad_accum=2)
    # Uninterrupted 8 steps in a separate project.
    other = tmp_path / "other"
    for sub in ("models", "data"):
        shutil.copytree(tiny_data.root / sub, other / sub)
    straight = pretrain.run(cfg, Paths.at(other))
    # Killed after step 4 (checkpoint_every=4), then resumed by simply running the stage again.
    with pytest.raises(Kill):
        pretrain.train(cfg, tiny_project, callbacks=(KillAt(4),))
    (key_dir,) = (tiny_project.checkpoints / "pretrain").iterdir()
    assert pretrain.verify_checkpoint(key_dir / "last.ckpt") == 4
    first_run_id = (key_dir / "mlflow_run_id").read_text()
    resumed = pretrain.run(cfg, tiny_project)

    assert resumed["steps"] == straight["steps"] == 8
    assert resumed["tokens_seen"] == straight["tokens_seen"]
    a, b = _weights(tiny_project), _weights(Paths.at(other))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    curve_a = (tiny_project.reports / "pretrain_curve.csv").read_text().splitlines()
    curve_b = (other / "reports" / "pretrain_curve.csv").read_text().splitlines()
    assert len(curve_a) == 9 and curve_a == curve_b  # header + 8 steps, history kept across the kill
    # The resumed attempt logged into the same MLflow run, which ends FINISHED.
    assert resumed["mlflow_run_id"] == first_run_id
    mlflow.set_tracking_uri(f"sqlite:///{tiny_project.root / 'mlflow.db'}")
    run = mlflow.get_run(first_run_id)
    assert run.info.status == "FINISHED"
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(first_run_id, "train/loss")]
    assert max(steps) >= 7 and min(steps) <= 1
    report = json.loads(tiny_project.report("pretrain").read_text())
    assert report["mlflow_run_id"] == first_run_id and report["precision"] == "32"
    assert report["stopped_by"] == "max_steps"
    # A finished run leaves no checkpoint: running again (dvc repro -f) retrains from scratch,
    # in a new MLflow run, to the same weights.
    assert not key_dir.exists()
    again = pretrain.run(cfg, tiny_project)
    assert again["steps"] == 8 and again["mlflow_run_id"] != first_run_id
    assert torch.equal(_weights(tiny_project)["body.embeddings.tok.weight"], a["body.embeddings.tok.weight"])


def test_corrupt_checkpoint_gives_one_line_error(tiny_project):
    from components.stages import pretrain

    cfg = tiny_cfg(max_steps=4, checkpoint_every=2)
    with pytest.raises(Kill):
        pretrain.train(cfg, tiny_project, callbacks=(KillAt(2),))
    (ckpt,) = (tiny_project.checkpoints / "pretrain").rglob("last.ckpt")
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        pretrain.run(cfg, tiny_project)
    msg = str(err.value)
    assert msg.startswith("pretrain: ") and "last.ckpt: corrupt or truncated checkpoint" in msg
    assert "\n" not in msg


def test_missing_inputs_and_bad_seq_len(project):
    from components.core.errors import ConfigError
    from components.stages import pretrain

    with pytest.raises(DataError, match="tokenizer.json: not found"):
        pretrain.run(tiny_cfg(), Paths.at(project))
    with pytest.raises(ConfigError, match="pretrain.seq_len"):
        pretrain.run(tiny_cfg(seq_len=64), Paths.at(project))


def test_max_minutes_stop_is_reported_in_one_warning_line(tiny_project, capsys):
    import json

    from components.stages import pretrain

    # 0.00002 min = 1.2 ms: Lightning's Timer stops the run after its first step.
    summary = pretrain.run(tiny_cfg(max_steps=1000, max_minutes=0.00002), tiny_project)
    assert summary["stopped_by"] == "max_minutes" and summary["steps"] < 1000
    assert json.loads(tiny_project.report("pretrain").read_text())["stopped_by"] == "max_minutes"
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning: pretrain:")]
    assert "max_minutes" in line and "dvc repro -f" in line


def test_checkpoint_key_covers_the_stage_code(tiny_project, monkeypatch):
    from components.stages import dvcgraph, pretrain, table

    deps = dvcgraph.code_deps(table.get("pretrain"))
    assert {"components/model/encoder.py", "components/stages/pretrain.py"} <= set(deps)
    cfg = tiny_cfg()
    before = pretrain.run_key(cfg, tiny_project)
    monkeypatch.setattr(pretrain, "code_digest", lambda: "edited code")
    assert pretrain.run_key(cfg, tiny_project) != before
