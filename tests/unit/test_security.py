"""Security: loopback-only servers, no unpickling of untrusted files, no secrets in logs or runs.

The sample wheel's sha256 check lives in test_ingest.py
(test_sample_sha256_mismatch_names_both_hashes); the checks on the real pipeline (a
registered model, a stage subprocess) are tests/integration/test_security_pipeline.py.
"""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from components.core import redact as redact_mod
from components.core.config import Params, ProjectConfig
from components.core.errors import DataError
from components.core.redact import redact
from flows import schedule

from builders import tiny_pipeline
from builders.guards import no_unpickling

SECRET = "s3cret"
REPO = Path(__file__).resolve().parents[2]


# --- redact() ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("postgresql://alice:s3cret@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
    ("postgresql+psycopg2://mlflow:s3cret@127.0.0.1:5432/mlflow", "postgresql+psycopg2://***@127.0.0.1:5432/mlflow"),
    ("postgresql://mlflow@db/mlflow?sslmode=require&password=s3cret",
     "postgresql://***@db/mlflow?sslmode=require&password=***"),
    ("mysql+pymysql://root:s3cret@127.0.0.1/ml", "mysql+pymysql://***@127.0.0.1/ml"),
    ("ftp://alice:s3cret@ftp.example/artifacts", "ftp://***@ftp.example/artifacts"),
    ("https://s3cret@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
    ("at http://alice:p@ss:s3cret@host/api (refused)", "at http://***@host/api (refused)"),
    ("'https://alice:s3cret@h/x' and 'https://bob:s3cret@h/y'", "'https://***@h/x' and 'https://***@h/y'"),
    ("https://h/f.csv?sv=1&sig=s3cret&se=2", "https://h/f.csv?sv=1&sig=***&se=2"),
    ("https://h/api?TOKEN=s3cret", "https://h/api?TOKEN=***"),
    ("https://h/?client_secret=s3cret;x=1", "https://h/?client_secret=***;x=1"),
    ("https://h/?password=", "https://h/?password="),  # nothing to hide
    # left alone: no credentials
    ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ("file:data/incoming/*.csv", "file:data/incoming/*.csv"),
    ("models:/encoderflow@champion", "models:/encoderflow@champion"),
    ("write to a@b.org", "write to a@b.org"),
    ("https://h/p?page=2&sort=asc", "https://h/p?page=2&sort=asc"),
    ("train.lr=0.001", "train.lr=0.001"),
])
def test_redact_known_answers(text, expected):
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent


_word = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$", min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(scheme=st.sampled_from(["http", "https", "postgresql", "mysql+pymysql", "ftp", "sftp", "s3"]),
       user=_word, password=_word | st.just(""), host=st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True),
       path=st.from_regex(r"(/[a-z0-9_.]{0,8}){0,3}", fullmatch=True))
def test_redact_removes_userinfo_and_keeps_the_rest(scheme, user, password, host, path):
    userinfo = f"{user}:{password}" if password else user
    uri = f"{scheme}://{userinfo}@{host}{path}"
    out = redact(f"connect to {uri} failed")
    assert out == f"connect to {scheme}://***@{host}{path} failed"
    assert redact(out) == out


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_characters="@="), max_size=60))
def test_redact_leaves_text_without_credentials_alone(text):
    assert redact(text) == text


def test_docstring_examples():
    for module in (redact_mod, schedule):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# --- local servers bind to loopback -------------------------------------------------------------

def _host_default(command: str) -> str:
    import typer

    from flows.cli import app

    cmd = typer.main.get_command(app).commands[command]
    return next(p.default for p in cmd.params if p.name == "host")


def test_ui_and_schedule_default_to_loopback():
    assert _host_default("ui") == "127.0.0.1"
    assert _host_default("schedule") == "127.0.0.1"
    import inspect

    assert inspect.signature(schedule.serve).parameters["host"].default == "127.0.0.1"


def test_ui_command_binds_loopback_and_keeps_credentials_off_the_command_line(tmp_path):
    from flows.cli_models import ui_command

    cfg = Params(project=ProjectConfig(tracking_uri=f"postgresql://alice:{SECRET}@db.internal/mlflow"))
    cmd, env = ui_command(cfg, tmp_path)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert SECRET not in " ".join(cmd)  # `ps` shows argv to every local user
    # psycopg2 named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3 (not installed)
    assert env["MLFLOW_BACKEND_STORE_URI"] == f"postgresql+psycopg2://alice:{SECRET}@db.internal/mlflow"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == (tmp_path / "mlartifacts").resolve().as_uri()
    cmd, _ = ui_command(cfg, tmp_path, host="0.0.0.0", port=5123)  # only when asked explicitly
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and cmd[cmd.index("--port") + 1] == "5123"
    cmd, env = ui_command(cfg, tmp_path, backend="postgresql://mlflow@db:5432/mlflow", artifacts="/srv/art")
    assert env["MLFLOW_BACKEND_STORE_URI"] == "postgresql+psycopg2://mlflow@db:5432/mlflow"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "file:///srv/art" and "/srv/art" not in cmd


@pytest.mark.parametrize("backend", [f"postgresql://mlflow:{SECRET}@127.0.0.1:9/mlflow",
                                     f"postgresql://mlflow@127.0.0.1:9/mlflow?password={SECRET}"])
def test_ui_refuses_a_password_in_the_backend_address(project, backend, cli):
    """A --backend password would sit in argv (ps) and shell history: one line, use PGPASSWORD."""
    code, output = cli("ui", "--backend", backend, "--port", "9")
    assert code == 1 and output.count("\n") == 1, output
    assert output.startswith("error: --backend postgresql://***@127.0.0.1:9/mlflow")
    assert "export PGPASSWORD" in output and SECRET not in output


def test_prefect_server_command_binds_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_SERVER_API_HOST", "0.0.0.0")  # the explicit --host wins over it
    cmd, env = schedule.server_command(tmp_path)
    assert cmd[-4:] == ["--host", "127.0.0.1", "--port", "4200"]
    assert cmd[1:5] == ["-m", "prefect", "server", "start"]
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    assert env["PREFECT_HOME"] == str(tmp_path / ".prefect")
    cmd, _ = schedule.server_command(tmp_path, host="0.0.0.0", port=4300)
    assert cmd[-4:] == ["--host", "0.0.0.0", "--port", "4300"]


# --- no pickle for untrusted files --------------------------------------------------------------

class _Evil:
    """Unpickling this creates `marker` (stands in for arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_model_folders_never_unpickle(tmp_path, monkeypatch):
    from test_encoder import make_tokenizer, tiny
    from tokenizers import Tokenizer

    from components.model.classifier import ClassifierNet, TextClassifier
    from components.model.encoder import build_encoder
    from components.model.io import load_encoder, save_encoder

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pkl"
    torch.save({"w": _Evil(marker)}, evil)  # a real malicious pytorch_model.bin
    enc = build_encoder(tiny()).eval()
    tok_file = make_tokenizer(tmp_path / "tokenizer.json")
    save_encoder(enc, tmp_path / "enc", tok_file)
    TextClassifier(ClassifierNet(enc, 2, 0.0), Tokenizer.from_file(str(tok_file)), ["neg", "pos"], 16, 0).save(
        tmp_path / "clf")
    for folder in (tmp_path / "enc", tmp_path / "clf"):
        (folder / "pytorch_model.bin").write_bytes(evil.read_bytes())  # beside the real weights

    no_unpickling(monkeypatch)
    assert load_encoder(tmp_path / "enc").cfg == enc.cfg  # loads the safetensors, ignores the .bin
    clf = TextClassifier.from_folder(tmp_path / "clf")
    assert clf.predict_proba(["w5 w6"]).shape == (1, 2)
    for folder in (tmp_path / "enc", tmp_path / "clf"):  # the pickle posing as the weights file
        (folder / "model.safetensors").write_bytes(evil.read_bytes())
    with pytest.raises(DataError, match="unreadable weights"):
        load_encoder(tmp_path / "enc")
    with pytest.raises(DataError, match="not a valid fine-tuned model folder") as err:
        TextClassifier.from_folder(tmp_path / "clf")
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_hf_checkpoint_folder_with_pickled_weights_is_not_executed(tmp_path):
    from components.model.hf_backbone import HFBackbone

    from builders.teacher_model import tiny_bert

    marker = tmp_path / "PWNED"
    tiny_bert(tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save({"embeddings.word_embeddings.weight": _Evil(marker)}, tmp_path / "hf" / "pytorch_model.bin")
    with pytest.raises(Exception):  # noqa: B017 - transformers refuses it (weights_only)
        HFBackbone.from_folder(tmp_path / "hf")
    assert not marker.exists()


def test_checkpoint_with_pickled_object_is_refused_with_one_line_error(tmp_path):
    from components.stages.pretrain import verify_checkpoint

    marker = tmp_path / "PWNED"
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {"w": torch.zeros(2)}, "global_step": 3, "loops": _Evil(marker)}, ckpt)
    with pytest.raises(DataError, match="last.ckpt: corrupt or truncated checkpoint") as err:
        verify_checkpoint(ckpt)
    assert "\n" not in str(err.value)
    assert not marker.exists()
    torch.load(ckpt, weights_only=False)  # the file really is an exploit: plain unpickling runs it
    assert marker.exists()


def _calls(tree: ast.AST, attr: str):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == attr]


def _kw_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def test_code_loads_torch_files_weights_only_and_never_imports_pickle():
    """Every torch.load passes weights_only=True; Lightning resumes do too; no pickle module."""
    loads = fits = 0
    for path in sorted((REPO / "components").rglob("*.py")) + sorted((REPO / "flows").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                assert not {"pickle", "cloudpickle", "dill", "joblib"} & {n.split(".")[0] for n in names if n}, path
        for call in _calls(tree, "load"):
            if isinstance(call.func.value, ast.Name) and call.func.value.id == "torch":
                loads += 1
                assert _kw_true(call, "weights_only"), f"{path}:{call.lineno}: torch.load without weights_only=True"
        for call in _calls(tree, "fit"):
            if any(k.arg == "ckpt_path" for k in call.keywords):
                fits += 1
                assert _kw_true(call, "weights_only"), f"{path}:{call.lineno}: resume without weights_only=True"
    assert loads >= 2 and fits >= 1  # pretrain + finetune: the scan saw them


# --- no secrets in logs, params, artifacts ------------------------------------------------------

def test_cli_errors_and_printed_config_are_redacted(project, monkeypatch, cli):
    from flows.stagerun import ERROR_ENV

    tiny_pipeline.write_project(project, n=8)
    (project / "in.csv").write_text("text\nhello\n", encoding="utf-8")
    error_file = project / "error.txt"
    monkeypatch.setenv(ERROR_ENV, str(error_file))
    # an unreachable FTP model store: the error names the URI, without the password
    code, output = cli("predict", "in.csv", "-o", "out.csv", "--model", f"ftp://alice:{SECRET}@127.0.0.1:9/model")
    assert code == 1 and "could not be loaded" in output
    assert "ftp://***@127.0.0.1:9/model" in output and SECRET not in output
    assert "***@" in error_file.read_text() and SECRET not in error_file.read_text()  # -> the flow's run tag
    code, output = cli("check-params", "--set", f"project.tracking_uri=postgresql://alice:{SECRET}@db/ml")
    assert code == 0 and "postgresql://***@db/ml" in output and SECRET not in output
