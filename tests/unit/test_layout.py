"""The layout the "Where things are" map of docs/development.md describes is the tree on disk
(README.md's shorter map is checked in tests/integration/test_docs.py).

The map is a code block of folder rows ("  data/   sources.py and readers.py, ..."), nested by
two spaces, each followed by continuation rows indented to the description column. A folder's
files are the `name.py` words of its rows. Every module of components/ and flows/ must be
listed under its own folder, and every folder and file the map lists must exist.
"""

from __future__ import annotations

import re
from pathlib import Path

from components.stages.table import NAMES, STAGES

ROOT = Path(__file__).resolve().parents[2]
FOLDER_ROW = re.compile(r"^((?:  )*)([\w.-]+/)(?: |$)")  # indentation (2 spaces a level), "name/"
FILE = re.compile(r"(?<![\w./])[A-Za-z_]\w*\.py\b")
CHECKED = ("components", "flows")  # every module of these must be on the map


def _map_text() -> str:
    page = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    section = page.split("## Where things are", 1)[1]
    return section.split("```", 2)[1]  # the code block right under the heading


def readme_map(text: str) -> dict[str, set[str]]:
    """{folder path, e.g. "components/data": the file names its rows list}."""
    folders: dict[str, set[str]] = {}
    stack: list[str] = []
    current = None
    for line in text.splitlines():
        if not line.strip():
            continue
        row = FOLDER_ROW.match(line)
        if row:
            depth = len(row.group(1)) // 2
            assert depth <= len(stack), f"README map: {line.strip()!r} is nested under no folder"
            stack[depth:] = [row.group(2).rstrip("/")]
            current = "/".join(stack)
            folders[current] = set()
            line = line[row.end():]
        assert current is not None, f"README map: {line.strip()!r} comes before any folder"
        folders[current] |= set(FILE.findall(line))
    return folders


def test_the_map_parser_reads_folders_nesting_and_file_names():
    text = ("a/        one.py and two.py (the two_py.txt is no module)\n"
            "  b/      three.py,\n"
            "          four.py / five.py\n"
            "c/        run(cfg) -> dict; none here\n")
    assert readme_map(text) == {"a": {"one.py", "two.py"}, "a/b": {"three.py", "four.py", "five.py"},
                                "c": set()}


def test_every_path_on_the_readme_map_exists():
    listed = readme_map(_map_text())
    missing = [f"{folder}/" for folder in listed if not (ROOT / folder).is_dir()]
    missing += [f"{folder}/{name}" for folder, names in listed.items() for name in sorted(names)
                if not (ROOT / folder / name).is_file()]
    assert not missing, f"README's 'Where things are' map lists paths that do not exist: {missing}"


def test_every_module_of_components_and_flows_is_on_the_readme_map_in_its_folder():
    listed = readme_map(_map_text())
    missing = []
    for package in CHECKED:
        for folder in sorted({p.parent for p in (ROOT / package).rglob("*.py")}):
            rel = folder.relative_to(ROOT).as_posix()
            if rel not in listed:
                missing.append(f"{rel}/")
                continue
            modules = {p.name for p in folder.glob("*.py")} - {"__init__.py"}
            missing += [f"{rel}/{name}" for name in sorted(modules - listed[rel])]
    assert not missing, f"README's 'Where things are' map misses: {missing}"


def test_stage_folder_holds_one_module_per_stage_named_after_it():
    modules = {p.stem for p in (ROOT / "components" / "stages").glob("*.py")} - {"__init__"}
    assert modules == set(NAMES) | {"table", "dvcgraph"}
    assert all(s.module == f"components.stages.{s.name}" for s in STAGES)
