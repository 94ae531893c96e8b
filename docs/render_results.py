"""Blocks of the pipeline run's results: the test-split table, speed, what each stage did and
the accuracy/speed frontier. Each block is `fn(sources, to_root) -> markdown`."""

from __future__ import annotations

from render_io import Sources, ci, image, not_measured, num, run_lineage, source_line, table, wrap

RUN = "encoderflow run"
BASELINES = {  # metrics.json prefix -> row name, in the order the table shows them
    "baseline.random_init": "same encoder, random init",
    "baseline.model2vec": "model2vec",
    "baseline.tfidf_lr": "TF-IDF + LR",
    "baseline.nbsvm": "NB-LR",
    "baseline.majority": "majority class",
}
FRONTIER_NAMES = {"majority": "majority class", "tfidf_lr": "TF-IDF + LR", "nbsvm": "NB-LR",
                  "model2vec": "model2vec", "static": "static student", "transformer": "transformer student",
                  "teacher": "teacher"}


def _student_name(src: Sources) -> str:
    ft = src.report("finetune") or {}
    how = [{"pretrained": "own-pretrained", "random": "random init"}.get(ft.get("init_kind"), ft.get("init_kind"))]
    if (ft.get("distill") or {}).get("used"):
        how.append("distilled")
    how = [h for h in how if h]
    return "encoderflow student" + (f" ({', '.join(how)})" if how else "")


def _teacher_name(src: Sources) -> str:
    init = (src.report("teacher") or {}).get("init")
    name = ((src.report("register") or {}).get("teacher") or {}).get("model_name")
    return "teacher" + (f" ({init}, fine-tuned" + (f"; `{name}`" if name else "") + ")" if init else "")


def _static_name(src: Sources) -> str:
    name = ((src.report("register") or {}).get("static") or {}).get("model_name")
    return "static student" + (f" (`{name}`)" if name else "")


def _registered(src: Sources) -> dict[str, str]:
    """frontier model name (or role: baseline) -> the registered model it became in this run's register stage ("" when it
    was not registered: the baseline registers only when no neural model beats it)."""
    r = src.report("register") or {}
    out = {"transformer": r.get("model_name") if r.get("version") else ""}
    for role in ("static", "teacher", "baseline"):
        sub = r.get(role) or {}
        out[role] = sub.get("model_name", "") if sub.get("version") else ""
    return out


def results(src: Sources, to_root: str) -> str:
    """The test split: every model and baseline in reports/metrics.json."""
    m = src.report("metrics")
    if not m:
        return not_measured(RUN, "no reports/metrics.json")
    prefixes = sorted({k.rsplit(".", 1)[0] for k in m if k.endswith((".accuracy", ".macro_f1"))})
    order = ["model", "static", "teacher", *BASELINES]
    prefixes = [p for p in order if p in prefixes] + [p for p in prefixes if p not in order]
    names = {"model": _student_name(src), "static": _static_name(src), "teacher": _teacher_name(src), **BASELINES}
    rows = [[names.get(p, p), num(m.get(f"{p}.accuracy")),
             ci(m.get(f"{p}.accuracy_ci_low"), m.get(f"{p}.accuracy_ci_high")),
             num(m.get(f"{p}.macro_f1")), num(m.get(f"{p}.roc_auc")), num(m.get(f"{p}.ece"))] for p in prefixes]
    n = m.get("model.n")
    lin, origin = run_lineage(src)
    head = f"Test split{f' ({n:,.0f} texts)' if n else ''}, 95% bootstrap CI of the accuracy:"
    return "\n\n".join([wrap(head), table(["model", "accuracy", "95% CI", "macro-F1", "ROC-AUC", "ECE"], rows),
                        source_line(["reports/metrics.json"], lin, origin)])


def speed(src: Sources, to_root: str) -> str:
    """Texts/s of student and teacher, timed by evaluate in one process (reports/speed.json)."""
    s = src.report("speed")
    if not s:
        return not_measured(RUN, "no reports/speed.json")
    lin, origin = (s["lineage"], "reports/speed.json") if isinstance(s.get("lineage"), dict) else run_lineage(src)
    rows = [["student", num(s.get("speed.student_texts_per_s"), "{:,.0f}")],
            ["teacher", num(s.get("speed.teacher_texts_per_s"), "{:,.0f}")],
            ["student ÷ teacher", num(s.get("speed.ratio"), "{:.1f}×")]]
    cond = (f"{num(s.get('speed.n_texts'), '{:,.0f}')} test texts, batch {num(s.get('speed.batch_size'), '{:.0f}')}, "
            f"{num(s.get('speed.threads'), '{:.0f}')} threads, median of {num(s.get('speed.rounds'), '{:.0f}')} "
            "interleaved rounds")
    return "\n\n".join([wrap(f"Served speed ({cond}):"), table(["model", "texts/s"], rows),
                        source_line(["reports/speed.json"], lin, origin)])


def _gate_text(reg: dict) -> str:
    if not reg.get("version"):
        return f"`{reg.get('model_name', '?')}`: not registered ({reg.get('reason') or reg.get('decision') or '?'})"
    return f"`{reg.get('model_name')}` version {reg['version']} → `@{reg.get('decision')}` ({reg.get('reason')})"


def _prec(precision) -> str:
    """Lightning's precision name as the docs write it: "32" -> "fp32"."""
    return {"32": "fp32", "32-true": "fp32"}.get(str(precision), str(precision))


def run(src: Sources, to_root: str) -> str:
    """What the teacher, pretrain, finetune and register stages of the committed run did."""
    rows = []
    t = src.report("teacher")
    if t and t.get("enabled", True):
        base = (f"base sentence vectors in {num(t['base_vectors_s'], '{:,.0f}')} s; "
                if t.get("base_vectors_s") is not None else "")
        rows.append(["teacher", f"{base}{t.get('epochs')} epochs, {num(t.get('steps'), '{:,}')} steps, test accuracy "
                     f"{num(t.get('test_accuracy'))}; labelled {num(t.get('transfer_total'), '{:,}')} transfer "
                     f"texts at {num(t.get('label_texts_per_s'), '{:,.0f}')} texts/s ({_prec(t.get('precision'))})",
                     num(sum(t.get(k) or 0 for k in ("base_vectors_s", "train_wall_s", "label_s")), "{:,.0f}")])
    p = src.report("pretrain")
    if p:
        rows.append(["pretrain", f"{num(p.get('steps'), '{:,}')} steps (stopped by {p.get('stopped_by')}), final loss "
                     f"train {num(p.get('final_train_loss'))} / val {num(p.get('final_val_loss'))}, "
                     f"{num(p.get('tokens_per_s'), '{:,.0f}')} tokens/s ({_prec(p.get('precision'))})",
                     num(p.get("wall_seconds"), "{:,.0f}")])
    f = src.report("finetune")
    if f:
        distilled = "distilled from the teacher" if (f.get("distill") or {}).get("used") else "gold labels"
        rows.append(["finetune", f"{f.get('epochs')} epochs, {num(f.get('steps'), '{:,}')} steps over "
                     f"{num(f.get('train_rows'), '{:,}')} rows ({distilled}), best val accuracy "
                     f"{num(f.get('best_val_acc'))} ({_prec(f.get('precision'))})", num(f.get("wall_s"), "{:,.0f}")])
        st = f.get("static") or {}
        if st:
            rows.append(["finetune (static)", f"{st.get('epochs')} epochs, {num(st.get('steps'), '{:,}')} steps over "
                         f"the same rows, best val accuracy {num(st.get('best_val_acc'))}",
                         num(st.get("wall_s"), "{:,.0f}")])
    r = src.report("register")
    if r:
        gates = [_gate_text(r)] + [_gate_text(r[k]) for k in ("static", "teacher")
                                   if (r.get(k) or {}).get("model_name") and (r[k].get("enabled", True))]
        rows.append(["register", "; ".join(gates), "—"])
    if not rows:
        return not_measured(RUN, "no stage reports under reports/")
    lin, origin = run_lineage(src)
    files = [f"reports/{n}.json" for n in ("teacher", "pretrain", "finetune", "register") if src.report(n)]
    return "\n\n".join([table(["stage", "what it did", "seconds"], rows), source_line(files, lin, origin)])


def behaviour(src: Sources, to_root: str) -> str:
    """Pass rates of the behaviour checks on the student (the behaviour.* keys of metrics.json)."""
    m = src.report("metrics") or {}
    checks = sorted({k.split(".")[1] for k in m if k.startswith("behaviour.") and k.endswith(".pass_rate")})
    if not checks:
        return not_measured(RUN, "no behaviour.* keys in reports/metrics.json")
    rows = [[c.replace("_", " "), num(m.get(f"behaviour.{c}.pass_rate"), "{:.2f}"),
             num(m.get(f"behaviour.{c}.n"), "{:,.0f}")] for c in checks]
    lin, origin = run_lineage(src)
    return "\n\n".join([table(["check", "pass rate", "texts"], rows),
                        source_line(["reports/metrics.json"], lin, origin)])


def frontier(src: Sources, to_root: str) -> str:
    """Every model of the run on one accuracy/speed table (reports/frontier.json) and its plot."""
    fr = src.report("frontier")
    if not fr:
        return not_measured(RUN, "no reports/frontier.json (the evaluate stage writes it)")
    rows, done = [], _registered(src) if src.report("register") else None
    for mod in fr.get("models") or []:
        acc_ci = mod.get("accuracy_ci") or [None, None]
        params = mod.get("params")
        name = mod.get("registered_as")
        if name and done is not None and done.get(mod.get("name"), done.get(mod.get("role"))) != name:  # not registered
            name = None
        rows.append([FRONTIER_NAMES.get(mod.get("name"), mod.get("name")), f"`{name}`" if name else "—",
                     mod.get("served") or "—", num(mod.get("accuracy")), ci(*acc_ci), num(mod.get("macro_f1")),
                     num(mod.get("texts_per_s"), "{:,.0f}"), num(mod.get("p50_ms"), "{:.1f}"),
                     num(None if params is None else params / 1e6, "{:.2f}"), num(mod.get("disk_mb"), "{:.1f}"),
                     num(mod.get("train_s"), "{:,.0f}"), "✓" if mod.get("pareto") else ""])
    c = fr.get("conditions") or {}
    cond = (f"texts/s over {num(c.get('n_texts'), '{:,}')} test texts at batch {c.get('batch_size', '—')}, "
            f"median of {c.get('rounds', '—')} interleaved rounds; p50 latency over "
            f"{num(c.get('single_text_samples'), '{:,}')} single texts")
    parts = [wrap(f"Accuracy against speed ({cond}). ✓ marks the Pareto front: no other model is both more "
                  "accurate and faster."),
             table(["model", "registered as", "served", "accuracy", "95% CI", "macro-F1", "texts/s", "p50 ms",
                    "params (M)", "disk MB", "train s", "front"], rows),
             source_line([f"{src.reports}/frontier.json"], fr.get("lineage"), f"{src.reports}/frontier.json"),
             image(src, f"{src.reports}/plots/frontier.png", "accuracy against texts/s of every model", to_root)]
    return "\n\n".join(x for x in parts if x)


# Issue #21's targets for the students of the default run: (frontier name, most points under the
# teacher, least texts/s as a multiple of the teacher's). Both must also beat every baseline.
TARGETS = (("transformer", 2.0, 4.0), ("static", 4.0, 50.0))


def targets(src: Sources, to_root: str) -> str:
    """Each student against its targets (TARGETS), from reports/frontier.json."""
    fr = src.report("frontier")
    if not fr:
        return not_measured(RUN, "no reports/frontier.json (the evaluate stage writes it)")
    by = {m.get("name"): m for m in fr.get("models") or []}
    teacher = by.get("teacher") or {}
    base = [m for m in by.values() if m.get("role") == "baseline" and m.get("accuracy") is not None]
    best = max(base, key=lambda m: m["accuracy"]) if base else None
    rows = []
    for name, max_gap, min_speed in TARGETS:
        m = by.get(name)
        if not m or teacher.get("accuracy") is None:
            continue
        gap = 100 * (teacher["accuracy"] - m["accuracy"])
        speed = (m["texts_per_s"] / teacher["texts_per_s"]) if m.get("texts_per_s") and teacher.get("texts_per_s") \
            else None
        over = None if best is None else 100 * (m["accuracy"] - best["accuracy"])
        rows.append([FRONTIER_NAMES.get(name, name), f"{gap:.1f} (≤ {max_gap:.1f}: {'met' if gap <= max_gap else 'missed'})",
                     "—" if speed is None else f"{speed:.1f}× (≥ {min_speed:.0f}×: {'met' if speed >= min_speed else 'missed'})",
                     "—" if over is None else f"{over:+.1f} over {FRONTIER_NAMES.get(best['name'], best['name'])} "
                     f"({'met' if over > 0 else 'missed'})", "✓" if m.get("pareto") else "no"])
    if not rows:
        return not_measured(RUN, "no student and teacher in reports/frontier.json")
    return "\n\n".join([table(["student", "points under the teacher", "texts/s vs the teacher",
                                "vs the best baseline", "on the front"], rows),
                         source_line(["reports/frontier.json"], fr.get("lineage"), "reports/frontier.json")])


DOMAINS = "reports/domains"  # reports/domains/NAME/: the reports of a run on another dataset


def _champions(src: Sources, fr: dict) -> str:
    """Which models of a run took @champion, against the best baseline (issue #21's "any data" target)."""
    reg, by = src.report("register") or {}, {m.get("name"): m for m in fr.get("models") or []}
    roles = {"transformer": reg, **{r: reg.get(r) or {} for r in ("static", "teacher", "baseline")}}
    champs = []
    for role, r in roles.items():
        if r.get("decision") == "champion" and r.get("model_name"):
            acc = (r.get("gate") or {}).get("accuracy")
            champs.append((acc if acc is not None else -1.0, f"`{r['model_name']}@champion` ({num(acc)})"))
    base = [m for m in by.values() if m.get("role") == "baseline" and m.get("accuracy") is not None]
    best = max(base, key=lambda m: m["accuracy"]) if base else None
    if not champs:
        return wrap("No model took `@champion` in this run.")
    top = max(a for a, _ in champs)
    line = f"Champions: {', '.join(t for _, t in sorted(champs, reverse=True))}."
    if best is not None:
        ok = top >= best["accuracy"] - 1e-9
        line += (f" Best baseline: {FRONTIER_NAMES.get(best['name'], best['name'])} ({num(best['accuracy'])}); "
                 f"the best champion is at least as accurate: {'met' if ok else 'missed'}.")
    why = (reg.get("baseline") or {}).get("note") or (reg.get("baseline") or {}).get("reason")
    if why:
        line += f" Register: {why}" + ("" if why.endswith(".") else ".")
    return wrap(line)


def domain_block(name: str):
    """The block `domain:NAME`: the frontier of the run whose reports are in reports/domains/NAME/."""
    if not (name.startswith("domain:") and name[7:].replace("-", "_").isidentifier()):
        return None
    folder = f"{DOMAINS}/{name[7:]}"

    def block(src: Sources, to_root: str) -> str:
        sub = src.run_at(folder)
        fr, ing = sub.report("frontier"), sub.report("ingest") or {}
        if not fr:
            return not_measured(RUN, f"no {folder}/frontier.json (copy the run's reports/ there)")
        counts = ing.get("label_counts", {}).get("train") or {}
        splits = ing.get("splits") or {}
        data = wrap(f"{num(splits.get('train'), '{:,}')} train, {num(splits.get('val'), '{:,}')} val and "
                    f"{num(splits.get('test'), '{:,}')} test texts in {len(counts) or '—'} classes "
                    f"(`{ing.get('source', '?')}`).")
        return "\n\n".join([data, frontier(sub, to_root), _champions(sub, fr)])
    return block


BLOCKS = {"results": results, "speed": speed, "run": run, "behaviour": behaviour, "frontier": frontier,
          "targets": targets}
