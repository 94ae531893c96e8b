"""DVC remotes as the hand-off between machines (README: "DVC remotes: the hand-off between machines").

Machine A: the tiny project after a real `encoderflow run`, with the project's default
remote (the sibling folder ../encoderflow-dvc-remote, as the repo's .dvc/config sets it),
committed and `dvc push`ed. Machine B: a fresh `git clone` of that commit in another
folder, whose committed remote URL does not reach A's folder, so B points it there in
`.dvc/config.local` (never committed; where credentials go too), then `dvc pull`.
B must be clean (`dvc status`, `git status`), `dvc repro` must run nothing and change no
byte, the pulled outputs must equal A's, and `encoderflow predict --model models/finetuned`
must give A's probabilities exactly, with no MLflow store on B.
"""

from __future__ import annotations

import configparser
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.stages.table import NAMES

from builders import flow_project as fp
from builders import tiny_pipeline

OUTPUTS = ("data", "models", "reports")  # DVC outputs (cached or `cache: false` in git)
LOCAL_STATE = ("mlflow.db", "mlartifacts", "checkpoints", ".prefect", ".encoderflow", ".dvc/cache")


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under the output folders, by path relative to `root` (not the GX Data
    Docs: validate rebuilds them on each run and neither git nor DVC tracks them)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for name in OUTPUTS for p in sorted((root / name).rglob("*"))
            if p.is_file() and not p.relative_to(root).as_posix().startswith("reports/data_docs/")}


def use_repo_dvc_config(root: Path) -> tuple[str, Path]:
    """Give `root` the repo's own .dvc/config (its default remote is a relative URL, resolved
    from .dvc/); returns (remote name, the folder it resolves to)."""
    text = (fp.REPO / ".dvc" / "config").read_text(encoding="utf-8")
    (root / ".dvc" / "config").write_text(text, encoding="utf-8")
    cfg = configparser.ConfigParser()
    cfg.read_string(text)
    name = cfg["core"]["remote"]
    return name, (root / ".dvc" / cfg[f"'remote \"{name}\"'"]["url"]).resolve()


def predict(root: Path, src: Path, out: Path) -> pd.DataFrame:
    res = fp.encoderflow(root, "predict", "--model", "models/finetuned", str(src), "-o", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"rows scored with models/finetuned -> {out}" in res.stdout
    return pd.read_csv(out)


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_push_clone_pull_is_clean_repro_is_a_no_op_and_predict_agrees(tmp_path_factory, tmp_path):
    # --- machine A: run, commit, push to the default (sibling) remote
    a = fp.clone(fp.base(tmp_path_factory)[0], tmp_path / "machine-a" / "proj")
    name, remote = use_repo_dvc_config(a)
    assert remote == tmp_path / "machine-a" / "encoderflow-dvc-remote"  # the project's sibling
    fp.sh(a, "git", "add", "-A")
    fp.sh(a, "git", "commit", "-q", "-m", "run")
    tracked = fp.sh(a, "git", "ls-files").stdout.split()
    assert not [f for f in tracked if f.startswith(LOCAL_STATE) or f.startswith(("models/", "data/prepared"))]
    pushed = fp.sh(a, "dvc", "push")
    assert "pushed" in pushed.stdout and remote.is_dir(), pushed.stdout

    # --- machine B: a fresh clone of that commit, elsewhere
    b = tmp_path / "machine-b" / "proj"
    fp.sh(tmp_path, "git", "clone", "-q", str(a), str(b))
    assert fp.sh(b, "git", "rev-parse", "HEAD").stdout == fp.sh(a, "git", "rev-parse", "HEAD").stdout
    assert not [n for n in LOCAL_STATE + ("models",) if (b / n).exists()]
    # B's committed URL resolves to its own (absent) sibling: point it at A's remote, locally
    fp.sh(b, "dvc", "remote", "modify", "--local", name, "url", str(remote))
    assert not (tmp_path / "machine-b" / "encoderflow-dvc-remote").exists()
    fp.sh(b, "dvc", "pull")
    assert fp.dvc_status(b) == ""
    assert fp.sh(b, "git", "status", "--porcelain").stdout == ""  # config.local is ignored
    assert digest(b) == digest(a)  # every output, byte for byte

    before = digest(b)
    out = fp.sh(b, "dvc", "repro")
    assert "Running stage" not in out.stdout, out.stdout
    assert all(f"Stage '{n}' didn't change, skipping" in out.stdout for n in NAMES), out.stdout
    assert digest(b) == before
    assert fp.dvc_status(b) == ""
    assert fp.sh(b, "git", "status", "--porcelain").stdout == ""

    # --- the same model on both machines: the same probabilities, exactly
    rows = tiny_pipeline.sentences(60, seed=11)
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": range(len(rows)), "text": [t for t, _ in rows]}).to_csv(src, index=False)
    got_a, got_b = predict(a, src, tmp_path / "out-a.csv"), predict(b, src, tmp_path / "out-b.csv")
    probs = [c for c in got_a.columns if c.startswith("prob_")]
    assert len(got_a) == len(rows) and len(probs) == 2
    assert np.array_equal(got_a[probs].to_numpy(), got_b[probs].to_numpy())
    assert (tmp_path / "out-a.csv").read_bytes() == (tmp_path / "out-b.csv").read_bytes()
    assert not (b / "mlflow.db").exists()  # a model folder needs no MLflow store
