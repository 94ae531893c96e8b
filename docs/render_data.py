"""Blocks of the run's data stages: what ingest read and kept, what validate checked, what the
tokenizer does to the text. Each block is `fn(sources, to_root) -> markdown`."""

from __future__ import annotations

from render_io import Sources, not_measured, num, run_lineage, source_line, table, wrap

SPLITS = ("train", "val", "test", "unlabeled")


def ingest(src: Sources, to_root: str) -> str:
    """Rows read, dropped and kept per split (reports/ingest.json)."""
    r = src.report("ingest")
    if not r:
        return not_measured("encoderflow stage ingest", "no reports/ingest.json")
    labels = r.get("labels") or []
    counts = r.get("label_counts") or {}
    splits = r.get("splits") or {}
    rows = [[s, num(splits.get(s), "{:,}")] + [num((counts.get(s) or {}).get(lab), "{:,}") for lab in labels]
            for s in SPLITS if s in splits]
    dup = r.get("duplicates_dropped")
    text = (f"Source `{r.get('source')}`: {num(r.get('rows_read'), '{:,}')} rows read "
            f"({num(r.get('labelled_rows_read'), '{:,}')} labelled, {num(r.get('unlabeled_rows_read'), '{:,}')} "
            f"unlabeled); {num(r.get('empty_dropped'), '{:,}')} empty and {num(dup, '{:,}')} duplicate rows dropped, "
            f"{num(r.get('label_conflicts'), '{:,}')} label conflicts.")
    lin, origin = run_lineage(src)
    return "\n\n".join([wrap(text), table(["split", "rows", *labels], rows),
                        source_line(["reports/ingest.json"], lin, origin)])


def validate(src: Sources, to_root: str) -> str:
    """Checks run, critical failures and warnings (reports/validation.json)."""
    v = src.report("validation")
    if not v:
        return not_measured("encoderflow stage validate", "no reports/validation.json")
    msgs = v.get("messages") or {}
    lines = [f"Checks: {num(v.get('checks'), '{:,}')}; critical failures: {num(v.get('critical_failures'), '{:,}')}; "
             f"warnings: {num(v.get('warnings'), '{:,}')}."]
    lines += [wrap(f"- critical: {m}").replace("\n", "\n  ") for m in msgs.get("critical") or []]
    lines += [wrap(f"- warning: {m}").replace("\n", "\n  ") for m in msgs.get("warning") or []]
    lin, origin = run_lineage(src)
    return "\n".join(lines) + "\n\n" + source_line(["reports/validation.json"], lin, origin)


def tokenizer(src: Sources, to_root: str) -> str:
    """UNK rate, tokens per text and truncation per split (reports/tokenizer.json)."""
    t = src.report("tokenizer")
    if not t:
        return not_measured("encoderflow stage tokenize", "no reports/tokenizer.json")
    splits = t.get("splits") or {}
    rows = [[name, num(s.get("texts"), "{:,}"), num(s.get("unk_rate"), "{:.2e}"), num(s.get("mean_tokens"), "{:.1f}"),
             num(s.get("p95_tokens"), "{:.0f}"), num(s.get("truncation_rate"), "{:.2%}")]
            for name, s in [*((k, splits[k]) for k in SPLITS if k in splits), ("all", t.get("overall") or {})]]
    text = (f"`{t.get('model')}`, vocabulary {num(t.get('vocab_size'), '{:,}')}"
            f"{', lowercased' if t.get('lowercase') else ''}, max length {t.get('max_length')} (tokens per text "
            "count `[CLS]` and `[SEP]`):")
    lin, origin = run_lineage(src)
    return "\n\n".join([wrap(text), table(["split", "texts", "UNK rate", "mean tokens", "p95 tokens",
                                     f"longer than {t.get('max_length')}"], rows),
                        source_line(["reports/tokenizer.json"], lin, origin)])


BLOCKS = {"ingest": ingest, "validate": validate, "tokenizer": tokenizer}
