"""The import rules of ARCHITECTURE.md, checked on the source (nothing is imported).

core <- data <- model <- training/evaluation/registry <- stages <- flows:
- no stage module (components/stages/table.py STAGES) reaches another stage module through
  its imports, directly or through other files;
- components/model/ imports nothing from evaluation/, training/, registry/, stages/, flows/;
- components/model/tokens.py (the torch-free ONNX serving path imports it) reaches no torch;
- no import cycle between files.

The graph is components/core/imports.py's static walk: imports inside functions count,
imports under `if TYPE_CHECKING:` do not. Each failure names the files. The checkers are
tested on a tiny fake tree first, so a rule that stopped catching anything would fail here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

from components.core.imports import PROJECT_PACKAGES, imported_names, walk
from components.stages.table import STAGES

ROOT = Path(__file__).resolve().parents[2]
MODEL = "components.model"
ABOVE_MODEL = ("components.evaluation", "components.training", "components.registry", "components.stages",
               "flows")
TORCH_FREE = "components.model.tokens"


def module_files(root: Path, packages=PROJECT_PACKAGES) -> dict[str, Path]:
    """{module name: file} of every .py file under the packages (a package is its __init__.py)."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if path.name == "__init__.py" else parts)] = path
    return out


def import_graph(root: Path, packages=PROJECT_PACKAGES) -> nx.DiGraph:
    """module -> each project module it imports (edges carry nothing; nodes carry their file)."""
    files = module_files(root, packages)
    graph = nx.DiGraph()
    for name, path in files.items():
        graph.add_node(name, file=path.relative_to(root).as_posix())
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for imported in imported_names(ast.parse(path.read_text(encoding="utf-8")), package):
            if imported in files and imported != name:
                graph.add_edge(name, imported)
    return graph


def _file(graph: nx.DiGraph, name: str) -> str:
    return graph.nodes[name]["file"]


def _chain(graph: nx.DiGraph, names: list[str]) -> str:
    return " -> ".join(_file(graph, n) for n in names)


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def stage_violations(graph: nx.DiGraph, stage_modules) -> list[str]:
    """One line per stage module that reaches another one, with the import path."""
    stages = [m for m in stage_modules if m in graph]
    out = []
    for stage in stages:
        for other in stages:
            if other != stage and nx.has_path(graph, stage, other):
                out.append(f"stage imports stage: {_chain(graph, nx.shortest_path(graph, stage, other))}")
    return out


def model_violations(graph: nx.DiGraph) -> list[str]:
    """One line per import from components/model/ into a package above it."""
    return [f"model/ imports above it: {_file(graph, a)} imports {_file(graph, b)}"
            for a, b in sorted(graph.edges) if _inside(a, MODEL) and any(_inside(b, p) for p in ABOVE_MODEL)]


def cycle_violations(graph: nx.DiGraph) -> list[str]:
    """One line per import cycle (strongly connected set of files), with one loop through it."""
    out = []
    for files in nx.strongly_connected_components(graph):
        if len(files) > 1:
            loop = [a for a, _ in nx.find_cycle(graph.subgraph(files))]
            out.append(f"import cycle: {_chain(graph, loop + loop[:1])}")
    return sorted(out)


def torch_violations(root: Path, module: str) -> list[str]:
    """Third-party imports that would load torch (or numpy) with `module`."""
    seen, third = walk(root, [module], own=("components",))
    bad = sorted(third & {"torch", "numpy", "pytorch_lightning", "lightning", "torchmetrics"})
    files = sorted(p.relative_to(root).as_posix() for p in seen.values())
    return [f"{module} must stay torch-free, but its import walk ({', '.join(files)}) imports {', '.join(bad)}"] \
        if bad else []


# --- the checkers catch what they should (a tiny fake project) ---------------------------

def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


FAKE_OK = {
    "components/__init__.py": "",
    "components/core/__init__.py": "",
    "components/core/errors.py": "",
    "components/model/__init__.py": "",
    "components/model/net.py": "from components.core import errors\n",
    "components/model/tokens.py": "import tokenizers\n",
    "components/training/__init__.py": "",
    "components/training/fit.py": "from components.model import net\n",
    "components/stages/__init__.py": "",
    "components/stages/table.py": "",
    "components/stages/a.py": "from components.stages import table\n\ndef run():\n    from components.training.fit import x\n",
    "components/stages/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from components.stages import a\n",
    "flows/__init__.py": "",
}
FAKE_STAGES = ("components.stages.a", "components.stages.b")


def test_the_checkers_pass_a_clean_fake_tree(tmp_path):
    root = _write(tmp_path, FAKE_OK)
    graph = import_graph(root)
    assert graph.has_edge("components.stages.a", "components.training.fit")  # an import inside a function counts
    assert not graph.has_edge("components.stages.b", "components.stages.a")  # TYPE_CHECKING does not
    assert stage_violations(graph, FAKE_STAGES) == []
    assert model_violations(graph) == [] and cycle_violations(graph) == []
    assert torch_violations(root, "components.model.tokens") == []


def test_the_checkers_name_the_files_of_each_planted_violation(tmp_path):
    root = _write(tmp_path, {
        **FAKE_OK,
        # a stage reaching another stage through a training file, inside a function
        "components/training/fit.py": "from components.model import net\n\ndef f():\n    from components.stages import b\n",
        # model/ importing evaluation/ (and so closing a cycle with it), and torch behind tokens.py
        "components/evaluation/__init__.py": "",
        "components/evaluation/score.py": "from components.model.net import Net\n",
        "components/model/net.py": "import torch\nfrom components.evaluation.score import f\n",
        "components/model/tokens.py": "from components.model import net\n",
    })
    graph = import_graph(root)
    assert stage_violations(graph, FAKE_STAGES) == [
        "stage imports stage: components/stages/a.py -> components/training/fit.py -> components/stages/b.py"]
    assert model_violations(graph) == [
        "model/ imports above it: components/model/net.py imports components/evaluation/score.py"]
    assert cycle_violations(graph) in (
        ["import cycle: components/model/net.py -> components/evaluation/score.py -> components/model/net.py"],
        ["import cycle: components/evaluation/score.py -> components/model/net.py -> components/evaluation/score.py"])
    (torch,) = torch_violations(root, "components.model.tokens")
    assert "components/model/net.py" in torch and torch.endswith("imports torch")


# --- the real tree -----------------------------------------------------------------------

def test_no_stage_imports_another_stage():
    graph = import_graph(ROOT)
    assert {s.module for s in STAGES} <= set(graph)
    assert stage_violations(graph, [s.module for s in STAGES]) == []


def test_model_imports_nothing_above_it():
    assert model_violations(import_graph(ROOT)) == []


def test_no_import_cycle_between_files():
    assert cycle_violations(import_graph(ROOT)) == []


def test_tokens_is_torch_free():
    assert torch_violations(ROOT, TORCH_FREE) == []
