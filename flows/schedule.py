"""`encoderflow schedule`: a local Prefect server plus the pipeline served on a cron.

    encoderflow schedule --cron "0 3 * * *"

1. Uses the server given by --server, or one already answering on
   --host/--port, or starts `prefect server start --host 127.0.0.1 --port P`
   in its own process group with PREFECT_HOME=.prefect (database:
   .prefect/prefect.db, log: .prefect/server.log) and waits for /api/health.
2. Serves a deployment of the flow ("encoderflow/scheduled") with that cron:
   it shows in the Prefect UI with its schedule, and this process runs each
   scheduled (or UI-triggered) run in a subprocess.
3. Ctrl-C (or SIGTERM) stops serving, pauses the schedule, and terminates the
   server's whole process group, leaving no child processes behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from components.core.errors import EncoderflowError, first_line
from components.core.redact import redact


def api_url(host: str, port: int) -> str:
    """The Prefect API URL of a server on host:port.

    >>> api_url("127.0.0.1", 4200)
    'http://127.0.0.1:4200/api'
    """
    return f"http://{host}:{port}/api"


def healthy(url: str, timeout: float = 2.0) -> bool:
    """True when the Prefect API at `url` answers GET /health with 200."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


DEFAULT_HOST = "127.0.0.1"  # loopback: the Prefect server has no login


def server_command(root: Path, host: str = DEFAULT_HOST, port: int = 4200) -> tuple[list[str], dict]:
    """The `prefect server start` argv and environment (data under root/.prefect).

    The host is always explicit on the command line, so the server binds where
    the CLI says (127.0.0.1 unless --host was given), whatever PREFECT_SERVER_API_HOST holds.
    """
    env = {**os.environ, "PREFECT_HOME": str(root / ".prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": api_url(host, port)}
    return [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)], env


def start_server(root: Path, host: str, port: int) -> subprocess.Popen:
    """`prefect server start` in a new process group, data under root/.prefect."""
    home = root / ".prefect"
    home.mkdir(parents=True, exist_ok=True)
    cmd, env = server_command(root, host, port)
    log = open(home / "server.log", "ab")  # noqa: SIM115 (the child owns it from here)
    try:
        return subprocess.Popen(
            cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)  # own process group: stop_server kills all of it
    finally:
        log.close()


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach.

    >>> [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "10.0.0.5")]
    [True, True, True, False, False]
    """
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def wait_healthy(url: str, proc: subprocess.Popen | None, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(url):
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
            raise EncoderflowError(f"prefect server exited with {proc.returncode} "
                                   f"(see {log}){': ' + tail[0] if tail else ''}")
        time.sleep(0.5)
    raise EncoderflowError(f"prefect server at {redact(url)} not healthy after {timeout:.0f}s (see {log})")


def stop_server(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after `grace` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # uvicorn workers / services still in the group
    proc.wait()


def _sigterm_as_interrupt() -> None:
    """Let SIGTERM unwind like Ctrl-C so the `finally` below stops the server."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not in the main thread: leave it alone
        signal.signal(signal.SIGTERM, handler)


def serve(root: Path, cron: str, server: str | None = None, host: str = DEFAULT_HOST,
          port: int = 4200, name: str = "scheduled", timezone: str = "UTC") -> None:
    """Serve the pipeline on `cron` until interrupted (see the module docstring)."""
    root = root.resolve()
    proc = None
    log = root / ".prefect" / "server.log"
    _sigterm_as_interrupt()
    try:
        if server:
            url = server.rstrip("/")
            if not healthy(url):
                raise EncoderflowError(f"--server {redact(server)}: no Prefect API answering at "
                                       f"{redact(url)}/health")
        else:
            url = api_url(host, port)
            if healthy(url):
                print(f"Reusing the Prefect server already running at {url}", flush=True)
            else:
                print(f"Starting a Prefect server on {host}:{port} (log: {log})", flush=True)
                if not is_loopback(host):
                    print(f"warning: --host {host} exposes the Prefect server (no authentication) "
                          "to the network", file=sys.stderr, flush=True)
                proc = start_server(root, host, port)
                wait_healthy(url, proc, log)
        ui = url[: -len("/api")] if url.endswith("/api") else url
        print(f"Prefect UI: {redact(ui)}  (deployment encoderflow/{name}, cron '{cron}' {timezone}; "
              "Ctrl-C stops)", flush=True)
        _serve_flow(root, url, ui, cron, name, timezone)
    except KeyboardInterrupt:
        pass
    finally:
        if proc is not None:
            print("Stopping the Prefect server", flush=True)
            stop_server(proc)


def _serve_flow(root: Path, url: str, ui: str, cron: str, name: str, timezone: str) -> None:
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    try:
        schedule = Cron(cron, timezone=timezone)
    except ValueError as e:
        raise EncoderflowError(f"--cron {cron!r} / --timezone {timezone!r}: {first_line(e)}")
    with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_UI_URL: ui}):
        os.environ["PREFECT_API_URL"] = url  # flow-run subprocesses talk to the same server
        from flows.pipeline import pipeline

        pipeline.serve(name=name, schedule=schedule, parameters={"root": str(root)},
                       entrypoint_type=EntrypointType.MODULE_PATH, pause_on_shutdown=True)
