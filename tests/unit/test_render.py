"""Results that cannot drift: docs/render.py renders the docs' numbers from the run's own files,
the committed pages equal a fresh rendering, and each table names its commit, date and CPU."""

from __future__ import annotations

import doctest
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINEAGE = {"git_commit": "abc1234def5678", "git_dirty": False, "date": "2026-12-07T12:00:00+00:00",
           "cpu": "AMD EPYC 9R14", "bf16": True, "threads": 2, "torch": "2.13.0"}
FRONTIER = {
    "lineage": LINEAGE,
    "conditions": {"batch_size": 64, "rounds": 3, "n_texts": 1296, "single_text_samples": 200},
    "models": [
        {"name": "majority", "role": "baseline", "registered_as": None, "served": None, "accuracy": 0.568,
         "accuracy_ci": [0.543, 0.595], "macro_f1": 0.362, "texts_per_s": None, "p50_ms": None, "params": None,
         "disk_mb": None, "train_s": None, "pareto": False},
        {"name": "nbsvm", "role": "baseline", "registered_as": None, "served": "sklearn", "accuracy": 0.768,
         "accuracy_ci": [0.745, 0.791], "macro_f1": 0.759, "texts_per_s": 9100.0, "p50_ms": 0.4,
         "params": 150000, "disk_mb": 1.2, "train_s": 16.0, "pareto": True},
        {"name": "teacher", "role": "teacher", "registered_as": "encoderflow-teacher", "served": "torch",
         "accuracy": 0.829, "accuracy_ci": [0.808, 0.849], "macro_f1": 0.827, "texts_per_s": 180.2, "p50_ms": 11.9,
         "params": 22713216, "disk_mb": 86.7, "train_s": 311.0, "pareto": True}]}


@pytest.fixture(scope="module")
def render(request):
    """docs/render.py and its helpers, imported the way `python docs/render.py` imports them."""
    sys.path.insert(0, str(ROOT / "docs"))
    request.addfinalizer(lambda: sys.path.remove(str(ROOT / "docs")))
    import render

    return render


def write(root: Path, rel: str, data) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def page(root: Path, *blocks: str, name: str = "docs/page.md") -> Path:
    body = "\n\n".join(f"<!-- render:{b} -->\nstale\n<!-- /render:{b} -->" for b in blocks)
    return write(root, name, f"# A page\n\n{body}\n")


def rendered(render, root: Path, *blocks: str) -> str:
    p = page(root, *blocks)
    assert render.render(root, check=False) == ["docs/page.md"]
    return p.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the committed pages


def test_committed_pages_equal_a_fresh_rendering(render):
    stale = render.render(ROOT, check=True)
    assert stale == [], f"rendered blocks out of date in {stale}: run `python docs/render.py` and commit"


def test_committed_pages_hold_no_unrendered_block(render):
    for p in render.pages(ROOT):
        assert "\nstale\n" not in p.read_text(encoding="utf-8"), p


def test_check_mode_names_the_stale_page_and_exits_1(tmp_path):
    for rel in ("README.md", "docs"):
        src = ROOT / rel
        shutil.copytree(src, tmp_path / rel) if src.is_dir() else shutil.copy(src, tmp_path / rel)
    shutil.copytree(ROOT / "reports", tmp_path / "reports")
    results = tmp_path / "docs" / "results.md"
    acc = f"| {json.loads((ROOT / 'reports' / 'metrics.json').read_text())['model.accuracy']:.3f} |"
    page = results.read_text(encoding="utf-8")
    assert acc in page  # the committed run's student accuracy, as the results table shows it
    results.write_text(page.replace(acc, "| 0.999 |"), encoding="utf-8")
    cmd = [sys.executable, str(ROOT / "docs" / "render.py"), "--root", str(tmp_path)]
    out = subprocess.run([*cmd, "--check"], capture_output=True, text=True)
    assert out.returncode == 1 and "docs/results.md" in out.stderr, out.stderr
    assert "0.999" in results.read_text(encoding="utf-8")  # --check writes nothing
    fixed = subprocess.run(cmd, capture_output=True, text=True)
    assert fixed.returncode == 0 and "rendered: docs/results.md" in fixed.stdout
    assert "0.999" not in results.read_text(encoding="utf-8")
    assert subprocess.run([*cmd, "--check"], capture_output=True).returncode == 0


def test_help_lists_the_blocks():
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "render.py"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("results", "frontier", "bench:NAME", "label_efficiency", "quickstart", "--check"):
        assert name in out.stdout


# --------------------------------------------------------------------------- blocks from fixtures


def test_frontier_table_names_models_marks_the_front_and_its_lineage(render, tmp_path):
    write(tmp_path, "reports/frontier.json", FRONTIER)
    text = rendered(render, tmp_path, "frontier")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["NB-LR"].endswith("| ✓ |") and "9,100" in rows["NB-LR"]
    assert rows["majority class"].startswith("| majority class | — | — | 0.568 | 0.543–0.595 |")
    assert not rows["majority class"].endswith("| ✓ |")
    assert "`encoderflow-teacher`" in rows["teacher"] and "22.71" in rows["teacher"] and "86.7" in rows["teacher"]
    assert "commit `abc1234`" in text and "2026-12-07 12:00 UTC" in text and "AMD EPYC 9R14 (bf16)" in text
    assert "1,296 test texts at batch 64" in text
    assert "frontier.png" not in text  # no plot on disk, no image


def test_frontier_names_only_what_register_registered(render, tmp_path):
    """registered_as is the name a model WOULD get; the table shows it only when register.json says
    that version exists (the bag-of-words baseline registers only when no neural model beats it)."""
    base = {"name": "tfidf_lr", "role": "baseline", "registered_as": "encoderflow-baseline", "served": "sklearn",
            "accuracy": 0.77, "accuracy_ci": [0.75, 0.79], "macro_f1": 0.76, "pareto": False}
    write(tmp_path, "reports/frontier.json", {**FRONTIER, "models": [*FRONTIER["models"], base]})
    write(tmp_path, "reports/register.json", {
        "model_name": "encoderflow", "version": "1", "baseline": {"registered": False},
        "teacher": {"model_name": "encoderflow-teacher", "version": "1", "enabled": True}})
    rows = {line.split(" | ")[0].lstrip("| "): line for line in rendered(render, tmp_path, "frontier").splitlines()
            if line.startswith("| ")}
    assert rows["TF-IDF + LR"].startswith("| TF-IDF + LR | — | sklearn |")
    assert "`encoderflow-teacher`" in rows["teacher"]
    write(tmp_path, "reports/register.json", {"baseline": {"model_name": "encoderflow-baseline", "version": "2"}})
    rows = {line.split(" | ")[0].lstrip("| "): line for line in rendered(render, tmp_path, "frontier").splitlines()
            if line.startswith("| ")}
    assert "`encoderflow-baseline`" in rows["TF-IDF + LR"] and rows["teacher"].startswith("| teacher | — |")


def test_frontier_embeds_its_plot_when_it_exists(render, tmp_path):
    write(tmp_path, "reports/frontier.json", FRONTIER)
    write(tmp_path, "reports/plots/frontier.png", "png")
    assert "](../reports/plots/frontier.png)" in rendered(render, tmp_path, "frontier")


def test_results_table_takes_its_lineage_from_frontier_then_speed_then_register(render, tmp_path):
    metrics = {"model.accuracy": 0.79, "model.accuracy_ci_low": 0.77, "model.accuracy_ci_high": 0.81,
               "model.macro_f1": 0.78, "model.n": 1296.0, "baseline.nbsvm.accuracy": 0.76,
               "baseline.fancy.accuracy": 0.5}
    write(tmp_path, "reports/metrics.json", metrics)
    write(tmp_path, "reports/register.json", {"tags": {"encoderflow.git_sha": "feedbeef00", "encoderflow.git_dirty":
                                                       "true", "encoderflow.cpu_flags": "avx2 avx512_bf16"}})
    text = rendered(render, tmp_path, "results")
    assert "commit `feedbee` with uncommitted changes" in text and "date not recorded" in text
    assert "| NB-LR | 0.760 |" in text and "| baseline.fancy | 0.500 |" in text  # unknown rows still shown
    assert text.index("encoderflow student") < text.index("NB-LR") < text.index("baseline.fancy")
    write(tmp_path, "reports/speed.json", {"lineage": {**LINEAGE, "git_commit": "5eed5eed00"}})
    assert "commit `5eed5ee`" in rendered(render, tmp_path, "results")
    write(tmp_path, "reports/frontier.json", FRONTIER)
    assert "commit `abc1234`" in rendered(render, tmp_path, "results")


@pytest.mark.parametrize("block, command", [
    ("results", "encoderflow run"), ("frontier", "encoderflow run"), ("speed", "encoderflow run"),
    ("run", "encoderflow run"), ("ingest", "encoderflow stage ingest"), ("tokenizer", "encoderflow stage tokenize"),
    ("label_efficiency", "python benchmarks/label_efficiency.py --project . --json "
                         "reports/benchmarks/label_efficiency.json"),
    ("bench:mfu", "python benchmarks/mfu.py --json reports/benchmarks/mfu.json"),
])
def test_a_missing_source_says_which_command_measures_it(render, tmp_path, block, command):
    text = rendered(render, tmp_path, block)
    assert "**Not yet measured" in text
    assert f"`{command}`" in " ".join(line.lstrip("> ") for line in text.splitlines())


def test_quickstart_shows_the_cold_run_with_and_without_bf16(render, tmp_path):
    write(tmp_path, "reports/benchmarks/pipeline_overhead.json",
          {"lineage": LINEAGE, "results": {"cold_wall_s": 1097.2}})
    text = rendered(render, tmp_path, "quickstart")
    assert "| with bf16 (bf16-mixed) | 18 min 17 s | AMD EPYC 9R14 | 2 |" in text
    assert "| without bf16 (fp32) | not yet measured |" in text and "pretrain.precision=32" in text
    write(tmp_path, "reports/benchmarks/pipeline_overhead-fp32.json",
          {"lineage": LINEAGE, "results": {"cold_wall_s": 1500.0, "precision": "32"}})
    text = rendered(render, tmp_path, "quickstart")
    assert "| without bf16 (fp32) | 25 min 0 s |" in text and "Not yet measured" not in text


def test_a_benchmark_file_written_by_the_scripts_helper_renders_with_its_lineage(render, tmp_path, monkeypatch):
    """benchmarks/_report.py (what every --json option uses) -> docs/render.py, end to end."""
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "scaling.py"), "--json", "x.json"])
    from benchmarks import _lineage, _report

    out = _report.Report("scaling")
    out.table("tokens/s by batch | seq", ["threads", "batch", "seq 64"], [[1, 8, "7,276 (70 ms)"]])
    out.results = {"cells": [{"threads": 1, "tokens_per_s": 7276.1}]}
    data = out.write(tmp_path / "reports" / "benchmarks" / "scaling.json", threads=1)
    assert set(data["lineage"]) == set(_lineage.KEYS)
    assert data["lineage"]["threads"] == 1 and data["lineage"]["git_commit"]
    assert data["command"] == "python benchmarks/scaling.py --json x.json"
    text = rendered(render, tmp_path, "bench:scaling")
    assert "<!-- render:bench:scaling -->\ntokens/s by batch | seq:" in text
    assert "| 1 | 8 | 7,276 (70 ms) |" in text
    assert f"commit `{data['lineage']['git_commit'][:7]}`" in text and data["lineage"]["cpu"] in text
    assert "Command: `python benchmarks/scaling.py --json x.json`" in text


def test_the_tokenize_benchmark_writes_json_the_docs_render(render, tmp_path):
    """A real run of a benchmark script on the tiniest input it takes, then its block."""
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(f"a small text number {i} about films" for i in range(40)), encoding="utf-8")
    out_json = tmp_path / "reports" / "benchmarks" / "tokenize.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tokenize.py"), "--texts", str(texts),
                          "--repeats", "1", "--params", str(ROOT / "params.yaml"), "--json", str(out_json)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert data["results"]["texts"] == 40 and data["tables"][0]["columns"][0] == "variant"
    text = rendered(render, tmp_path, "bench:tokenize")
    assert "| encode_batch |" in text and "| map (stage) |" in text and "40 texts from" in text


# --------------------------------------------------------------------------- errors


def test_an_unknown_block_is_an_error_naming_file_and_line_and_writes_nothing(render, tmp_path):
    good = page(tmp_path, "frontier", name="README.md")
    bad = write(tmp_path, "docs/bad.md", "# Bad\n\n<!-- render:nonsense -->\n<!-- /render:nonsense -->\n")
    before = good.read_text(encoding="utf-8")
    with pytest.raises(render.RenderError, match=r"docs/bad.md:3: unknown block 'nonsense'"):
        render.render(tmp_path, check=False)
    assert good.read_text(encoding="utf-8") == before  # README rendered before the error, not written
    assert bad.exists()


def test_an_unclosed_block_is_an_error(render, tmp_path):
    write(tmp_path, "docs/x.md", "# X\n\n<!-- render:results -->\ntext\n")
    with pytest.raises(render.RenderError, match=r"docs/x.md:3: block 'results' has no closing"):
        render.render(tmp_path, check=False)


def test_a_report_that_is_not_json_is_an_error_naming_it(render, tmp_path):
    write(tmp_path, "reports/metrics.json", "{not json")
    page(tmp_path, "results")
    with pytest.raises(render.RenderError, match=r"docs/page.md:3: reports/metrics.json: not valid JSON"):
        render.render(tmp_path, check=False)


def test_the_cli_prints_one_error_line(tmp_path):
    write(tmp_path, "docs/x.md", "<!-- render:bogus -->\n<!-- /render:bogus -->\n")
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "render.py"), "--root", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.startswith("error: docs/x.md:1: unknown block 'bogus'") and out.stderr.count("\n") == 1


def test_the_examples_in_the_renderer_and_the_benchmark_helpers_hold(render, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import render_bench
    import render_io

    from benchmarks import _lineage, _report

    for module in (render_io, render_bench, _lineage, _report):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_targets_block_scores_each_student_against_the_issue_targets(render, tmp_path):
    def model(name, role, acc, tps):
        return {"name": name, "role": role, "accuracy": acc, "texts_per_s": tps, "pareto": name != "nbsvm"}
    write(tmp_path, "reports/frontier.json", {"lineage": LINEAGE, "models": [
        model("nbsvm", "baseline", 0.770, 9000.0), model("teacher", "teacher", 0.830, 100.0),
        model("transformer", "student", 0.815, 450.0), model("static", "student", 0.765, 6000.0)]})
    rows = {line.split(" | ")[0].lstrip("| "): line for line in rendered(render, tmp_path, "targets").splitlines()
            if line.startswith("| ")}
    assert "| 1.5 (≤ 2.0: met) | 4.5× (≥ 4×: met) | +4.5 over NB-LR (met) | ✓ |" in rows["transformer student"]
    assert "| 6.5 (≤ 4.0: missed) | 60.0× (≥ 50×: met) | -0.5 over NB-LR (missed) |" in rows["static student"]


def test_a_bench_block_renders_the_file_and_its_variants_but_not_a_longer_name(render, tmp_path):
    def bench(title):
        return {"lineage": LINEAGE, "tables": [{"title": title, "columns": ["a"], "rows": [["1"]]}]}
    write(tmp_path, "reports/benchmarks/serve.json", bench("base"))
    write(tmp_path, "reports/benchmarks/serve-fp32.json", bench("variant"))
    write(tmp_path, "reports/benchmarks/serve_load.json", bench("another script"))
    text = rendered(render, tmp_path, "bench:serve")
    assert "base:" in text and "variant:" in text and "another script" not in text
    assert "`reports/benchmarks/serve-fp32.json`" in text


def test_a_domain_block_renders_that_runs_frontier_and_says_whether_a_champion_beats_the_baselines(render, tmp_path):
    """`domain:NAME` renders reports/domains/NAME/ (another dataset's run) like the sample's frontier,
    with the data's size and the "any data" target: the best @champion against the best baseline."""
    run = "reports/domains/speeches"
    write(tmp_path, f"{run}/frontier.json", FRONTIER)
    write(tmp_path, f"{run}/plots/frontier.png", "png")
    write(tmp_path, f"{run}/ingest.json", {"source": "file:data/incoming/s.csv",
                                             "splits": {"train": 900, "val": 110, "test": 112},
                                             "label_counts": {"train": {"a": 500, "b": 400}}})
    write(tmp_path, f"{run}/register.json", {
        "model_name": "encoderflow", "decision": "challenger", "gate": {"accuracy": 0.70},
        "teacher": {"model_name": "encoderflow-teacher", "version": "1", "decision": "champion",
                    "gate": {"accuracy": 0.829}},
        "baseline": {"registered": False, "reason": "a neural model of the run beats every baseline"}})
    write(tmp_path, "reports/frontier.json", {**FRONTIER, "models": []})  # the sample's run: not read
    text = rendered(render, tmp_path, "domain:speeches")
    flat = " ".join(text.split())  # prose wraps at docs/render_io.WIDTH
    assert "900 train, 110 val and 112 test texts in 2 classes (`file:data/incoming/s.csv`)" in flat
    assert "| NB-LR |" in text and f"`{run}/frontier.json`" in text and f"](../{run}/plots/frontier.png)" in text
    assert "Champions: `encoderflow-teacher@champion` (0.829)." in flat
    assert "Best baseline: NB-LR (0.768); the best champion is at least as accurate: met." in flat
    assert "Register: a neural model of the run beats every baseline." in flat
    write(tmp_path, f"{run}/register.json", {"model_name": "encoderflow", "decision": "challenger"})
    assert "No model took `@champion` in this run." in rendered(render, tmp_path, "domain:speeches")
    assert "Not yet measured: no reports/domains/other/frontier.json" in " ".join(
        rendered(render, tmp_path, "domain:other").split())
