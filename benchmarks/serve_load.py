"""Load test of the REST server: `mlflow models serve` on a registered version, from a fresh venv.

    cd my-project && python /path/to/benchmarks/serve_load.py --json reports/serve_load.json
    python benchmarks/serve_load.py --model models:/encoderflow/4 --clients 1 8 32 --seconds 30
    python benchmarks/serve_load.py --torch-venv      # also size the torch serving venv
    python benchmarks/serve_load.py --torch-venv --slim   # both venvs as a slim image: no pip, no bytecode

1. The version's own requirements (mlflow.pyfunc.get_model_dependencies) go into a FRESH venv
   (python -m venv + pip from the configured registry); its size on disk is measured, and
   with --torch-venv so is a venv of what a torch-served version pins (pyfunc.pip_requirements
   of the torch pyfunc's import walk). An ONNX version's requirements hold no torch.
   --slim builds both as a slim image is built (no pip inside, no bytecode: build_venv); the
   .pyc share of each venv is reported either way.
2. The version is downloaded (this MLflow reads the project's store; an ONNX version pins
   mlflow-skinny, which reads registries over HTTP only), and `mlflow models serve -m FOLDER
   --env-manager local --workers 1` runs entirely from that venv (its bin first on PATH:
   --env-manager local starts `uvicorn` by name), loopback only,
   MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false.
3. 1, 8 and 32 concurrent clients (--clients), --seconds each, each a thread with its own
   keep-alive connection posting --texts-per-request texts a request: texts/s, request latency
   p50 / p99, errors (any non-200 or a failed connection). The server's RSS (the process and
   its children) is sampled every 0.5 s throughout.
4. Bad requests: a 10 MB body, malformed JSON, a missing `text` column, 10,000 texts in one
   request. Each must get a 4xx, or a 200 within --bad-timeout seconds; after each, /ping
   must still answer. RSS growth = the median of the last 5 s vs the first 5 s of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# glibc malloc for a threaded server: at most 2 heap arenas (one per worker thread otherwise, so RSS
# climbs with concurrency), and a fixed mmap threshold, so a one-off large request (a 10 MB body,
# 10,000 texts) is served from mmap and returned to the OS when freed instead of staying in the heap.
SERVER_ENV = ("MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=131072")
WORDS = "the film was a truly great and moving story with dull acting and a weak plot".split()


def dir_mb(path: Path, suffix: str = "") -> float:
    """Bytes of the regular files under `path` (links not followed) whose name ends with
    `suffix`, in MiB."""
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            if name.endswith(suffix):
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(base, name)).st_size
    return total / 2**20


def build_venv(dest: Path, requirements: list[str], slim: bool = False) -> dict:
    """A fresh venv at `dest` with `requirements` pip-installed: {"seconds", "mb", "bytecode_mb",
    "slim", "requirements"}; bytecode_mb = the .pyc files among mb. slim: as a slim production
    image is built: no pip inside (`python -m venv --without-pip`, installed into by this
    interpreter's pip through --python, as uv builds venvs) and no bytecode of the installed
    packages (pip install --no-compile; the server compiles what it imports when it starts)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", *(["--without-pip"] if slim else []), str(dest)], check=True)
    req = dest / "requirements.txt"
    req.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    pip = ([sys.executable, "-m", "pip", "--python", str(dest / "bin" / "python"), "install", "--no-compile"] if slim
           else [str(dest / "bin" / "python"), "-m", "pip", "install"])
    proc = subprocess.run([*pip, "-q", "-r", str(req)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: pip install into {dest} failed:\n{proc.stderr[-2000:]}")
    req.unlink()  # not part of the venv's size
    return {"seconds": round(time.perf_counter() - t0, 1), "mb": round(dir_mb(dest), 1),
            "bytecode_mb": round(dir_mb(dest, ".pyc"), 1), "slim": slim, "requirements": requirements}


def model_requirements(uri: str) -> list[str]:
    """The pip requirements the registered version carries (its requirements.txt)."""
    import mlflow

    path = mlflow.pyfunc.get_model_dependencies(uri)
    return [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.startswith("#")]


def torch_requirements() -> list[str]:
    """What register pins for a torch-served (non-Hugging Face) version."""
    from components.registry import pyfunc

    _, third = pyfunc.inference_files(ROOT)
    third.discard("transformers")
    return pyfunc.pip_requirements(third)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, body: bytes, timeout: float = 120, path: str = "/invocations",
            conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    """(status, body) of one request; status 0 = no answer (connection error or timeout)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if path == "/ping":
            conn.request("GET", path)
        else:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        return 0, b""
    finally:
        if own:
            conn.close()


def texts_body(texts: list[str]) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}).encode()


def download(uri: str, dest: Path) -> Path:
    """The version's MLflow model folder, downloaded with this (full) MLflow: the serving venv
    has mlflow-skinny, which reads a registry over HTTP but not a sqlite file."""
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))


@contextlib.contextmanager
def serving(model_dir: Path, venv: Path, log: Path, ready_s: float = 300, extra_env: dict | None = None):
    """`mlflow models serve` of a downloaded model folder, entirely from `venv` (its mlflow CLI,
    its uvicorn), on a free loopback port, with `extra_env` set; yields (port, pid of the server)."""
    port = free_port()
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "VIRTUAL_ENV": str(venv), **(extra_env or {})}
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir),
                                 "--env-manager", "local", "--workers", "1", "-h", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + ready_s
        while request(port, b"", timeout=2, path="/ping")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: the server did not come up ({log}):\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield port, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker: our own group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


class RssSampler(threading.Thread):
    """RSS (MiB) of a process and its children every `every` s: self.samples = [(t, mib), ...]."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.every, self.samples, self.stop = psutil.Process(pid), every, [], threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            with contextlib.suppress(Exception):  # a child may exit between listing and reading
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.samples.append((round(time.monotonic() - t0, 2),
                                     round(sum(p.memory_info().rss for p in procs) / 2**20, 1)))
            self.stop.wait(self.every)

    def growth(self, window: float = 5.0) -> dict:
        """Median RSS of the first and last `window` seconds, and the growth in %."""
        if not self.samples:
            return {}
        end = self.samples[-1][0]
        first = statistics.median(m for t, m in self.samples if t <= window)
        last = statistics.median(m for t, m in self.samples if t >= end - window)
        return {"first_mb": first, "last_mb": last, "growth_pct": round(100 * (last - first) / first, 1)}


def drive(port: int, clients: int, seconds: float, per_request: int) -> dict:
    """`clients` threads posting for `seconds`: texts/s, latency p50 / p99 (ms), requests, errors."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        i = k
        while time.monotonic() < stop:
            body = texts_body([" ".join(WORDS[(i + j) % 7:(i + j) % 7 + 4 + (i + j) % 9]) for j in range(per_request)])
            t0 = time.perf_counter()
            status, _ = request(port, body, conn=conn)
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                if status == 200:
                    lat.append(ms)
                else:
                    errors[0] += 1
            if status == 0:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            i += clients
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else (lat or [0.0]) * 99
    return {"clients": clients, "seconds": round(wall, 1), "requests": len(lat) + errors[0], "errors": errors[0],
            "texts_per_s": round(len(lat) * per_request / wall, 1), "p50_ms": round(q[49], 2),
            "p99_ms": round(q[98], 2)}


def bad_requests(port: int, timeout: float) -> list[dict]:
    """The four bad requests; each row: name, status, seconds, ok (4xx or a 200 in time), alive."""
    big = "word " * (2 * 2**20)  # one 10 MiB text
    cases = {"10 MB body": texts_body([big]),
             "malformed JSON": b'{"dataframe_split": {"columns": ["text"], "data": [["a"',
             "missing text column": json.dumps({"dataframe_records": [{"review": "a fine film"}]}).encode(),
             "10,000 texts": texts_body([f"{WORDS[i % 15]} film number {i}" for i in range(10_000)])}
    rows = []
    for name, body in cases.items():
        t0 = time.perf_counter()
        status, _ = request(port, body, timeout=timeout)
        secs = time.perf_counter() - t0
        alive = request(port, b"", timeout=10, path="/ping")[0] == 200
        rows.append({"name": name, "status": status, "seconds": round(secs, 2), "alive": alive,
                     "ok": alive and (400 <= status < 500 or (status == 200 and secs < timeout))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="project folder (params.yaml, mlflow.db)")
    ap.add_argument("--model", help="registered version URI [default: models:/<register.model_name>@champion]")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--texts-per-request", type=int, default=1)
    ap.add_argument("--bad-timeout", type=float, default=60, help="a 200 later than this counts as a hang")
    ap.add_argument("--venv", type=Path, help="where to build the serving venv [default: a temp folder]")
    ap.add_argument("--torch-venv", action="store_true", help="also build the torch serving venv and size it")
    ap.add_argument("--slim", action="store_true",
                    help="build both venvs as a slim image is built: without pip inside and without bytecode "
                         "(pip install --no-compile); the server compiles only what it imports, when it starts")
    ap.add_argument("--server-env", action="append", default=None, metavar="KEY=VALUE",
                    help="environment of the server, repeatable [default: " + " ".join(SERVER_ENV) + ", the "
                         "glibc settings docs/serving.md recommends]; --server-env '' for none")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import tempfile

    from components.core import env
    from components.core.config import Params, load_params
    from components.registry.client import connect

    env.configure()
    root = Path(args.root).resolve()
    cfg = load_params(root / "params.yaml") if (root / "params.yaml").is_file() else Params()
    connect(cfg.project, root)
    uri = args.model or f"models:/{cfg.register.model_name}@champion"
    out: dict = {"model": uri}
    with tempfile.TemporaryDirectory(prefix="encoderflow-load-") as tmp:
        reqs = model_requirements(uri)
        out["torch_in_requirements"] = any(r.split("==")[0].lower() == "torch" for r in reqs)
        venv = args.venv or Path(tmp) / "serve-venv"
        print(f"building the serving venv from {uri}'s requirements: {', '.join(reqs)}", flush=True)
        out["venv"] = build_venv(venv, reqs, slim=args.slim)
        print(f"  {out['venv']['mb']:.0f} MiB, built in {out['venv']['seconds']:.0f} s", flush=True)
        if args.torch_venv:
            out["torch_venv"] = build_venv(Path(tmp) / "torch-venv", torch_requirements(),
                                           slim=args.slim)
            ratio = out["venv"]["mb"] / out["torch_venv"]["mb"]
            print(f"  torch serving venv: {out['torch_venv']['mb']:.0f} MiB; this one is {ratio:.2f} of it "
                  f"(target <= 0.20: {'met' if ratio <= 0.2 else 'NOT met'})", flush=True)
        model_dir = download(uri, Path(tmp) / "model")
        server_env = dict(kv.split("=", 1) for kv in (SERVER_ENV if args.server_env is None else args.server_env)
                          if kv)
        out["server_env"] = server_env
        with serving(model_dir, venv, Path(tmp) / "serve.log", extra_env=server_env) as (port, pid):
            rss = RssSampler(pid)
            rss.start()
            out["load"] = []
            for n in args.clients:
                row = drive(port, n, args.seconds, args.texts_per_request)
                row["rss_mb_after"] = rss.samples[-1][1] if rss.samples else None
                out["load"].append(row)
                print(f"  {n:>3} clients: {row['texts_per_s']:.1f} texts/s, p50 {row['p50_ms']:.1f} ms, "
                      f"p99 {row['p99_ms']:.1f} ms, {row['requests']} requests, {row['errors']} errors", flush=True)
            out["bad_requests"] = bad_requests(port, args.bad_timeout)
            for row in out["bad_requests"]:
                print(f"  {row['name']}: HTTP {row['status']} in {row['seconds']} s, server "
                      f"{'up' if row['alive'] else 'DOWN'} ({'ok' if row['ok'] else 'NOT ok'})", flush=True)
            time.sleep(5)  # the last window: the server at rest after the bad requests
            rss.stop.set()
            rss.join()
        out["rss"] = {**rss.growth(), "samples": rss.samples}
        g = out["rss"]
        print(f"  RSS {g['first_mb']:.0f} -> {g['last_mb']:.0f} MiB (first vs last 5 s): {g['growth_pct']:+.1f}% "
              f"(target < 10%: {'met' if g['growth_pct'] < 10 else 'NOT met'})")
    write_report(args, out)


def write_report(args, out: dict) -> None:
    """The three tables (load, bad requests, venv sizes and RSS) and every number, for the docs."""
    from benchmarks import _report

    rep = _report.Report("serve_load")
    env = " ".join(f"{k}={v}" for k, v in out.get("server_env", {}).items()) or "default environment"
    rep.table(f"`mlflow models serve` of {out['model']} from its torch-free venv ({env}), "
              f"{args.seconds:g} s per row, {args.texts_per_request} text(s) per request",
              ["clients", "texts/s", "p50 ms", "p99 ms", "requests", "errors", "server RSS after (MiB)"],
              [[r["clients"], f"{r['texts_per_s']:.1f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", r["requests"],
                r["errors"], r.get("rss_mb_after")] for r in out.get("load", [])])
    rep.table("Bad requests (each must get a 4xx, or a 200 in bounded time, with the server still up)",
              ["request", "HTTP", "seconds", "server up after", "ok"],
              [[r["name"], r["status"], r["seconds"], "yes" if r["alive"] else "NO", "yes" if r["ok"] else "NO"]
               for r in out.get("bad_requests", [])])
    how = "slim: no pip, no bytecode" if out["venv"].get("slim") else "pip's defaults"

    def size(v: dict) -> str:
        pyc = f" ({v['bytecode_mb']:.0f} MiB of it .pyc)" if "bytecode_mb" in v else ""
        return f"{v['mb']:.0f} MiB{pyc}"

    rows = [[f"serving venv (the version's own requirements; {how})", size(out["venv"]), ""]]
    if "torch_venv" in out:
        ratio = out["venv"]["mb"] / out["torch_venv"]["mb"]
        rows += [[f"torch serving venv ({how})", size(out["torch_venv"]), ""],
                 ["torch-free ÷ torch", f"{ratio:.2f}", f"≤ 0.20: {'met' if ratio <= 0.2 else 'NOT met'}"]]
    g = (out.get("rss") or {})
    if g:
        rows.append(["server RSS, first vs last 5 s", f"{g['first_mb']:.0f} → {g['last_mb']:.0f} MiB "
                     f"({g['growth_pct']:+.1f}%)", f"< 10%: {'met' if g['growth_pct'] < 10 else 'NOT met'}"])
    rep.table("Serving venv size and server memory", ["what", "measured", "target"], rows)
    rep.results = out
    rep.write(args.json)


if __name__ == "__main__":
    # Run as a script, sys.path[0] is benchmarks/ (whose tokenize.py shadows the stdlib's): the
    # repository root instead. Imported (tests/test_serve_load.py), sys.path is left alone.
    sys.path[0] = str(ROOT)
    main()
