"""A private PostgreSQL server from the machine's binaries (installed from Debian's packages when missing)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.local_stack.processes import wait_until

SERVER_USER = "postgres"


def postgres_bin() -> Path:
    """The directory holding initdb, pg_ctl and postgres; installs PostgreSQL with apt-get if there is none."""
    found = _find_bin()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("PostgreSQL server binaries not found; install them (apt-get install postgresql)")
    print("installing PostgreSQL from Debian's packages (first run only)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], check=True, env=env)
    found = _find_bin()
    if not found:
        raise RuntimeError("PostgreSQL was installed but initdb is still not found")
    return found


def _find_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key, reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


@dataclass
class PostgresServer:
    """A server with its data directory, socket and log under ``home``, listening on 127.0.0.1:``port``."""

    home: Path
    port: int = 5433

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.home / "pgdata"

    @property
    def log_file(self) -> Path:
        """The server log."""
        return self.home / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def pid(self) -> int | None:
        """The postmaster's pid while the server runs."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            return None
        return pid

    def start(self, timeout: float = 60.0) -> None:
        """Create the cluster on first use and start it; returns once it accepts connections."""
        binaries = postgres_bin()
        self.home.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._hand_to_server_user(self.home)
            self._run([str(binaries / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", "postgres",
                       "-E", "UTF8", "--no-sync"])
        if self.pid() is None:
            self._hand_to_server_user(self.home)
            options = (f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 "
                       "-c max_connections=200 -c fsync=on")
            self._run([str(binaries / "pg_ctl"), "-D", str(self.data_dir), "-o", options,
                       "-l", str(self.log_file), "-w", "-t", str(int(timeout)), "start"])
        wait_until(self.accepting, timeout=timeout, what="PostgreSQL", log_file=self.log_file)

    def accepting(self) -> bool:
        """True when the server accepts connections."""
        result = subprocess.run([str(postgres_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                capture_output=True)
        return result.returncode == 0

    def stop(self) -> bool:
        """Fast shutdown; True if the server was running."""
        if self.pid() is None:
            return False
        self._run([str(postgres_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        return True

    def create_database(self, name: str) -> None:
        """Create ``name`` unless it exists."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')

    def _run(self, command: list[str]) -> None:
        # initdb and postgres refuse to run as root; run them as the postgres user then.
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")

    @staticmethod
    def _hand_to_server_user(path: Path) -> None:
        if os.geteuid() != 0:
            return
        user = pwd.getpwnam(SERVER_USER)
        for directory, _, files in os.walk(path):
            os.chown(directory, user.pw_uid, user.pw_gid)
            for name in files:
                os.chown(os.path.join(directory, name), user.pw_uid, user.pw_gid)
        # The server user must be able to reach the directory through its parents.
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
