"""pretrain stage: real Lightning runs (tiny): every family, resume after a kill, a corrupt checkpoint,
the max_minutes stop. The pure parts (packing, masking, loss, batches): tests/unit/test_pretrain_data.py."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from components.core.config import parse_params
from components.core.errors import DataError
from components.core.paths import Paths

from builders.mlm_project import tiny_cfg, weights


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
    a, b = weights(tiny_project), weights(Paths.at(other))
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
    assert torch.equal(weights(tiny_project)["body.embeddings.tok.weight"], a["body.embeddings.tok.weight"])


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


def test_max_minutes_stop_is_reported_in_one_warning_line(tiny_project, capsys):
    import json

    from components.stages import pretrain

    # 0.00002 min = 1.2 ms: Lightning's Timer stops the run after its first step.
    summary = pretrain.run(tiny_cfg(max_steps=1000, max_minutes=0.00002), tiny_project)
    assert summary["stopped_by"] == "max_minutes" and summary["steps"] < 1000
    assert json.loads(tiny_project.report("pretrain").read_text())["stopped_by"] == "max_minutes"
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning: pretrain:")]
    assert "max_minutes" in line and "dvc repro -f" in line
