"""The evaluate stage on a fine-tuned tiny model (builders/cls_project.py): metrics.json is flat
and deterministic, logged to MLflow with its plots; a model with other labels is refused.
The metrics, baselines, behaviour checks and plots alone are tests/unit/test_evaluate.py."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_evaluate_stage_is_flat_deterministic_and_logged(project):
    import mlflow

    from components.core.config import EvaluateConfig
    from components.stages import evaluate, finetune

    from builders import cls_project as cp

    paths = cp.make_project(project)
    cfg = cp.tiny_params(max_epochs=1)
    cfg = type(cfg)(**{**cfg.__dict__, "evaluate": EvaluateConfig(bootstrap_samples=50, ece_bins=5,
                                                                   random_init_baseline=True)})
    cp.save_pretrained(cfg, paths)
    finetune.run(cfg, paths)
    evaluate.run(cfg, paths)
    first = paths.report("metrics").read_bytes()
    summary = evaluate.run(cfg, paths)
    assert paths.report("metrics").read_bytes() == first  # same seed, same bytes

    m = json.loads(first)
    assert list(m) == sorted(m)
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in m.values())
    assert all(round(v, 6) == v for v in m.values())
    for key in ("model.accuracy", "model.macro_f1", "model.accuracy_ci_low", "model.accuracy_ci_high",
                "model.roc_auc", "model.log_loss", "model.ece", "model.precision.positive",
                "model.recall.negative", "baseline.majority.accuracy", "baseline.tfidf_lr.accuracy",
                "baseline.nbsvm.accuracy", "baseline.random_init.accuracy",
                "behaviour.invariance_numbers.pass_rate", "behaviour.directional_append.pass_rate"):
        assert key in m, key
    assert m["baseline.tfidf_lr.accuracy"] > m["baseline.majority.accuracy"]
    assert {"confusion_matrix.png", "reliability.png", "finetune_curve.png", "confusion.csv",
            "reliability.csv"} <= set(summary["plots"])
    assert "pretrain_curve.png" not in summary["plots"]  # no reports/pretrain_curve.csv here

    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(cfg.project.experiment).experiment_id],
                              "tags.`encoderflow.stage` = 'evaluate'")
    assert len(runs) == 2
    assert runs[0].data.metrics["model.accuracy"] == pytest.approx(m["model.accuracy"])
    assert "random_init-train_loss_epoch" in runs[0].data.metrics  # the baseline's training curve
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "plots")}
    assert "plots/confusion_matrix.png" in artifacts


def test_evaluate_refuses_a_model_with_other_labels(project):
    from components.core.errors import DataError
    from components.stages import evaluate
    from components.training.fit_classifier import train_classifier

    from builders import cls_project as cp

    paths = cp.make_project(project, n_train=16, n_val=8, n_test=8)
    cfg = cp.tiny_params(max_epochs=1, init="random")
    clf = train_classifier(cfg, paths, progress=False)
    clf.labels = ["bad", "good"]
    clf.save(paths.finetuned)
    with pytest.raises(DataError, match="labels"):
        evaluate.score_all(cfg, paths)
