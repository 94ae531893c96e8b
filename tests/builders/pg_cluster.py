"""A throwaway PostgreSQL cluster on loopback, for tests/system/test_postgres.py.

`binaries()` finds initdb / pg_ctl (PATH, then Debian's /usr/lib/postgresql/N/bin);
when they are missing it installs Debian's `postgresql` with apt-get (as root, or
through passwordless sudo), and if that is impossible it returns None with the reason.

`Cluster.start()` runs initdb in a fresh temporary folder and starts the server on a
free 127.0.0.1 port, its unix socket in that folder too. PostgreSQL refuses to run as
root, and CI runs as root: then initdb and pg_ctl run as an unprivileged system user
(`postgres` when the package created it, else `nobody`) through `runuser`, in a folder
it owns. Local-socket logins are trusted (the admin, `postgres`, connects that way);
TCP logins need a password (scram-sha-256), which is what the MLflow server uses.
`stop()` stops the server (immediate mode) and deletes the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from builders.serving import free_port

ADMIN = "postgres"


def _find() -> Path | None:
    for found in [shutil.which("initdb")] + sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        if found and (Path(found).resolve().parent / "pg_ctl").is_file():
            return Path(found).resolve().parent
    return None


def binaries() -> tuple[Path | None, str]:
    """(folder of initdb and pg_ctl, "") or (None, why they are missing)."""
    if (found := _find()) is not None:
        return found, ""
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None or not shutil.which("apt-get"):
        return None, "initdb/pg_ctl are missing and cannot be installed here (needs apt-get as root or sudo)"
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        out = subprocess.run(sudo + cmd, capture_output=True, text=True,
                             env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if out.returncode != 0:
            return None, f"`{' '.join(sudo + cmd)}` failed: {(out.stderr or out.stdout).strip()[-300:]}"
    found = _find()
    return (found, "") if found else (None, "apt-get installed postgresql, but initdb is still not found")


class Cluster:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="encoderflow-pg-"))  # 0700; pytest's tmp is root-only
        self.data, self.sock, self.log = self.base / "data", self.base / "sock", self.base / "server.log"
        self.user = None
        if os.geteuid() == 0:  # initdb: "cannot be run as root"
            self.user = ADMIN if _exists(ADMIN) else "nobody"
            entry = pwd.getpwnam(self.user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        out = subprocess.run(cmd, cwd=self.base, capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}\n{log}")
        return out

    def start(self) -> "Cluster":
        self._run("initdb", "-D", str(self.data), "-U", ADMIN, "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-instructions")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.base} "
                  "-c fsync=off -c full_page_writes=off", "start")
        return self

    def admin(self, db: str = "postgres"):
        """A superuser connection to `db` over the unix socket (trusted), autocommit."""
        import psycopg2

        conn = psycopg2.connect(host=str(self.base), port=self.port, user=ADMIN, dbname=db)
        conn.autocommit = True
        return conn

    def create_db(self, user: str, password: str, db: str) -> None:
        """A login role with a password and a database it owns (MLflow creates its tables there)."""
        from psycopg2 import sql

        conn = self.admin()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(user)), (password,))
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(user)))
        finally:
            conn.close()

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False
