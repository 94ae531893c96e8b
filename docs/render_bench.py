"""Blocks of the benchmarks: the tables a `benchmarks/*.py --json PATH` run printed, with the
command and the lineage it recorded (benchmarks/_report.py writes the file).

`bench:NAME` renders reports/benchmarks/NAME.json; `label_efficiency` and `quality` add their
plot; `quickstart` is the cold-run time of `encoderflow run` with and without bf16, from
pipeline_overhead's files. Each block is `fn(sources, to_root) -> markdown`.
"""

from __future__ import annotations

from render_io import Sources, image, not_measured, num, source_line, table, wrap

OUT = "reports/benchmarks"
# How each benchmark is run for the docs (the lead runs them on an idle machine). A name
# not listed runs as `python benchmarks/NAME.py --json reports/benchmarks/NAME.json`.
ARGS = {
    "serve": "--threads 1 2",
    "serve_load": "--torch-venv",
    "predict_load": "--model models/finetuned --rows 10000 100000 200000",
    "corpus_scale": "--sizes 20 210 2100",
    "quality": "--project .",
    "label_efficiency": "--project .",
    "levers": "--project .",
    "pipeline_overhead": "--runs 1",
}
FP32 = "--set teacher.precision=32 --set pretrain.precision=32 --set finetune.precision=32"


def command(name: str, out: str | None = None, extra: str = "") -> str:
    """The command that writes reports/benchmarks/NAME.json (or `out`).

    >>> command("serve")
    'python benchmarks/serve.py --threads 1 2 --json reports/benchmarks/serve.json'
    """
    args = " ".join(a for a in (ARGS.get(name, ""), extra) if a)
    return f"python benchmarks/{name}.py {args + ' ' if args else ''}--json {out or f'{OUT}/{name}.json'}"


def _tables(data: dict, pick: slice = slice(None)) -> list[str]:
    out = []
    for t in (data.get("tables") or [])[pick]:
        if t.get("title"):
            out.append(wrap(t["title"] + ":"))
        out.append(table(t.get("columns") or [], t.get("rows") or []))
    if not out:  # a file without printed tables: its top-level numbers
        flat = [[k, v] for k, v in sorted((data.get("results") or {}).items()) if isinstance(v, (int, float, str))]
        out.append(table(["result", "value"], flat))
    return out


def _footer(name: str, data: dict, rel: str | None = None) -> list[str]:
    rel = rel or f"{OUT}/{name}.json"
    return [wrap(f"Command: `{data.get('command') or command(name)}`"), source_line([rel], data.get("lineage"), rel)]


def bench(name: str, src: Sources, to_root: str, pick: slice = slice(None)) -> str:
    """NAME.json's tables, then those of each variant NAME-*.json (e.g. pipeline_overhead-fp32.json:
    the same script run with other settings), each with its command and lineage."""
    files = [(rel, data) for rel, data in src.benches(name)
             if rel.rsplit("/", 1)[-1][len(name):] == ".json" or rel.rsplit("/", 1)[-1][len(name)] == "-"]
    if not files:
        return not_measured(command(name))
    return "\n\n".join(part for rel, data in files for part in [*_tables(data, pick), *_footer(name, data, rel)])


def label_efficiency(src: Sources, to_root: str) -> str:
    """The accuracy-by-labels table (the per-seed table stays in the JSON) and its plot."""
    data = src.bench("label_efficiency")
    if data is None:
        return not_measured(command("label_efficiency"))
    plot = (data.get("results") or {}).get("plot") or ""
    parts = [*_tables(data, slice(0, 1)), image(src, plot, "test accuracy against labelled texts", to_root)
             if plot and not plot.startswith("/") else "", *_footer("label_efficiency", data)]
    return "\n\n".join(p for p in parts if p)


def _minutes(seconds: float) -> str:
    """
    >>> _minutes(1097.2), _minutes(59.6)
    ('18 min 17 s', '1 min 0 s')
    """
    s = round(seconds)
    return f"{s // 60} min {s % 60} s"


def quickstart(src: Sources, to_root: str) -> str:
    """Wall time of a cold `encoderflow run` on the sample, with and without bf16.

    From every reports/benchmarks/pipeline_overhead*.json: `results.cold_wall_s` (the first,
    cold run's wall seconds) and `results.precision` (what pretraining resolved; without it,
    bf16-mixed where the CPU has bf16, as precision `auto` does)."""
    found = {}
    for rel, data in src.benches("pipeline_overhead"):
        res, lin = data.get("results") or {}, data.get("lineage") or {}
        if res.get("cold_wall_s") is None:
            continue
        precision = res.get("precision") or ("bf16-mixed" if lin.get("bf16") else "32")
        found.setdefault("bf16" if precision == "bf16-mixed" else "fp32", (rel, res, lin))
    rows, notes = [], []
    for key, label, extra, out in (("bf16", "with bf16 (bf16-mixed)", "", f"{OUT}/pipeline_overhead.json"),
                                   ("fp32", "without bf16 (fp32)", FP32, f"{OUT}/pipeline_overhead-fp32.json")):
        if key in found:
            rel, res, lin = found[key]
            rows.append([label, _minutes(res["cold_wall_s"]), f"{lin.get('cpu') or '—'}",
                         num(lin.get("threads"), "{:.0f}"), f"`{rel}`"])
        else:
            rows.append([label, "not yet measured", "—", "—", "—"])
            notes.append(not_measured(command("pipeline_overhead", out, extra), label))
    lines = [table(["precision", "cold `encoderflow run`", "CPU", "threads", "from"], rows)]
    lines += [source_line([rel], lin, rel) for rel, _, lin in found.values()]
    return "\n\n".join(lines + notes)


def _bench_block(name: str):
    def block(src: Sources, to_root: str) -> str:
        return bench(name, src, to_root)
    return block


def block(name: str):
    """The block function of `bench:NAME`, `label_efficiency` or `quickstart`; None for another name."""
    if name.startswith("bench:") and name[6:].isidentifier():
        return _bench_block(name[6:])
    return {"label_efficiency": label_efficiency, "quickstart": quickstart}.get(name)
