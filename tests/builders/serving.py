"""Loopback servers for the tests: a free port, `mlflow models serve` on a registered model,
waiting for an HTTP server, POST /invocations."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; 127.0.0.1 only)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_ready(port: int, proc: subprocess.Popen, log: Path, seconds: float = 180, path: str = "/ping") -> None:
    """Until http://127.0.0.1:port{path} answers; fails with the log's tail if `proc` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"server not ready after {seconds}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serving(root: Path, uri: str, log: Path):
    """`mlflow models serve -m uri` on a free loopback port against root's store; yields the port."""
    from components.core.config import load_params
    from components.core.tracking import tracking_uri

    cfg = load_params(root / "params.yaml")
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(cfg.project, root),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                                 uri, "--env-manager", "local",
                                 "-h", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(port, proc, log)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: our own process group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
