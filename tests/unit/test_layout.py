"""The layout the README's "Where things are" map describes is the tree on disk."""

from __future__ import annotations

import re
from pathlib import Path

from components.stages.table import NAMES, STAGES

ROOT = Path(__file__).resolve().parents[2]


def _map_text() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Where things are", 1)[1]
    return section.split("```", 2)[1]  # the code block right under the heading


def test_every_module_of_components_and_flows_is_on_the_readme_map():
    text = _map_text()
    named = set(re.findall(r"[a-z_]+", text))
    missing = []
    for package in ("components", "flows"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__init__.py":
                continue
            if path.stem not in named:
                missing.append(path.relative_to(ROOT).as_posix())
        for folder in (ROOT / package).iterdir():
            if folder.is_dir() and folder.name != "__pycache__" and f"{folder.name}/" not in text:
                missing.append(folder.relative_to(ROOT).as_posix() + "/")
    assert not missing, f"README's 'Where things are' map misses: {missing}"


def test_stage_folder_holds_one_module_per_stage_named_after_it():
    modules = {p.stem for p in (ROOT / "components" / "stages").glob("*.py")} - {"__init__"}
    assert modules == set(NAMES) | {"table", "dvcgraph"}
    assert all(s.module == f"components.stages.{s.name}" for s in STAGES)
