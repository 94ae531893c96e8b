"""Bad input, one row per case (issue #6): every case goes through the real CLI.

Each row: (case id, setup, command args, expected substring of the error).
`setup(root)` turns a copy of a small, healthy project (good data/prepared,
tokenizer, data/tokenized, a tiny models/pretrained, an empty MLflow store)
into the broken one. For every row the test asserts:
- a non-zero exit, handled (no exception escaped the CLI, no "Traceback");
- one `error: ...` line ending the output, naming the problem and where (validate alone
  adds one `validate: ...` line per failed check under its headline);
- every earlier output (data/, models/, checkpoints/, reports/) is byte- and
  mtime-identical afterwards, and the registry is unchanged (nothing registered,
  @champion where it was).
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import traceback
import zlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from builders.tiny_pipeline import sentences

PARAMS = {
    "project": {"seed": 0},
    "ingest": {"source": "file:raw.csv"},
    "tokenize": {"vocab_size": 100, "min_frequency": 1, "max_length": 32},
    "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "ffn_size": 32, "max_length": 32},
    "pretrain": {"max_steps": 2, "batch_size": 8, "seq_len": 32, "precision": "32", "vector_weight": 0},
    "finetune": {"max_epochs": 1, "batch_size": 8, "precision": "32"},
}


# --- the healthy project every case starts from (built once) ---------------------------------

def _csv(rows, header="text,label") -> bytes:
    return (header + "\n" + "".join(f'"{t}",{l}\n' for t, l in rows)).encode()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Good data/prepared + reports/ingest.json (a prior ingest), tokenizer, data/tokenized,
    a tiny untrained models/pretrained, and an MLflow store with its tables created."""
    from mlflow import MlflowClient

    from components.core.config import load_params
    from components.core.paths import Paths
    from components.stages.ingest import ingest
    from components.stages.tokenize import tokenize

    from builders.cls_project import save_pretrained

    root = tmp_path_factory.mktemp("failure_base")
    rows = sentences(100)  # the last 20 without a label: unlabeled text for pretraining
    (root / "raw.csv").write_bytes(_csv(rows[:80] + [(t, "") for t, _ in rows[80:]]))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    cfg, paths = load_params(root / "params.yaml"), Paths.at(root)
    ingest(cfg.ingest, paths)
    tokenize(cfg.tokenize, paths, show_progress=False)
    save_pretrained(cfg, paths)
    # Creating the sqlite tables takes seconds; do it once, each case copies the file.
    MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").search_experiments()
    return root


# --- setups ------------------------------------------------------------------------------------

def write(name: str, data: bytes):
    def setup(root: Path):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return setup


def params_yaml(section: str, key: str, value):
    def setup(root: Path):
        params = yaml.safe_load((root / "params.yaml").read_text())
        params.setdefault(section, {})[key] = value
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return setup


def png() -> bytes:
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


GOOD = sentences(40, seed=1)
TWO = [("a good film", "pos"), ("a bad film", "neg")]


def leak_into_test(root: Path):
    """Hand-written prepared splits: one train text copied into test (the file source cannot
    do this: the split is a hash of the normalized text and duplicates are dropped)."""
    import pandas as pd

    from components.core.paths import Paths

    paths = Paths.at(root)
    train = pd.read_parquet(paths.split("train"))
    test = pd.concat([pd.read_parquet(paths.split("test")), train.iloc[:1]], ignore_index=True)
    test.to_parquet(paths.split("test"), index=False)


def _ckpt_path(root: Path) -> Path:
    from components.core.config import load_params
    from components.core.paths import Paths
    from components.stages.pretrain import run_key

    paths = Paths.at(root)
    folder = paths.checkpoints / "pretrain" / run_key(load_params(root / "params.yaml"), paths)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "last.ckpt"


def garbage_checkpoint(root: Path):
    _ckpt_path(root).write_bytes(b"this is not a checkpoint\n" * 10)


def truncated_checkpoint(root: Path):
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(64, 64)}, "global_step": 3}, buf)
    _ckpt_path(root).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # a killed write


def retokenize(**kw):
    """Re-run tokenize with other settings: models/tokenizer (and data/tokenized) no longer
    match the tokenizer models/pretrained was trained with."""
    def setup(root: Path):
        from components.core.config import TokenizeConfig
        from components.core.paths import Paths
        from components.stages.tokenize import tokenize

        tokenize(TokenizeConfig(**{"vocab_size": 100, "min_frequency": 1, "max_length": 32, **kw}),
                 Paths.at(root), show_progress=False)
    return setup


def champion_and_input(root: Path):
    """Version 1 of `encoderflow` as @champion (never loaded here) and a good input file."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                          registry_uri=f"sqlite:///{root / 'mlflow.db'}")
    client.create_registered_model("encoderflow")
    version = client.create_model_version("encoderflow", source=str(root / "models" / "pretrained"))
    client.set_registered_model_alias("encoderflow", "champion", version.version)
    (root / "in.csv").write_bytes(_csv(GOOD[:5]))


def _jsonl(rows) -> bytes:
    import json

    return "".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows).encode()


def src(spec: str) -> list[str]:
    return ["stage", "ingest", "--set", f"ingest.source={spec}"]


# --- the table ---------------------------------------------------------------------------------

CASES = [
    # (id, setup, args, expected substring of the one-line error)
    ("01-empty-file", write("empty.csv", b""), src("file:empty.csv"),
     "ingest: empty.csv: empty file"),
    ("01-header-only", write("hdr.csv", b"text,label\n"), src("file:hdr.csv"),
     "ingest: hdr.csv: empty file (a header but no data rows)"),
    ("02-missing-file", None, src("file:nope.csv"), "ingest: file:nope.csv: file not found"),
    ("02-glob-no-match", None, src("file:incoming/*.csv"), "ingest: file:incoming/*.csv: no files match"),
    ("03-no-text-column", write("a.csv", _csv(GOOD, "body,label")), src("file:a.csv"),
     "ingest: a.csv: column 'text' not found (columns: body, label)"),
    ("04-no-label-column", write("a.csv", _csv(GOOD, "text,stars")), src("file:a.csv"),
     "no labelled rows: column 'label' not found in any input, and fine-tuning needs labels "
     "(columns found: a.csv: text, stars)"),
    ("05-too-many-empty", write("a.csv", _csv(GOOD[:17] + [("", "pos")] * 3)), src("file:a.csv"),
     "ingest: file:a.csv: 3 of 20 rows are empty (15.0%; more than ingest.max_empty_fraction=0.05)"),
    ("06-label-not-allowed", write("a.csv", _csv(TWO + [("a dull film", "meh")])),
     src("file:a.csv") + ["--set", "ingest.labels=[pos, neg]"],
     "ingest: a.csv: line 4: label 'meh' is not in ingest.labels (pos, neg)"),
    ("07-one-class", write("a.csv", _csv([(t, "pos") for t, _ in GOOD])), src("file:a.csv"),
     "ingest: file:a.csv: only one class ('pos') in the labelled rows; fine-tuning needs at least 2"),
    ("08-not-utf8", write("a.csv", b"text,label\nok,pos\ncaf\xe9,neg\n"), src("file:a.csv"),
     "ingest: a.csv: line 3: not valid UTF-8 (byte 0xe9 at offset 21)"),
    ("09-png-as-csv", write("a.csv", png()), src("file:a.csv"),
     "ingest: a.csv: looks like a PNG image, not a csv text file"),
    ("10-10MB-text", write("a.csv", _csv(TWO + [("word " * (2 << 20), "pos")])), src("file:a.csv"),
     "ingest: a.csv: line 4: text has 10485759 characters (more than ingest.max_text_chars=1000000)"),
    ("11-duplicates", write("a.csv", _csv(GOOD[:10] * 2)), src("file:a.csv"),
     "ingest: file:a.csv: 10 of 20 non-empty rows are duplicates (50.0%; more than "
     "ingest.max_duplicate_fraction=0.2)"),
    ("12-train-text-in-test", leak_into_test, ["stage", "validate"],
     "validate: 1 texts appear in both train and test"),
    ("13-csv-unbalanced-quote", write("a.csv", b'text,label\nok,pos\n"never closed,neg\nmore,pos\n'),
     src("file:a.csv"), "ingest: a.csv: line 3: malformed CSV (unbalanced quote"),
    ("13-csv-truncated-line", write("a.csv", b"text,label\nok,pos\ncut"), src("file:a.csv"),
     "ingest: a.csv: line 3: expected 2 fields, got 1 (truncated or malformed record?)"),
    ("13-jsonl-truncated-line", write("a.jsonl", b'{"text": "a", "label": 1}\n{"text": "b", "lab'),
     src("file:a.jsonl"), "ingest: a.jsonl: line 2: invalid JSON (Unterminated string"),
    ("14-unknown-key", params_yaml("pretrain", "learning_rate", 0.1), ["stage", "pretrain"],
     "params.yaml: pretrain.learning_rate: unknown key (expected one of: max_steps"),
    ("14-wrong-type", params_yaml("pretrain", "batch_size", "big"), ["stage", "pretrain"],
     "params.yaml: pretrain.batch_size: expected an integer >= 1, got 'big'"),
    ("14-negative-lr", params_yaml("pretrain", "lr", -0.001), ["stage", "pretrain"],
     "params.yaml: pretrain.lr: expected a float > 0, got -0.001"),
    ("14-mask-rate-above-1", None, ["stage", "pretrain", "--set", "pretrain.mask_rate=1.5"],
     "pretrain.mask_rate: expected a float > 0 and < 1, got 1.5"),
    ("15-unknown-scheme", None, src("s3://bucket/raw.csv"),
     "ingest: ingest.source: unknown source 's3://bucket/raw.csv' (expected one of: "
     "sample:rotten_tomatoes, sample:stsb, file:PATH_OR_GLOB, hf:NAME[:CONFIG])"),
    ("16-path-escapes-project", write("../outside.csv", _csv(GOOD)), src("file:../outside.csv"),
     "ingest: file:../outside.csv: path resolves outside the project"),
    ("17-garbage-checkpoint", garbage_checkpoint, ["stage", "pretrain"],
     "last.ckpt: corrupt or truncated checkpoint"),
    ("17-truncated-checkpoint", truncated_checkpoint, ["stage", "pretrain"],
     "last.ckpt: corrupt or truncated checkpoint"),
    ("18-tokenizer-bigger-vocab", retokenize(vocab_size=160), ["stage", "finetune"],
     "finetune: models/tokenizer/tokenizer.json: does not match the tokenizer of models/pretrained "
     "(vocab size 160 vs 100); re-run pretrain after tokenize"),
    # Every new id fits the old vocab: before the check this fine-tuned silently (exit 0).
    ("18-tokenizer-smaller-vocab", retokenize(min_frequency=50), ["stage", "finetune"],
     "finetune: models/tokenizer/tokenizer.json: does not match the tokenizer of models/pretrained "
     "(vocab size 59 vs 100)"),
    ("19-model-not-in-registry", champion_and_input,
     ["predict", "in.csv", "-o", "out.csv", "--model", "models:/encoderflow/99"],
     "model 'models:/encoderflow/99' could not be loaded"),
    # ingest.task (issue #15): a list label under single_label, one label under multi_label,
    # and a gate metric the task does not have
    ("20-list-label-single-label", write("a.jsonl", _jsonl(TWO + [("a dull film", ["neg", "pos"])])),
     src("file:a.jsonl"),
     "ingest: a.jsonl: line 3: label is a list (['neg', 'pos']); a set of labels per text needs "
     "ingest.task: multi_label"),
    ("21-one-label-multi-label", write("a.jsonl", _jsonl([(t, ["pos"] if i % 2 else []) for i, (t, _) in
                                                          enumerate(GOOD)])),
     src("file:a.jsonl") + ["--set", "ingest.task=multi_label"],
     "ingest: file:a.jsonl: multi_label needs at least 2 labels in the labelled rows, found only one ('pos')"),
    ("22-register-metric-not-for-task", None, ["stage", "register", "--set", "register.metric=micro_f1"],
     "params.yaml: register.metric: expected one of accuracy, macro_f1 for ingest.task single_label"),
    # ingest.task: pair: a labelled file without the pair column; pairs with an empty side
    # (each counts as an empty row) above ingest.max_empty_fraction
    ("23-pair-column-missing", write("a.csv", _csv(GOOD)), src("file:a.csv") + ["--set", "ingest.task=pair"],
     "ingest: a.csv: column 'text_pair' not found (ingest.task is pair; columns: text, label)"),
    ("24-pair-empty-side", write("a.csv", _csv([(t, f'"{t} again",{l}') for t, l in GOOD[:36]]
                                               + [(t, f",{l}") for t, l in GOOD[36:]], "text,text_pair,label")),
     src("file:a.csv") + ["--set", "ingest.task=pair"],
     "ingest: file:a.csv: 4 of 40 rows are empty (10.0%; more than ingest.max_empty_fraction=0.05)"),
    # the pair task's optional bi-encoder, switched on where it cannot work
    ("25-bi-encoder-not-pair", None, ["stage", "finetune", "--set", "finetune.bi_encoder.enabled=true"],
     "params.yaml: finetune.bi_encoder.enabled: expected false while ingest.task is single_label "
     "(the bi-encoder is trained on pairs), got true"),
    ("26-recall-without-bi-encoder", None,
     ["stage", "register", "--set", "ingest.task=pair", "--set", "register.metric=recall_at_10"],
     "params.yaml: register.metric: recall_at_10 needs finetune.bi_encoder.enabled: true "
     "(it scores the bi-encoder), got 'recall_at_10'"),
    # a built-in sample with the other kind of task (refused before any download)
    ("27-stsb-needs-pair", None, src("sample:stsb"),
     "ingest: ingest.source sample:stsb holds sentence pairs and needs ingest.task pair, "
     "got ingest.task single_label"),
    ("27-rotten-tomatoes-not-pair", None, src("sample:rotten_tomatoes") + ["--set", "ingest.task=pair"],
     "ingest: ingest.source sample:rotten_tomatoes holds single texts and needs ingest.task single_label "
     "or multi_label, got ingest.task pair"),
]


# --- the checks --------------------------------------------------------------------------------

# validate writes reports/validation.json and reports/data_docs/ on failure, on purpose
# (they explain the failure); everything else must stay as it was.
OWN_REPORTS = {"validate": ("reports/validation.json", "reports/data_docs")}
# validate lists one failed check per line under its one-line headline (`validate: ...`).
MULTILINE = "validate: "


def snapshot(root: Path, skip: tuple = ()) -> dict[str, tuple[str, int]]:
    """{relative path: (sha1 of bytes, mtime_ns)} of every earlier output."""
    out = {}
    for top in ("data", "models", "checkpoints", "reports"):
        for p in sorted((root / top).rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and not rel.startswith(skip):
                out[rel] = (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def registry_state(root: Path) -> list:
    """[(model name, versions, aliases)] in the project's store."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return sorted((m.name, tuple(sorted(str(v.version) for v in client.search_model_versions(
        f"name='{m.name}'"))), tuple(sorted(client.get_registered_model(m.name).aliases.items())))
        for m in client.search_registered_models())


@pytest.mark.parametrize("case, setup, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, setup, args, expected, base, tmp_path, monkeypatch):
    from flows.cli import app

    root = tmp_path / "project"
    shutil.copytree(base, root)
    if setup:
        setup(root)
    monkeypatch.chdir(root)
    skip = OWN_REPORTS.get(args[1] if args[0] == "stage" else "", ())
    before, models = snapshot(root, skip), registry_state(root)

    res = CliRunner().invoke(app, args)  # not the `cli` fixture: the checks below need res.exception

    shown = f"{case}: exit {res.exit_code}\n{res.output}"
    if not isinstance(res.exception, SystemExit):  # escaped the CLI: show where
        shown += "".join(traceback.format_exception(res.exception))
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), shown
    assert "Traceback" not in res.output, shown
    lines = res.output.rstrip().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    message = lines[first:]  # the error ends the output
    assert len(message) == 1 or all(line.startswith(MULTILINE) for line in message[1:]), shown
    assert expected in "\n".join(message), shown
    assert snapshot(root, skip) == before  # earlier outputs untouched
    assert registry_state(root) == models  # nothing registered, @champion unchanged
    if case.startswith("19"):
        assert models == [("encoderflow", ("1",), (("champion", 1),))]
        assert not (root / "out.csv").exists()


def test_file_source_cannot_put_one_text_in_two_splits(base, tmp_path, monkeypatch):
    """Why case 12 writes data/prepared by hand: through a file source the same text (up to
    whitespace / Unicode normalization) lands in one split only, once."""
    import pandas as pd

    from flows.cli import app

    root = tmp_path / "project"
    shutil.copytree(base, root)
    rows = GOOD + [(GOOD[0][0].upper(), "x")] + [(f"  {t}\t", l) for t, l in GOOD[:5]]
    (root / "a.csv").write_bytes(_csv(rows))
    monkeypatch.chdir(root)
    res = CliRunner().invoke(app, src("file:a.csv") + ["--set", "ingest.max_duplicate_fraction=0.5"])
    assert res.exit_code == 0, res.output
    texts = [t for s in ("train", "val", "test")
             for t in pd.read_parquet(root / "data" / "prepared" / f"{s}.parquet")["text"]]
    assert len(texts) == len(set(texts)) == len(GOOD) + 1
