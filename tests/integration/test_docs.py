"""The docs site builds with `mkdocs build --strict`, and the README is a front door that
matches the CLI: its commands, options and map are the ones in the code and on disk."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, env=env, timeout=300)


def copy_site_sources(dst: Path) -> Path:
    """mkdocs.yml, docs/ and reports/ (the plots the pages embed) in a scratch folder."""
    shutil.copy(ROOT / "mkdocs.yml", dst / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", dst / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "reports", dst / "reports")
    return dst


def test_the_site_builds_strict(tmp_path):
    out = mkdocs_build(ROOT, tmp_path / "site")
    assert out.returncode == 0, out.stderr[-3000:]
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    for name in ("data", "tasks", "model", "results", "teams", "performance", "failure-modes", "security",
                 "development", "usage"):
        assert f"{name}/index.html" in pages, f"no page {name} in the built site: {sorted(pages)}"
    assert "index.html" in pages


@pytest.mark.parametrize("breakage, expected", [
    ("See [the frontier](nowhere.md).", "nowhere.md"),
    ("See [the frontier](results.md#no-such-heading).", "no-such-heading"),
    ("![a plot](../reports/plots/not-there.png)", "not-there.png"),
])
def test_a_broken_link_fails_the_build(tmp_path, breakage, expected):
    root = copy_site_sources(tmp_path)
    page = root / "docs" / "data.md"
    page.write_text(page.read_text(encoding="utf-8") + f"\n{breakage}\n", encoding="utf-8")
    out = mkdocs_build(root, tmp_path / "site")
    assert out.returncode != 0
    assert expected in out.stderr


def test_a_page_left_out_of_the_nav_fails_the_build(tmp_path):
    root = copy_site_sources(tmp_path)
    (root / "docs" / "orphan.md").write_text("# Orphan\n", encoding="utf-8")
    out = mkdocs_build(root, tmp_path / "site")
    assert out.returncode != 0 and "orphan.md" in out.stderr


def test_a_plot_of_reports_is_served_from_the_page_link_github_uses(tmp_path):
    root = copy_site_sources(tmp_path)
    (root / "reports" / "plots").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "reports" / "plots" / "reliability.png", root / "reports" / "plots" / "frontier-test.png")
    page = root / "docs" / "results.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n![x](../reports/plots/frontier-test.png)\n",
                    encoding="utf-8")
    out = mkdocs_build(root, tmp_path / "site")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "reports" / "plots" / "frontier-test.png").is_file()
    html = (tmp_path / "site" / "results" / "index.html").read_text(encoding="utf-8")
    assert 'src="../reports/plots/frontier-test.png"' in html


# --------------------------------------------------------------------------- the README


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_readme_is_a_short_front_door():
    lines = readme().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; depth belongs in docs/"
    first_screen = "\n".join(lines[:20])
    for anchor, heading in (("#quick-start", "## Quick start"),
                            ("#three-things-you-do-with-it", "## Three things you do with it"),
                            ("#where-things-are", "## Where things are")):
        assert f"]({anchor})" in first_screen, f"the first screen does not link {anchor}"
        assert heading in lines, f"no heading {heading!r}"


def test_readme_links_point_at_pages_and_headings_that_exist():
    text = readme()
    headings = {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", text, re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith("http"):
            continue
        path, _, anchor = target.partition("#")
        if path:
            assert (ROOT / path).is_file(), f"README links {target}, which does not exist"
            if anchor:
                page = (ROOT / path).read_text(encoding="utf-8")
                page_headings = {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-")
                                 for h in re.findall(r"^#+ (.+)$", page, re.M)}
                assert anchor in page_headings, f"README links {target}: no such heading in {path}"
        else:
            assert anchor in headings, f"README links #{anchor}, which is no heading of README.md"


def cli_commands() -> dict:
    from flows.cli import app

    return dict(typer.main.get_command(app).commands)


def test_readme_commands_table_is_the_cli():
    commands = cli_commands()
    rows = [r for r in section(readme(), "## Commands").splitlines() if r.startswith("| `encoderflow")]
    named: set[str] = set()
    for row in rows:
        usage = row.split("|")[1]
        for part in re.findall(r"`encoderflow ([^`]+)`", usage):
            name = part.split()[0]
            assert name in commands, f"README names `encoderflow {name}`, which is no command"
            named.add(name)
            opts = {o for p in commands[name].params for o in p.opts}
            for opt in re.findall(r"(?<![\w-])(-{1,2}[a-z][\w-]*)", part):
                assert opt in opts, f"README gives `encoderflow {name} {opt}`; its options are {sorted(opts)}"
    assert named == set(commands), f"README's commands table misses {sorted(set(commands) - named)}"


def test_readme_says_which_commands_take_params_and_set():
    commands = cli_commands()
    without = {name for name, cmd in commands.items() if "--set" not in {o for p in cmd.params for o in p.opts}}
    assert without == {"schedule", "deploy"}, "update the sentence under README's ## Commands"
    assert "work on every\ncommand but `schedule` and `deploy`" in readme()


def test_readme_map_names_every_top_level_folder_and_component_package():
    block = section(readme(), "## Where things are").split("```")[1]
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    folders = {line.split("/", 1)[0] for line in tracked.splitlines() if "/" in line}
    missing = [f"{f}/" for f in sorted(folders) if not re.search(rf"^{re.escape(f)}/", block, re.M)]
    packages = [p.name for p in (ROOT / "components").iterdir() if p.is_dir() and p.name != "__pycache__"]
    missing += [f"components/{p}/" for p in sorted(packages) if not re.search(rf"^  {p}/", block, re.M)]
    assert not missing, f"README's map misses {missing}"


def test_prose_lines_stay_readable():
    """Lines under ~200 characters, except table rows (a markdown row cannot wrap)."""
    long = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if len(line) > 200 and not line.startswith("|"):
                long.append(f"{page.relative_to(ROOT)}:{n} ({len(line)} characters)")
    assert not long, long
