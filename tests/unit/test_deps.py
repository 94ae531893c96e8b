"""Declared dependencies and the lock file.

- Every third-party import of components/ and flows/ (any depth, lazy imports
  included) is a core dependency in pyproject.toml; every third-party import
  of tests/ is a core or dev dependency. Import names are mapped to
  distributions with importlib.metadata.packages_distributions().
- requirements/lock.txt (`make lock`) pins every package as name==version,
  covers every declared dependency, and is what the venv has (`make setup`).
- The registered model's pip requirements pin the lock's versions.

The walk is the project's own (components/core/imports.py), so it sees what
dvc.yaml and the registered pyfunc see.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

from components.core.imports import PROJECT_PACKAGES, imported_names, walk

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.!+_-]+)$")
SETUP = "run `make setup` (it installs requirements/lock.txt into the venv)"


def canon(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(extras: tuple[str, ...] = ()) -> set[str]:
    """Normalised names of pyproject's dependencies (+ the given extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return {canon(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r.strip()).group(0)) for r in reqs}


@cache
def providers() -> dict[str, list[str]]:
    return md.packages_distributions()


def modules(root: Path, packages=PROJECT_PACKAGES) -> list[str]:
    """Every module name under the packages (`components.model.io`, `flows`, ...)."""
    names = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def uncovered(tops: set[str], allowed: set[str]) -> dict[str, str]:
    """{import name: why} for the names no distribution in `allowed` provides."""
    bad = {}
    for top in sorted(tops):
        dists = providers().get(top)
        if not dists:
            bad[top] = "no installed distribution provides it"
        elif not {canon(d) for d in dists} & allowed:
            bad[top] = f"provided by {', '.join(sorted(set(dists)))}, not declared"
    return bad


def project_uncovered(root: Path, allowed: set[str]) -> dict[str, str]:
    """Third-party imports of every module of components/ and flows/ under `root` not in `allowed`."""
    _, third = walk(root, modules(root))
    return uncovered(third, allowed)


def where(root: Path, top: str, dirs=PROJECT_PACKAGES + ("tests",)) -> list[str]:
    """Files under `root` that import `top` (for the failure message)."""
    hits = []
    for d in dirs:
        for path in sorted((root / d).rglob("*.py")):
            names = imported_names(ast.parse(path.read_text(encoding="utf-8")), d)
            if any(n.split(".")[0] == top for n in names):
                hits.append(str(path.relative_to(root)))
    return hits


def explain(root: Path, bad: dict[str, str], scope: str) -> str:
    return (f"imports not declared in pyproject.toml ({scope}):\n"
            + "\n".join(f"  {top}: {why} (imported by {', '.join(where(root, top)[:4])})"
                        for top, why in bad.items()))


def lock_pins() -> dict[str, str]:
    """{normalised name: version} of requirements/lock.txt."""
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            m = PIN.match(line)
            assert m, f"{LOCK.name}: not name==version: {line!r}"
            pins[canon(m.group(1))] = m.group(2)
    return pins


def test_project_imports_are_core_dependencies():
    bad = project_uncovered(ROOT, declared())
    assert not bad, explain(ROOT, bad, "components/ and flows/ need core dependencies")


def test_test_imports_are_core_or_dev_dependencies():
    local = ({p.stem for p in (ROOT / "tests").rglob("*.py")}  # test modules (imported by name), builders'
             | {p.parent.name for p in (ROOT / "tests").rglob("__init__.py")} | {"tests", "benchmarks", *PROJECT_PACKAGES}
             | {p.stem for p in (ROOT / "docs").glob("*.py")})  # docs/render.py and its modules
    tops = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for name in imported_names(ast.parse(path.read_text(encoding="utf-8")), "tests"):
            top = name.split(".")[0]
            if top and top not in local and top not in sys.stdlib_module_names and top != "__future__":
                tops.add(top)
    bad = uncovered(tops, declared(("dev",)))
    assert not bad, explain(ROOT, bad, "tests/ need core or dev dependencies")


def test_an_undeclared_import_is_reported(tmp_path):
    """The check can fail: a lazy import of an undeclared distribution and an unknown module."""
    pkg = tmp_path / "components"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "fake.py").write_text("import torch\n\n\ndef later():\n    import numpy as np\n"
                                 "    from encoderflow_no_such_module import thing\n")
    bad = project_uncovered(tmp_path, {"torch"})
    assert set(bad) == {"numpy", "encoderflow_no_such_module"}, bad
    assert "not declared" in bad["numpy"] and "no installed" in bad["encoderflow_no_such_module"]
    assert project_uncovered(tmp_path, {"torch", "numpy"}) == {"encoderflow_no_such_module":
                                                                bad["encoderflow_no_such_module"]}


def test_lock_pins_every_package_exactly():
    pins = lock_pins()  # asserts every line is name==version
    missing = declared(("dev",)) - set(pins)
    assert not missing, f"{LOCK.name} lacks declared dependencies {sorted(missing)}: run `make lock`"
    assert pins["torch"] == "2.13.0", "torch is locked without a local label (the CPU wheel satisfies it)"
    assert not [n for n in pins if n.startswith("nvidia-")], "the CUDA torch was locked: run `make lock` here"
    assert {"pip", "setuptools"} <= set(pins), "pip and setuptools are pinned too (--allow-unsafe)"


def test_lock_rejects_a_loose_line(tmp_path, monkeypatch):
    bad = tmp_path / "lock.txt"
    bad.write_text("# header\nnumpy==2.4.6\n    # via pandas\ntorch>=2.2\n")
    monkeypatch.setattr(sys.modules[__name__], "LOCK", bad)
    try:
        lock_pins()
    except AssertionError as e:
        assert "torch>=2.2" in str(e)
    else:
        raise AssertionError("a loose requirement passed as a pin")


def test_venv_matches_the_lock():
    drift = {}
    for name, version in lock_pins().items():
        try:
            installed = md.version(name).split("+")[0]
        except md.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            drift[name] = f"{installed} installed, {version} locked"
    assert not drift, f"the venv differs from {LOCK.name}: {drift}; {SETUP}"


def test_registered_model_requirements_are_the_locked_versions():
    from components.registry import pyfunc

    _, third = pyfunc.inference_files(ROOT)
    reqs = pyfunc.pip_requirements(third)
    assert reqs, "the pyfunc pins nothing"
    pins = lock_pins()
    drift = {}
    for req in reqs:
        name, version = req.split("==")
        if pins.get(canon(name)) != version:
            drift[name] = f"model pins {version}, lock has {pins.get(canon(name), 'nothing')}"
    assert not drift, f"the registered model's pip requirements differ from {LOCK.name}: {drift}; {SETUP}"
