"""register stage: log every model of the run as an MLflow pyfunc, run each one's gate.

Registered models (components/registry/candidates.py), each with its own @champion /
@challenger and audit trail: `register.model_name` is the student (models/finetuned, what
serving loads by default), "<model_name>-static" the static student (models/finetuned_static,
when finetune trained one), "<model_name>-teacher" the fine-tuned teacher (models/teacher),
and "<model_name>-baseline" evaluate's best bag-of-words baseline (models/baseline), which is
registered only when no neural model of the run reaches it, so the user still leaves with the
best model of the run (one line says so).

1. Check the registry answers (fail fast, no alias touched if not).
2. In the register MLflow run: with register.serving onnx (the default) export each neural
   model to ONNX (registry/onnx_export.py) and compare it with torch on the test split: a
   probability or vector off by more than register.onnx_tolerance stops the stage before
   anything is registered. Then log each pyfunc (the torch-free ONNX pyfunc over that
   export, registry/onnx_pyfunc.py; with register.serving torch the torch pyfunc; the
   baseline's is registry/bow_pyfunc.py; code_paths = only the inference modules, explicit
   pinned pip requirements, signature with a `text` column and an `output` param),
   registering a new version. The teacher only when its folder changed since its newest
   registered version (tag `encoderflow.model_md5`, DVC's hash of the folder); an identical
   teacher that already went through the gate is skipped with one logged line.
3. Tag each version with its lineage (git, dvc.lock, data, tokenizer, stage run ids, Prefect
   flow run, model_md5) and describe it with a metrics table vs the baselines; the students
   name their teacher (`encoderflow.teacher_*`).
4. Gate (components/evaluation/gate.py), the same rules for every model: re-score that
   model's @champion and the new version on the current test split, with floors at
   register.floor_accuracy and (register.floor_vs_baselines) every baseline the run scored:
   TF-IDF+LR, NB-LR and model2vec. Every score is computed before any alias moves.
5. Write reports/register.json (the student's version and decision at the top, the others
   under "static", "teacher" and "baseline").
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from components.core.config import RETRIEVAL_METRICS, Params
from components.core.errors import DataError
from components.core.paths import Paths
from components.model.io import CONFIG
from components.registry.candidates import Candidate, read_json as _read_json
from components.registry.publish import MD5_TAG, TABLE_METRICS, lineage_tags, log_pyfunc
from components.stages import table

STAGE = "register"


def _score(uri: str, texts: list[str], names: list, metric: str = "accuracy", labels: list[str] = (),
           positive: str | None = None):
    """What the gate compares for `metric` (gate.score_rows: 0/1 correctness per test row, or
    per-row F1 counts) of the registered model at `uri` (one-line error if it fails)."""
    from components.core.errors import EncoderflowError
    from components.evaluation import gate
    from components.registry.client import _short
    from components.registry.load import load_model

    try:
        model = load_model(uri)  # mlflow.pyfunc.load_model, without a server's warm-up
        return gate.score_rows(model, texts, names, metric, labels, positive=positive)
    except Exception as e:  # noqa: BLE001 - a broken version must not leave a traceback
        raise EncoderflowError(f"cannot score {uri} on the test split ({_short(e)}); no alias was changed",
                               stage=STAGE) from None


def registered_copy(client, cand: Candidate, md5: str) -> str | None:
    """The newest version of cand.name when it holds this very folder (tag encoderflow.model_md5
    equal to `md5`) and its gate finished (tag gate.decision); else None."""
    from components.registry import client as registry

    mv = registry.latest_version(client, cand.name)
    tags = (mv.tags or {}) if mv is not None else {}
    return str(mv.version) if md5 and tags.get(MD5_TAG) == md5 and tags.get("gate.decision") else None


def publish(paths: Paths, client, cand: Candidate, metrics: dict) -> None:
    """Log + register cand's pyfunc in the active run, then tag it (description comes later)."""
    kind = cand.meta.get("backbone", {}).get("kind", "")
    info = log_pyfunc(paths, cand.name, list(cand.meta["labels"]), kind, folder=cand.folder,
                      artifact_name=cand.artifact, task=cand.meta.get("task", "single_label"),
                      bi_encoder="bi_encoder" in cand.meta, flavor=cand.flavor, onnx_folder=cand.onnx)
    cand.version = str(info.registered_model_version)
    cand.tags.update({"encoderflow.role": cand.role})
    cand.tags.update({f"metric.{m}": f"{metrics[f'{cand.prefix}.{m}']:.4f}" for m in TABLE_METRICS
                      if f"{cand.prefix}.{m}" in metrics})
    for key, value in cand.tags.items():
        client.set_model_version_tag(cand.name, cand.version, key, value)


def export_onnx(rc, cand: Candidate, texts: list, work: Path) -> None:
    """register.serving onnx: export cand's folder into work/<role> and hold the export to torch
    on the test texts, before anything is registered (refused above register.onnx_tolerance)."""
    from components.registry import onnx_export
    from components.registry.onnx_runtime import OnnxClassifier

    clf = onnx_export.load_torch(cand.folder)
    out = work / cand.role
    onnx_export.export_classifier(clf, out, what=str(cand.folder))
    check = onnx_export.parity(clf, OnnxClassifier(out), texts)
    worst = max(check.prob_diff, check.embed_diff)
    if not check.ok(rc.onnx_tolerance):
        raise DataError(f"register.serving is onnx, but the ONNX export of {cand.folder} differs from torch by "
                        f"{worst:.2e} on the test split ({check.describe()}; register.onnx_tolerance "
                        f"{rc.onnx_tolerance:g}): nothing registered, no alias moved", stage=STAGE)
    cand.onnx = out
    cand.tags.update({"encoderflow.serving": "onnx", "encoderflow.onnx_parity": f"{worst:.2e}"})


def judge(client, cand: Candidate, texts: list[str], names: list, rc, floors: dict, seed: int,
          metric: str = "accuracy") -> None:
    """Score cand's new version and its model's @champion on the test split; set cand.decision.
    recall_at_10: both retrieve the partners of the test pairs labelled with cand's positive."""
    from components.evaluation import gate
    from components.registry import client as registry

    labels = list(cand.meta.get("labels", ()))
    positive = cand.meta.get("bi_encoder", {}).get("positive")
    champion = registry.aliases(registry.get_model(client, cand.name)).get(registry.CHAMPION)
    new_correct = _score(cand.uri, texts, names, metric, labels, positive)
    champ_correct = _score(f"models:/{cand.name}/{champion}", texts, names, metric, labels, positive) \
        if champion else None
    cand.decision = gate.decide(new_correct, champ_correct, champion_version=champion,
                                min_gain=rc.min_gain, floor_accuracy=rc.floor_accuracy,
                                floors=floors, samples=rc.bootstrap_samples, seed=seed, metric=metric)


def apply(client, cand: Candidate) -> dict:
    """Record cand's gate decision in the run and on the version, move the alias; its report."""
    import mlflow

    from components.registry import client as registry

    d, pre = cand.decision, cand.run_prefix
    numbers = {k: v for k, v in d.as_dict().items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None}
    mlflow.log_metrics({f"{pre}gate.{k}": float(v) for k, v in numbers.items()})
    mlflow.set_tags({f"{pre}gate.decision": d.alias, f"{pre}gate.version": cand.version,
                     f"{pre}gate.reason": d.reason[:500]})
    mlflow.log_dict(d.as_dict(), f"gate/{pre}decision.json")
    client.set_model_version_tag(cand.name, cand.version, "gate.decision", d.alias)
    registry.set_alias(client, cand.name, d.alias, cand.version, action="gate", by="gate",
                       note=d.reason, numbers=numbers)
    return {"model_name": cand.name, "version": cand.version, "model_uri": cand.uri, "decision": d.alias,
            "reason": d.reason, "gate": d.as_dict(), "tags": cand.tags}


def _test_rows(paths: Paths) -> tuple[list[str], list]:
    """Test texts and their label names (multi_label: a list of names per row; pair: texts
    are (text, text_pair) tuples)."""
    import pandas as pd

    if not paths.split("test").is_file():
        raise DataError(f"{paths.split('test')}: not found (run ingest first)", stage=STAGE)
    import pyarrow.parquet as pq

    pair = "text_pair" in pq.read_schema(paths.split("test")).names  # pair: (text, text_pair) tuples
    test = pd.read_parquet(paths.split("test"), columns=["text", "text_pair", "label_name"] if pair
                           else ["text", "label_name"])
    if len(test) == 0:
        raise DataError(f"{paths.split('test')}: no rows to score the gate on", stage=STAGE)
    if pair:
        return (list(zip(test["text"].astype(str), test["text_pair"].astype(str))),
                test["label_name"].astype(str).tolist())
    if test["label_name"].dtype == object and len(test) and not isinstance(test["label_name"].iloc[0], str):
        return test["text"].astype(str).tolist(), [[str(n) for n in v] for v in test["label_name"]]
    return test["text"].astype(str).tolist(), test["label_name"].astype(str).tolist()


def gate_metric(cfg: Params, paths: Paths) -> str:
    """register.metric (or the task's default), checked against the data's task (labels.json)."""
    from components.core.config import GATE_METRICS
    from components.core.errors import ConfigError
    from components.data.labels import read_task

    task = read_task(paths.labels, stage=STAGE)
    allowed = GATE_METRICS[task]
    metric = cfg.register.metric or allowed[0]
    if metric not in allowed:
        raise ConfigError(f"register.metric: expected one of {', '.join(allowed)} for the {task} data in "
                          f"{paths.labels.relative_to(paths.root) if paths.root in paths.labels.parents else paths.labels}"
                          f", got {metric!r}")
    return metric


def beats_baselines(cand: Candidate, metrics: dict, floors: dict, metric: str) -> bool:
    """Whether a neural model of the run reaches every baseline floor: its gate's floor checks,
    or (a teacher skipped as unchanged) its score in metrics.json."""
    if cand.decision is not None:
        return all(ok for name, ok in cand.decision.checks.items() if name.startswith("floor_vs_"))
    score = metrics.get(f"{cand.prefix}.{metric}")
    return score is not None and all(score >= v for v in floors.values())


def run(cfg: Params, paths: Paths) -> dict:
    import mlflow

    from components.core import lineage, tracking
    from components.core.atomic import write_json
    from components.evaluation import gate
    from components.registry import candidates
    from components.registry import client as registry

    rc = cfg.register
    metric = gate_metric(cfg, paths)
    metrics = _read_json(paths.report("metrics"))
    student = candidates.student(paths, rc.model_name)
    if metric in RETRIEVAL_METRICS and "bi_encoder" not in student.meta:
        raise DataError(f"{paths.finetuned / CONFIG}: no bi-encoder to score register.metric {metric} "
                        "(re-run finetune with finetune.bi_encoder.enabled: true)", stage=STAGE)
    floors = gate.baseline_floors(metrics, metric) if rc.floor_vs_baselines else {}
    if rc.floor_vs_baselines and gate.tfidf_key(metric) not in metrics:  # every run scores TF-IDF
        raise DataError(f"{paths.report('metrics')}: key '{gate.tfidf_key(metric)}' not found (needed by "
                        "register.floor_vs_baselines; set it to false to skip those floors)", stage=STAGE)
    static = candidates.static(paths, rc.model_name, metrics) if metric not in RETRIEVAL_METRICS else None
    teacher = candidates.teacher(paths, rc.model_name, metrics)
    baseline = candidates.baseline(paths, rc.model_name) if metric not in RETRIEVAL_METRICS else None
    texts, names = _test_rows(paths)

    client = registry.connect(cfg.project, paths.root)  # one-line error if unreachable
    for name in (student.name, f"{rc.model_name}-static", registry.teacher_name(rc.model_name),
                 f"{rc.model_name}-baseline"):
        registry.sync(client, name)
    teacher_report: dict = {"model_name": registry.teacher_name(rc.model_name), "enabled": teacher is not None,
                            "registered": False}
    if teacher is None:
        teacher_report["reason"] = "no teacher model (teacher.enabled: false, or no models/teacher)"
    else:
        teacher.md5 = lineage.dir_md5(teacher.folder)
        teacher_report["model_md5"] = teacher.md5
        same = registered_copy(client, teacher, teacher.md5)
        if same:
            teacher.version = same
            teacher_report.update(version=same, model_uri=teacher.uri, decision="skipped",
                                  reason=f"models/teacher unchanged since version {same} "
                                         f"({MD5_TAG} {teacher.md5})")
            print(f"register: {teacher.name}: {teacher_report['reason']}; not registered again", flush=True)
    neural = [c for c in (teacher, static, student) if c is not None]
    to_register = [c for c in neural if c.version is None]

    with tracking.stage_run(cfg, STAGE, paths.root, table.get(STAGE).params) as run, \
            tempfile.TemporaryDirectory(prefix="encoderflow-onnx-") as work:
        exp, run_id = run.info.experiment_id, run.info.run_id
        for cand in to_register if rc.serving == "onnx" else ():  # every export checked before any registers
            export_onnx(rc, cand, texts, Path(work))

        def register_all(cands: list[Candidate]) -> None:
            for cand in cands:  # the teacher first: the students' tags name its version
                cand.tags.update(lineage_tags(paths, client, exp, run_id, cand.folder, cand.stages))
                if cand.role == "teacher":
                    cand.tags.update(candidates.teacher_tags(cand, metrics))
                elif teacher is not None and cand.role != "baseline":
                    cand.tags.update({**candidates.teacher_tags(teacher, metrics),
                                      "encoderflow.teacher_version": teacher.version})
                publish(paths, client, cand, metrics)
            for cand in cands:
                client.update_model_version(cand.name, cand.version, description=candidates.description(
                    cand, metrics, student.name, teacher))

        register_all(to_register)
        t0 = time.perf_counter()  # time.compute_s: the gates (load + score both versions, bootstrap)
        for cand in to_register:  # every score before any alias moves
            judge(client, cand, texts, names, rc, floors, cfg.project.seed, metric)
        baseline_note = ""
        if baseline is not None and not any(beats_baselines(c, metrics, floors, metric) for c in neural):
            best = f"{baseline.init} {metrics.get(f'{baseline.prefix}.{metric}', float('nan')):.4f}"
            others = ", ".join(f"{c.role} {metrics.get(f'{c.prefix}.{metric}', float('nan')):.4f}" for c in neural)
            baseline_note = (f"no neural model of this run beats every baseline on test ({others}): registering "
                             f"the baseline with the best val {metric}, {best} on test, as {baseline.name}")
            print(f"register: {baseline_note}", flush=True)
            register_all([baseline])
            # no baseline floors: it was picked among them on val (its champion and floor_accuracy still apply)
            judge(client, baseline, texts, names, rc, {}, cfg.project.seed, metric)
            to_register.append(baseline)
        compute_s = time.perf_counter() - t0
        reports = {cand.role: apply(client, cand) for cand in to_register}
        mlflow.log_metric("time.compute_s", compute_s)
        if "teacher" in reports:
            teacher_report.update(registered=True, **reports["teacher"])
        mlflow.set_tags({"teacher.registered": str(teacher_report["registered"]).lower(),
                         "teacher.note": teacher_report.get("reason", "")[:500],
                         "baseline.note": baseline_note[:500]})
        report = {**reports["student"], "run_id": run_id, "teacher": teacher_report,
                  "flow_run_id": os.environ.get("ENCODERFLOW_FLOW_RUN_ID", "")}
        if static is not None:
            report["static"] = reports["static"]
        report["baseline"] = reports.get("baseline") or {"registered": False, "reason": "a neural model of the "
                                                         "run beats every baseline" if baseline else "no baseline"}
        if baseline_note:
            report["baseline"]["note"] = baseline_note
        write_json(paths.report(STAGE), report)
        mlflow.log_artifact(str(paths.report(STAGE)), "gate")
    out = {"version": student.version, "decision": student.decision.alias,
           "accuracy": round(student.decision.accuracy, 4)}
    if metric != "accuracy":  # the value above is of this metric (gate.Decision)
        out = {"version": student.version, "decision": student.decision.alias, "metric": metric,
               metric: round(student.decision.accuracy, 4)}
    if static is not None:
        out.update(static_version=static.version, static_decision=static.decision.alias)
    if teacher is not None:
        out.update(teacher_version=teacher.version, teacher_decision=teacher_report["decision"])
    if "baseline" in reports:
        out.update(baseline_version=baseline.version, baseline_decision=baseline.decision.alias)
    return out
