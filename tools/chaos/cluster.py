"""A private, disposable pipeline: Kafka, PostgreSQL and the services as processes that can be killed at will."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from policyloop_common.auth import mint_token
from policyloop_common.kafka.topics import all_topics, ensure_topics
from policyloop_common.settings import ServiceSettings
from tools.local_stack.kafka import KafkaBroker
from tools.local_stack.postgres import PostgresServer
from tools.local_stack.processes import read_pid, spawn, wait_until
from tools.local_stack.services import ready

DATABASE = "policyloop"
GENERATOR_GROUP = "policy-generator"
STORE_GROUP = "policy-store"
READY_TIMEOUT_SECONDS = 180.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ServiceProcess:
    """One service process: its module, port and the environment it is (re)started with."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    run_dir: Path
    log_dir: Path

    @property
    def url(self) -> str:
        """The base URL of its HTTP server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        """Where its pid is kept while it runs."""
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """Its JSON log lines, kept across restarts."""
        return self.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid while it runs."""
        return read_pid(self.pid_file)

    def start(self) -> None:
        """Spawn it in a session of its own (its pid is then its process group)."""
        if self.pid() is None:
            spawn([sys.executable, "-m", self.module], pid_file=self.pid_file, log_file=self.log_file, env=self.env)

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> float:
        """Wait for ``/readyz``; return the seconds it took."""
        started = time.monotonic()
        wait_until(lambda: ready(self.url), timeout=timeout, what=self.name, alive=lambda: self.pid() is not None,
                   log_file=self.log_file)
        return time.monotonic() - started

    def kill(self) -> int | None:
        """SIGKILL its whole process group, as a crash or an OOM kill would; return the pid killed."""
        pid = self.pid()
        if pid is None:
            return None
        _signal_group(pid, signal.SIGKILL)
        _wait_gone(pid, timeout=10)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def terminate(self, timeout: float = 60.0) -> None:
        """SIGTERM (a graceful stop: the batch in hand is finished), SIGKILL after ``timeout``."""
        pid = self.pid()
        if pid is None:
            return
        _signal_group(pid, signal.SIGTERM)
        # A frozen process (a throughput probe interrupted by an error) only sees the SIGTERM once thawed.
        _signal_group(pid, signal.SIGCONT)
        if not _wait_gone(pid, timeout=timeout):
            _signal_group(pid, signal.SIGKILL)
            _wait_gone(pid, timeout=10)
        self.pid_file.unlink(missing_ok=True)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Our own child: reaping it is what makes it disappear from the process table.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        # A zombie is dead already; it only waits for its parent (a server's launcher, say) to collect it.
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@dataclass
class ChaosCluster:
    """Kafka, PostgreSQL, feedback-api, generators ``gen-<i>`` and stores ``store-<i>``, all under one temp dir."""

    partitions: int = 12
    stores: int = 1
    max_generators: int = 3
    keep_files: bool = False
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="policyloop-chaos-")))

    def __post_init__(self) -> None:
        self.kafka = KafkaBroker(home=self.home / "kafka", port=free_port(), controller_port=free_port(),
                                 heap="768M")
        self.postgres = PostgresServer(home=self.home / "postgres", port=free_port())
        self.settings = ServiceSettings(auth_jwt_secret=secrets.token_urlsafe(32), auth_jwt_issuer="policyloop-chaos",
                                        auth_jwt_audience="policyloop")
        self.api: ServiceProcess | None = None
        self.generators: list[ServiceProcess] = []
        self.store_processes: list[ServiceProcess] = []

    @property
    def database_url(self) -> str:
        """The store's database."""
        return self.postgres.url(DATABASE)

    @property
    def bootstrap(self) -> str:
        """The broker's bootstrap address."""
        return self.kafka.bootstrap

    @property
    def processes(self) -> list[ServiceProcess]:
        """Every service process, running or not."""
        return [process for process in [self.api, *self.generators, *self.store_processes] if process is not None]

    def token(self, subject: str, role: str = "user") -> str:
        """A bearer token for ``subject``, valid for the whole run."""
        return mint_token(self.settings, subject=subject, roles=[role], ttl_seconds=24 * 3600)

    def start(self) -> None:
        """Servers, topics, a migrated database, feedback-api, one generator and the stores; returns when ready."""
        self.kafka.start()
        self.postgres.start()
        self.postgres.create_database(DATABASE)
        ensure_topics({"bootstrap.servers": self.bootstrap}, all_topics(), partitions=self.partitions)
        base = self._environment()
        migrated = subprocess.run([sys.executable, "-m", "policy_store.migrate"], env=base, capture_output=True,
                                  text=True)
        if migrated.returncode != 0:
            raise RuntimeError(f"migrations failed:\n{migrated.stdout}\n{migrated.stderr}")
        self.api = self._process("feedback-api", "feedback_api.main", "FEEDBACK_API_PORT", base)
        # Each generator keeps its transactional id across restarts: the restarted one fences its killed self.
        self.generators = [self._process(f"gen-{index}", "policy_generator.main", "POLICY_GENERATOR_PORT", base,
                                         GENERATOR_TRANSACTIONAL_ID=f"chaos-gen-{index}")
                           for index in range(self.max_generators)]
        self.store_processes = [self._process(f"store-{index}", "policy_store.main", "POLICY_STORE_PORT", base)
                                for index in range(self.stores)]
        for process in [self.api, self.generators[0], *self.store_processes]:
            process.start()
        for process in [self.api, self.generators[0], *self.store_processes]:
            process.wait_ready()

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "AUTH_JWT_SECRET": self.settings.auth_jwt_secret,
            "AUTH_JWT_ISSUER": self.settings.auth_jwt_issuer,
            "AUTH_JWT_AUDIENCE": self.settings.auth_jwt_audience,
            "LLM_PROVIDER": "offline",
            # One client sends everything: the per-user and per-address limits would measure themselves.
            "RATE_LIMIT_PER_MINUTE": "0",
            "RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0",
            "GENERATOR_POLL_TIMEOUT_SECONDS": "0.2",
        }

    def _process(self, name: str, module: str, port_variable: str, base: dict[str, str],
                 **extra: str) -> ServiceProcess:
        port = free_port()
        return ServiceProcess(name=name, module=module, port=port, env={**base, port_variable: str(port), **extra},
                              run_dir=self.home / "run", log_dir=self.home / "log")

    def running_generators(self) -> list[ServiceProcess]:
        """The generators whose process is alive."""
        return [process for process in self.generators if process.pid() is not None]

    def restart_kafka(self) -> None:
        """Stop the broker (controlled shutdown) and start it again on the same data and ports."""
        self.kafka.stop()
        self.kafka.start()

    def stop(self) -> None:
        """Stop every process and server; remove the files unless asked to keep them."""
        for process in self.processes:
            process.terminate(timeout=20)
        self.postgres.stop()
        self.kafka.stop()
        if not self.keep_files:
            shutil.rmtree(self.home, ignore_errors=True)

    def kill_everything(self) -> None:
        """Last resort on the way out: SIGKILL whatever still runs, servers included."""
        for process in self.processes:
            process.kill()
        broker = read_pid(self.kafka.home / "kafka.pid")
        if broker is not None:
            _signal_group(broker, signal.SIGKILL)
        postmaster = self.postgres.pid()
        if postmaster is not None:
            os.kill(postmaster, signal.SIGKILL)
