"""Run one stage the way `dvc repro` would, so the flow and DVC never disagree.

In a DVC repo (a `.dvc/` folder at the project root) a stage runs through
DVC's own stage runner, in-process: `Repo(root).reproduce(NAME)`. DVC skips
the stage when its deps and params are unchanged, restores it from the run
cache when it has seen them before, runs `encoderflow stage NAME` (in this
process where it can, see below) otherwise, and records what ran in dvc.lock. So after a flow run
`dvc status` is clean and `dvc repro` is a no-op. `reproduce(NAME)` (not
single_item) also re-hashes upstream data sources such as a `dvc add`-ed
data/incoming; upstream stages the flow already ran are skipped quickly.
In-process is ~3x faster than a `dvc repro NAME` subprocess per stage
(measured on a no-op 7-stage pipeline: 4.8-8.8 s vs 15-25 s, 2 busy cores).

When DVC decides a stage must run, its command `encoderflow stage NAME` runs
in this process too (`_stage_commands_in_process`): DVC still checks, caches,
records dvc.lock and the run cache exactly as for a subprocess, but torch,
Lightning, MLflow and GX are imported once per pipeline run instead of once
per stage (benchmarks/pipeline_overhead.py --tiny 96 --runs 5 --ab, 2 busy
cores: overhead of a warm run 52 s in-process vs 134 s with subprocesses).
Torch's global flags, os.environ and the working directory are restored after
each stage, so a stage sees what a fresh `encoderflow stage` process would.
Subprocesses are kept where a stage may start processes of its own (pretrain
with devices x num_nodes > 1, or a strategy other than "auto": Lightning's DDP
launcher re-runs the running command once per device, so that command must be
`encoderflow stage pretrain`) and when ENCODERFLOW_STAGE_SUBPROCESS=1.

The hook replaces DVC's private `dvc.stage.run._run(executable, cmd,
**kwargs)`, which `cmd_run` looks up as a module global for every command.
Before replacing it, the hook checks (`_hook_problem`) that `_run` exists, is
callable and has exactly that signature; that `cmd_run` still calls `_run`
through the module global (a LOAD_GLOBAL in its bytecode), so the replacement
is seen; and that `dvc.stage.exceptions.StageCmdFailedError(cmd, 1)` can be
built and is a DvcException (how a failed stage is reported to DVC). At call
time it also needs DVC's `cwd=` and `env=` keyword arguments. If any of this
differs (another DVC version), stage commands run as subprocesses, as `dvc
repro` runs them, and the first such fallback in a process logs one warning
naming what differed. The replacement is installed only while a reproduce
runs and restored on every exit; it runs stages in-process only for calls
from the thread that entered the hook (other threads get DVC's own `_run`).

`StageResult.command` says how the stage's command ran: "in-process",
"subprocess", or "" when none ran (skipped, or restored from DVC's run cache;
with the hook off a run-cache restore also reads "subprocess"). The flow
prints it on each task's `NAME: ran (X.Xs)` line and returns it in its result.

Outside a DVC repo the stage function runs in-process (no skipping, no lock),
except multi-process pretraining, which runs `encoderflow stage pretrain` as a
subprocess with the run's resolved params (`run_command`).

Failures become `StageFailed("stage 'validate' failed: <one-line error>")`.
The stage command's output goes straight to the terminal, so the one line
travels in a file: the flow sets ENCODERFLOW_ERROR_FILE and the
`encoderflow stage` command writes its `error: ...` message there.
"""

from __future__ import annotations

import contextlib
import dis
import inspect
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from components.core.errors import EncoderflowError

ERROR_ENV = "ENCODERFLOW_ERROR_FILE"
SUBPROCESS_ENV = "ENCODERFLOW_STAGE_SUBPROCESS"  # "1": always run stage commands as subprocesses
IN_PROCESS, SUBPROCESS = "in-process", "subprocess"  # StageResult.command

log = logging.getLogger(__name__)


class StageFailed(EncoderflowError):
    """A stage failed; `str()` is "stage 'NAME' failed: <one-line error>"."""

    def __init__(self, name: str, detail: str):
        if detail.startswith(f"{name}: "):  # EncoderflowError(stage=...) already names it
            detail = detail[len(name) + 2:]
        self.name, self.detail = name, detail
        super().__init__(f"stage {name!r} failed: {detail}")


@dataclass(frozen=True)
class StageResult:
    name: str
    status: str  # "ran" (executed, or restored from DVC's run cache) | "skipped" (unchanged)
    seconds: float
    driver: str  # "dvc" | "in-process"
    # How the stage's command ran: "in-process" | "subprocess" | "" (none ran: skipped, or
    # restored from DVC's run cache). Module docstring: the hook and its fallback.
    command: str = ""


def is_dvc_repo(root: str | Path) -> bool:
    return (Path(root) / ".dvc").is_dir()


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment additions for stage commands: `extra`, plus this
    interpreter's bin folder first on PATH.

    dvc.yaml runs `encoderflow stage NAME` through the shell; this makes it
    resolve to the encoderflow installed next to the running Python even when
    the virtualenv is not activated.
    """
    env = dict(extra or {})
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    return env


def write_error(message: str) -> None:
    """Called by the `encoderflow stage` command on failure: hand the one-line
    message to the flow that started it (no-op when none did)."""
    target = os.environ.get(ERROR_ENV)
    if target:
        Path(target).write_text(message.splitlines()[0] if message else "", encoding="utf-8")


def run_with_dvc(name: str, root: str | Path, env: dict[str, str] | None = None,
                 force: bool = False) -> StageResult:
    """`dvc repro NAME` in `root` (in-process); raises StageFailed with the stage's error.

    force: `dvc repro -f -s NAME`: run this stage even if nothing changed, without
    its run cache (the flow forces every stage in order, so each runs once).
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    t0 = time.perf_counter()
    fd, err_file = tempfile.mkstemp(prefix="encoderflow-error-", suffix=".txt")
    os.close(fd)
    dvc_log = logging.getLogger("dvc")
    propagate, dvc_log.propagate = dvc_log.propagate, False  # DVC prints it; Prefect would again
    try:
        # DVC resolves targets and paths against the cwd (its CLI runs from the
        # repo root); the flow runs one stage at a time, so a chdir is safe here.
        with contextlib.chdir(root), Repo(str(root)) as repo, \
                _stage_commands_in_process(root, err_file) as commands:
            opts = {"force": True, "single_item": True} if force else {}
            done = repo.reproduce(name, run_env=child_env({**(env or {}), ERROR_ENV: err_file}), **opts)
    except DvcException as e:
        detail = Path(err_file).read_text(encoding="utf-8").strip()
        if not detail:  # DVC's own problem, or a crash before the CLI could report
            cause = e.__cause__ or e
            detail = f"{cause} (see the output above)" if cause is not e else str(e)
        raise StageFailed(name, detail) from e
    finally:
        dvc_log.propagate = propagate
        os.unlink(err_file)
    status = "ran" if any(getattr(s, "name", None) == name for s in done) else "skipped"
    return StageResult(name, status, time.perf_counter() - t0, "dvc",
                       commands.path(name, ran=status == "ran"))


def run_in_process(name: str, root: str | Path, cfg) -> StageResult:
    """Call the stage function directly (projects that are not DVC repos); multi-process
    pretraining runs as an `encoderflow stage pretrain` subprocess instead (`multi_process`)."""
    from components.core.paths import Paths
    from components.stages import table as stages

    t0 = time.perf_counter()
    if name == "pretrain" and multi_process(cfg.pretrain):
        run_command(name, root, cfg)
        return StageResult(name, "ran", time.perf_counter() - t0, "in-process", SUBPROCESS)
    try:
        stages.get(name).load()(cfg, Paths.at(root))
    except EncoderflowError as e:
        raise StageFailed(name, str(e).splitlines()[0]) from e
    except Exception as e:  # a bug: still name the stage, keep the traceback as the cause
        raise StageFailed(name, f"{type(e).__name__}: {e}".splitlines()[0]) from e
    return StageResult(name, "ran", time.perf_counter() - t0, "in-process", IN_PROCESS)


def multi_process(p) -> bool:
    """True when pretraining (params section `p`) starts processes of its own: Lightning's
    DDP launcher re-runs the running command once per device, which must therefore be
    `encoderflow stage pretrain`, never the flow's process."""
    return p.devices * p.num_nodes > 1 or p.strategy != "auto"


def params_yaml(cfg) -> str:
    """A params.yaml text that parses back to `cfg` (every key spelled out).

    >>> import yaml
    >>> from components.core.config import Params, parse_params
    >>> parse_params(yaml.safe_load(params_yaml(Params()))) == Params()
    True
    """
    import dataclasses

    import yaml

    def plain(x):  # tuples -> lists, for yaml.safe_dump
        return {k: plain(v) for k, v in x.items()} if isinstance(x, dict) else \
            [plain(v) for v in x] if isinstance(x, (list, tuple)) else x

    return yaml.safe_dump(plain(dataclasses.asdict(cfg)), sort_keys=False)


def run_command(name: str, root: str | Path, cfg) -> None:
    """`encoderflow stage NAME` as a subprocess in `root`, with `cfg` (params.yaml plus the
    run's overrides) written to a temporary params file; StageFailed with its one line."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="encoderflow-stage-") as tmp:
        params, err_file = Path(tmp) / "params.yaml", Path(tmp) / "error.txt"
        params.write_text(params_yaml(cfg), encoding="utf-8")
        env = {**os.environ, **child_env({ERROR_ENV: str(err_file)})}
        code = subprocess.call(["encoderflow", "stage", name, "--params", str(params)], cwd=root, env=env)
        if code:
            detail = err_file.read_text(encoding="utf-8").strip() if err_file.is_file() else ""
            raise StageFailed(name, detail or f"`encoderflow stage {name}` exited with {code} (see the output above)")


def _in_process_ok(name: str, root: Path) -> bool:
    """False where the stage command must stay a subprocess."""
    if os.environ.get(SUBPROCESS_ENV, "") not in ("", "0"):
        return False
    if name != "pretrain":
        return True
    from components.core.config import load_params

    try:
        p = load_params(Path(root) / "params.yaml").pretrain
    except EncoderflowError:
        return False  # let the subprocess report the problem
    return not multi_process(p)


_RUN_PARAMS = [("executable", inspect.Parameter.POSITIONAL_OR_KEYWORD),
               ("cmd", inspect.Parameter.POSITIONAL_OR_KEYWORD),
               ("kwargs", inspect.Parameter.VAR_KEYWORD)]


def _hook_problem(dvc_run) -> str | None:
    """What in DVC differs from what the hook relies on; None when all is as expected.

    `dvc_run` is the module dvc.stage.run, with DVC's own `_run` in place."""
    fn = getattr(dvc_run, "_run", None)
    if fn is None:
        return "dvc.stage.run._run does not exist"
    if not callable(fn):
        return f"dvc.stage.run._run is not callable ({type(fn).__name__})"
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        return f"dvc.stage.run._run has no readable signature ({e})"
    if [(p.name, p.kind) for p in sig.parameters.values()] != _RUN_PARAMS:
        return f"dvc.stage.run._run has signature {sig}, expected (executable, cmd, **kwargs)"
    caller = getattr(dvc_run, "cmd_run", None)
    code = getattr(caller, "__code__", None)
    if code is None or getattr(caller, "__globals__", None) is not vars(dvc_run):
        return "dvc.stage.run.cmd_run (the caller of _run) is missing or not a plain function"
    if not any(i.opname == "LOAD_GLOBAL" and i.argval == "_run" for i in dis.get_instructions(code)):
        return ("dvc.stage.run.cmd_run does not call _run through the module global, "
                "so replacing dvc.stage.run._run would not be seen")
    try:
        from dvc.exceptions import DvcException
        from dvc.stage.exceptions import StageCmdFailedError
    except ImportError as e:
        return f"dvc.stage.exceptions.StageCmdFailedError cannot be imported ({e})"
    if not (isinstance(StageCmdFailedError, type) and issubclass(StageCmdFailedError, DvcException)):
        return "dvc.stage.exceptions.StageCmdFailedError is not a DvcException subclass"
    try:
        StageCmdFailedError("encoderflow stage NAME", 1)
    except Exception as e:
        return f"dvc.stage.exceptions.StageCmdFailedError(cmd, 1) fails: {type(e).__name__}: {e}"
    return None


_warned = False  # the fallback warning: once per process


def _fall_back(problem: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("DVC's stage runner differs from what encoderflow's in-process hook expects "
                    "(%s): stage commands run as subprocesses", problem)


@dataclass
class _Commands:
    """How each stage's command ran, as the hook saw it (stage name -> path)."""

    hooked: bool
    paths: dict[str, str] = field(default_factory=dict)

    def add(self, stage: str, path: str) -> None:
        self.paths[stage] = path if self.paths.get(stage, path) == path else "mixed"

    def path(self, name: str, ran: bool) -> str:
        if name in self.paths:
            return self.paths[name]
        # Unhooked, any command that ran was DVC's subprocess (or a run-cache restore).
        return SUBPROCESS if ran and not self.hooked else ""


# One process-wide replacement for dvc.stage.run._run, installed while any thread is
# inside _stage_commands_in_process; each such thread's handlers, innermost last.
_hook_lock = threading.Lock()
_handlers: dict[int, list] = {}
_original_run = None  # DVC's own _run, saved when the replacement was installed


def _dispatch(executable, cmd, **kwargs):
    """The replacement: the calling thread's handler, or DVC's own _run."""
    original = _original_run
    stack = _handlers.get(threading.get_ident())
    if not stack:
        return original(executable, cmd, **kwargs)
    return stack[-1](original, executable, cmd, **kwargs)


@contextlib.contextmanager
def _stage_commands_in_process(root: str | Path, err_file: str):
    """While active, DVC runs `encoderflow stage NAME` by calling the stage here
    (what the CLI command does), not by starting a shell, for calls from this
    thread. Other commands, other threads, and a DVC that differs from what the
    hook relies on (`_hook_problem`) run as usual. Yields a `_Commands`."""
    global _original_run
    try:
        from dvc.stage import run as dvc_run
    except ImportError as e:
        dvc_run = None
        problem = f"dvc.stage.run cannot be imported ({e})"

    me = threading.get_ident()
    with _hook_lock:
        if dvc_run is None:
            pass
        elif getattr(dvc_run, "_run", None) is _dispatch:  # installed (and checked) already
            problem = None
        else:
            try:
                problem = _hook_problem(dvc_run)
            except Exception as e:  # a check that cannot even run is a difference too
                problem = f"checking dvc.stage.run failed: {type(e).__name__}: {e}"
            if problem is None:
                _original_run, dvc_run._run = dvc_run._run, _dispatch
        if problem is None:
            commands = _Commands(hooked=True)
            _handlers.setdefault(me, []).append(_handler(root, err_file, commands))
    if problem is not None:
        if os.environ.get(SUBPROCESS_ENV, "") in ("", "0"):  # subprocesses not asked for
            _fall_back(problem)
        yield _Commands(hooked=False)
        return
    try:
        yield commands
    finally:
        with _hook_lock:
            stack = _handlers[me]
            stack.pop()
            if not stack:
                del _handlers[me]
            if not _handlers and getattr(dvc_run, "_run", None) is _dispatch:
                dvc_run._run = _original_run


def _handler(root: str | Path, err_file: str, commands: _Commands):
    from dvc.stage.exceptions import StageCmdFailedError

    def run(original, executable, cmd, **kwargs):
        env, cwd = kwargs.get("env"), kwargs.get("cwd")
        parts = cmd.split() if isinstance(cmd, str) else []
        ours = len(parts) == 3 and parts[:2] == ["encoderflow", "stage"]
        if ours:
            stage = parts[2]
        else:  # another command: DVC names its stage in the environment
            stage = str(env.get("DVC_STAGE") or cmd) if isinstance(env, dict) else str(cmd)
        if ours and not (isinstance(env, dict) and cwd):
            _fall_back("dvc.stage.run._run was called without the cwd= and env= keyword arguments")
            ours = False
        if not ours or not _in_process_ok(stage, root):
            commands.add(stage, SUBPROCESS)
            return original(executable, cmd, **kwargs)
        commands.add(stage, IN_PROCESS)
        try:
            _call_stage(stage, Path(cwd), env)
        except Exception as e:  # what the `encoderflow stage` command does on failure
            import traceback

            from components.core.redact import redact

            if not isinstance(e, EncoderflowError):  # a bug: show the traceback
                traceback.print_exc()
            detail = redact(str(e) if isinstance(e, EncoderflowError) else f"{type(e).__name__}: {e}")
            Path(err_file).write_text(detail.splitlines()[0] if detail else "", encoding="utf-8")
            raise StageCmdFailedError(cmd, 1) from e

    return run


def _call_stage(name: str, cwd: Path, env: dict[str, str]) -> None:
    """`encoderflow stage NAME` in this process; torch flags and os.environ restored after."""
    from components.core import env as project_env
    from components.core.config import load_params
    from components.core.paths import Paths
    from components.stages import table as stages

    saved_env = dict(os.environ)
    saved_torch = _torch_flags()
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith(("DVC_", "ENCODERFLOW_"))})
        with contextlib.chdir(cwd):
            project_env.configure()
            cfg = load_params(Path("params.yaml"))
            project_env.configure(cfg.ingest.source)
            t0 = time.perf_counter()
            summary = stages.get(name).load()(cfg, Paths.at("."))
            print(f"{name}: done in {time.perf_counter() - t0:.1f}s" + (f" {summary}" if summary else ""))
    finally:
        try:  # first: restoring torch flags may import torch._inductor, which sets os.environ
            _restore_torch_flags(saved_torch)
            import gc

            gc.collect()
        finally:
            os.environ.clear()
            os.environ.update(saved_env)


def _torch_flags() -> dict | None:
    """Process-wide torch switches a stage may flip (Lightning's `deterministic`)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return {"deterministic": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark),
            "threads": torch.get_num_threads(), "matmul": torch.get_float32_matmul_precision(),
            "grad": torch.is_grad_enabled()}


def _restore_torch_flags(flags: dict | None) -> None:
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if flags is None:  # the stage imported torch: back to a fresh process's defaults
        flags = {"deterministic": False, "warn_only": False, "cudnn": (False, False),
                 "threads": torch.get_num_threads(), "matmul": "highest", "grad": True}
    torch.use_deterministic_algorithms(flags["deterministic"], warn_only=flags["warn_only"])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags["cudnn"]
    torch.set_num_threads(flags["threads"])
    torch.set_float32_matmul_precision(flags["matmul"])
    torch.set_grad_enabled(flags["grad"])
