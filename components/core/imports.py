"""Static import walks over the project's own source (no module is imported).

Three users, one walker:
- dvc.yaml's code deps: the `components` files a stage module reaches
  (components/stages/dvcgraph.py);
- the registered pyfunc: the files it ships as code_paths and the third-party
  distributions it pins (components/registry/pyfunc.py);
- tests/test_deps.py: every third-party import is a declared dependency.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PROJECT_PACKAGES = ("components", "flows")


def module_file(root: Path, name: str) -> Path | None:
    """`components.model.io` -> ROOT/components/model/io.py (or a package's __init__.py)."""
    base = Path(root).joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(tree: ast.AST, package: str) -> list[str]:
    """Absolute module names an AST imports, at any depth (lazy imports too).

    `from a import b` yields "a" and "a.b" (b may be a submodule). Relative
    imports resolve against `package`. Imports under `if TYPE_CHECKING:` are
    skipped: they never run.

    >>> imported_names(ast.parse("from .io import save\\nimport os.path"), "components.model")
    ['components.model.io', 'components.model.io.save', 'os.path']
    """
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            names.append(base)
            names.extend(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def walk(root: Path, entries: tuple[str, ...] | list[str],
         own: tuple[str, ...] = PROJECT_PACKAGES) -> tuple[dict[str, Path], set[str]]:
    """Follow imports from `entries` through the packages in `own`.

    Returns ({module name: file} of every own module reached, parent packages
    included; the top-level names of the third-party modules imported).
    """
    root = Path(root)
    seen: dict[str, Path] = {}
    third: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(root, name)
        if path is None:  # `from pkg import function`: not a module
            continue
        seen[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        for imported in imported_names(ast.parse(path.read_text(encoding="utf-8")), package):
            top = imported.split(".")[0]
            if top in own:
                todo.append(imported)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return seen, third
