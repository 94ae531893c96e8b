"""dvc.yaml = the stage table; DVC setup; lineage hashes; determinism; remotes.

The drift tests read the repo's dvc.yaml through DVC itself, so a stage
added to components/stages/table.py without `python -m components.stages.dvcgraph`
(or a dvc.yaml edited by hand) fails here.
"""

from __future__ import annotations

import configparser

import pytest

from components.core import lineage
from components.stages import dvcgraph
from components.stages.table import NAMES, STAGES, Stage

from builders import flow_project as fp

REPO = fp.REPO


def test_dvc_yaml_is_rendered_from_the_stage_table():
    assert (REPO / "dvc.yaml").read_text(encoding="utf-8") == dvcgraph.render(), \
        "dvc.yaml is stale: run `python -m components.stages.dvcgraph`"


def test_dvc_parses_the_same_graph_as_the_stage_table():
    import networkx as nx
    import yaml
    from dvc.repo import Repo

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    with Repo(str(REPO)) as repo:
        dvc_stages = {s.name: s for s in repo.index.stages}
        graph = repo.index.graph  # edge: stage -> a stage it depends on
        assert set(dvc_stages) == set(NAMES)
        for st in STAGES:
            got = dvc_stages[st.name]
            assert got.cmd == f"encoderflow stage {st.name}"
            param_deps = [d for d in got.deps if d.def_path == "params.yaml"]
            assert [p for d in param_deps for p in d.params] == list(st.params)
            for section in st.params:  # a section, or one key of it ("register.model_name")
                head, _, key = section.partition(".")
                assert head in params and (not key or key in params[head]), section
            files = [d.def_path for d in got.deps if d.def_path != "params.yaml"]
            assert files == list(st.deps) + dvcgraph.code_deps(st)
            assert all((REPO / f).exists() for f in dvcgraph.code_deps(st))
            assert [o.def_path for o in got.outs if not o.metric and not o.plot] == list(st.outs)
            assert [o.def_path for o in got.outs if o.metric] == list(st.metrics)
            assert [o.def_path for o in got.outs if o.plot] == list(st.plots)
            assert all(not o.use_cache for o in got.outs if o.metric or o.plot)
            assert callable(st.load())  # the module the cmd runs exists
        # The flow runs STAGES in table order: that order must respect DVC's graph.
        order = {name: i for i, name in enumerate(NAMES)}
        for stage, upstream in graph.edges:
            assert order[upstream.name] < order[stage.name], (stage, upstream)
        up = {s.name for s in nx.descendants(graph, dvc_stages["tokenize"])}
        assert {"ingest", "validate"} <= up  # validate runs before tokenize


def test_code_deps_follow_imports_and_skip_plumbing(tmp_path):
    pkg = tmp_path / "components"
    for sub in ("model", "core", "stages"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")  # empty: no dep
    (pkg / "__init__.py").write_text('"""docstring only: plumbing"""\n')
    (pkg / "core" / "config.py").write_text("X = 1\n")
    (pkg / "core" / "errors.py").write_text("from components.core import paths\nclass E(Exception): ...\n")
    (pkg / "core" / "paths.py").write_text("import os\n")
    (pkg / "stages" / "table.py").write_text("STAGES = ()\n")
    (pkg / "stages" / "stage_a.py").write_text(
        "from components.core.errors import E\nfrom components.stages.table import STAGES\n"
        "def run(cfg, paths):\n    from components.model import net\n")
    (pkg / "model" / "net.py").write_text("from . import layers\nfrom components import helper\n")
    (pkg / "model" / "layers.py").write_text("import torch\n")
    (pkg / "helper.py").write_text("import os\n")
    (pkg / "unused.py").write_text("import os\n")
    stage = Stage("a", "components.stages.stage_a", (), (), ())
    # core/ (errors, and paths through it) and the stage table are plumbing; config.py is always a dep
    assert dvcgraph.code_deps(stage, tmp_path) == [
        "components/core/config.py", "components/helper.py", "components/model/layers.py",
        "components/model/net.py", "components/stages/stage_a.py"]


def test_repo_is_a_dvc_repo_with_a_local_default_remote():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".dvc" / "config")
    remote = cfg["core"]["remote"]
    assert cfg[f"'remote \"{remote}\"'"]["url"] == "../../encoderflow-dvc-remote"  # sibling folder
    assert cfg["core"]["analytics"] == "false" and cfg["core"]["check_update"] == "false"
    ignored = (REPO / ".dvc" / ".gitignore").read_text().split()
    assert {"/cache", "/tmp", "/config.local"} <= set(ignored)
    assert "__pycache__/" in (REPO / ".dvcignore").read_text()
    assert (REPO / "data" / "incoming" / ".gitkeep").is_file()  # ingest's dep exists in a clone


def test_dir_md5_equals_dvc_hash(tmp_path):
    root = fp.make(tmp_path / "p", n=8)
    folder = root / "data" / "incoming"
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("b\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"\0")  # .dvcignore'd: not hashed
    fp.sh(root, "git", "rm", "-r", "-q", "--cached", "data/incoming")
    fp.sh(root, "dvc", "add", "data/incoming")
    import yaml

    recorded = yaml.safe_load((root / "data" / "incoming.dvc").read_text())["outs"][0]["md5"]
    assert lineage.dir_md5(folder) == recorded
    assert lineage.dir_md5(root / "missing") == ""


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_repro_force_reproduces_the_flow_run_byte_for_byte(tmp_path_factory, tmp_path):
    root0, _ = fp.base(tmp_path_factory)  # outputs of `encoderflow run`
    root = fp.clone(root0, tmp_path / "p")
    # Every stage up to evaluate, forced (register only talks to the MLflow registry).
    out = fp.sh(root, "dvc", "repro", "-f", "evaluate")
    upto = NAMES[: NAMES.index("evaluate") + 1]
    assert all(f"Running stage '{n}'" in out.stdout for n in upto)
    metrics = "reports/metrics.json"
    assert (root / metrics).read_bytes() == (root0 / metrics).read_bytes()
    before, after = fp.lock(root0)["stages"], fp.lock(root)["stages"]
    for name in ("ingest", "tokenize"):  # data outputs: identical too
        assert after[name]["outs"] == before[name]["outs"]
    # Pretraining really ran again (no finished checkpoint is reused): a new MLflow run
    # that consumed tokens, and the same weights.
    import json

    old, new = (json.loads((r / "reports" / "pretrain.json").read_text()) for r in (root0, root))
    assert new["mlflow_run_id"] != old["mlflow_run_id"] and new["tokens_per_s"] is not None
    weights = [[o for o in lk["pretrain"]["outs"] if o["path"] == "models/pretrained"] for lk in (before, after)]
    assert weights[0] == weights[1] and weights[0]  # same encoder bytes (reports differ: run id, timing)


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_dvc_repro_from_nothing_matches_the_flow_run(tmp_path_factory, tmp_path):
    """Two projects built from nothing with the same data and params: one by
    `encoderflow run` (the flow), one by plain `dvc repro`. Same metrics.json, byte for byte."""
    root0, _ = fp.base(tmp_path_factory)
    root = fp.make(tmp_path / "fresh", n=96)
    assert (root / "params.yaml").read_bytes() == (root0 / "params.yaml").read_bytes()
    out = fp.sh(root, "dvc", "repro", "evaluate")
    assert "Running stage 'pretrain'" in out.stdout
    metrics = "reports/metrics.json"
    assert (root / metrics).read_bytes() == (root0 / metrics).read_bytes()


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_checkout_pull_repro_is_a_no_op(tmp_path_factory, tmp_path):
    """The README's "reproduce a run": git clone/checkout, dvc pull, dvc repro."""
    root = fp.clone(fp.base(tmp_path_factory)[0], tmp_path / "work")
    remote = tmp_path / "remote"
    fp.sh(root, "dvc", "remote", "add", "-d", "-f", "local", str(remote))
    fp.sh(root, "dvc", "push")
    fp.sh(root, "git", "add", "-A")
    fp.sh(root, "git", "commit", "-q", "-m", "run")
    sha = fp.sh(root, "git", "rev-parse", "HEAD").stdout.strip()

    clone = tmp_path / "clone"
    fp.sh(tmp_path, "git", "clone", "-q", str(root), str(clone))
    fp.sh(clone, "git", "checkout", "-q", sha)
    assert (clone / "reports" / "metrics.json").is_file()  # cache: false outputs live in git
    assert not (clone / "models").exists()
    fp.sh(clone, "dvc", "pull")
    assert fp.dvc_status(clone) == ""
    out = fp.sh(clone, "dvc", "repro")
    assert "Running stage" not in out.stdout


@pytest.mark.slow
@fp.RUNS_THE_FLOW
def test_plot_views_name_real_csv_columns(tmp_path_factory, tmp_path):
    import csv
    import json

    root = fp.clone(fp.base(tmp_path_factory)[0], tmp_path / "p")
    for path, view in dvcgraph.PLOT_VIEWS:
        with open(root / path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        ys = view["y"] if isinstance(view["y"], list) else [view["y"]]
        assert {view["x"], *ys} <= set(header), (path, header)
    shown = json.loads(fp.sh(root, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors")
    assert {"reports/pretrain_curve.csv", "dvc.yaml::reports/plots/confusion.csv",
            "reports/plots/confusion_matrix.png"} <= set(shown["data"])
