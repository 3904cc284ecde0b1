"""Private servers and service processes for one benchmark run, and the CPU time they use.

One run gets its own Kafka broker and PostgreSQL server (free ports, a temporary directory); each benchmark gets
its own topics, consumer groups and database on them, so benchmarks never see each other's data. Every process
started here is stopped by :meth:`BenchRun.close`, which ``python -m bench`` calls whatever happens.
"""

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
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from policyloop_common.auth import mint_token
from policyloop_common.events import (
    FEEDBACK_SUBMITTED_TOPIC,
    POLICY_DECISIONS_TOPIC,
    POLICY_REVIEWS_TOPIC,
    POLICY_USAGE_TOPIC,
)
from policyloop_common.kafka.topics import all_topics, ensure_topics
from policyloop_common.settings import ServiceSettings
from tools.local_stack.kafka import KafkaBroker
from tools.local_stack.postgres import PostgresServer
from tools.local_stack.processes import wait_until

ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stat(path: Path) -> tuple[int, float] | None:
    """A process's parent pid and user + system CPU seconds (all its threads), from its ``stat``; None once the
    process is gone."""
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # Counted after the ")" that ends the command name: field 4 of stat (ppid), fields 14 and 15 (utime, stime).
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads); None once it is gone."""
    stat = _stat(Path(f"/proc/{pid}/stat"))
    return stat[1] if stat is not None else None


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid`` and its children, e.g. a PostgreSQL server and its backends (a backend that
    exits takes its CPU with it: measure over intervals in which the connections stay open)."""
    total = cpu_seconds(pid) or 0.0
    for path in Path("/proc").glob("[0-9]*/stat"):
        stat = _stat(path)
        if stat is not None and stat[0] == pid:
            total += stat[1]
    return total


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


@dataclass
class Topics:
    """The topic names one benchmark uses; prefixed so that benchmarks sharing a broker stay apart."""

    prefix: str

    @property
    def feedback(self) -> str:
        """Where feedback-api publishes and the generator reads."""
        return f"{self.prefix}.{FEEDBACK_SUBMITTED_TOPIC}"

    @property
    def decisions(self) -> str:
        """Where the generator publishes."""
        return f"{self.prefix}.{POLICY_DECISIONS_TOPIC}"

    @property
    def reviews(self) -> str:
        """Where the store publishes reviews."""
        return f"{self.prefix}.{POLICY_REVIEWS_TOPIC}"

    @property
    def usage(self) -> str:
        """Where the store publishes which policies answers used."""
        return f"{self.prefix}.{POLICY_USAGE_TOPIC}"

    def environment(self) -> dict[str, str]:
        """The services' settings naming these topics."""
        return {"FEEDBACK_TOPIC": self.feedback, "DECISIONS_TOPIC": self.decisions, "REVIEWS_TOPIC": self.reviews,
                "USAGE_TOPIC": self.usage}


@dataclass
class Service:
    """A service process started by the run: its pid, port, log and CPU time."""

    name: str
    process: subprocess.Popen
    port: int
    log_file: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def url(self) -> str:
        """Its HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        """CPU seconds used so far (0 once it has exited)."""
        return cpu_seconds(self.pid) or 0.0

    def alive(self) -> bool:
        """True while it runs."""
        return self.process.poll() is None

    def wait_ready(self, timeout: float = 180.0, path: str = "/readyz") -> None:
        """Wait until ``GET path`` answers 200."""
        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}{path}", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, what=self.name, alive=self.alive, log_file=self.log_file)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM its process group, SIGKILL after ``timeout``."""
        if self.process.poll() is not None:
            return
        _signal_group(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return


@dataclass
class BenchRun:
    """The servers and processes of one ``python -m bench`` run, all under one temporary directory."""

    keep_files: bool = False
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="policyloop-bench-")))

    def __post_init__(self) -> None:
        self._kafka: KafkaBroker | None = None
        self._postgres: PostgresServer | None = None
        self.services: list[Service] = []
        self.settings = ServiceSettings(auth_jwt_secret=secrets.token_urlsafe(32), auth_jwt_issuer="policyloop-bench",
                                        auth_jwt_audience="policyloop")

    @property
    def kafka(self) -> KafkaBroker:
        """The run's broker, started on first use."""
        if self._kafka is None:
            broker = KafkaBroker(home=self.home / "kafka", port=free_port(), controller_port=free_port(),
                                 heap="1G")
            self._kafka = broker
            broker.start()
        return self._kafka

    @property
    def postgres(self) -> PostgresServer:
        """The run's PostgreSQL server, started on first use."""
        if self._postgres is None:
            server = PostgresServer(home=self.home / "postgres", port=free_port())
            self._postgres = server
            server.start()
        return self._postgres

    @property
    def bootstrap(self) -> str:
        """The broker's bootstrap address."""
        return self.kafka.bootstrap

    def token(self, subject: str, *roles: str) -> str:
        """A bearer token valid for the whole run."""
        return mint_token(self.settings, subject=subject, roles=list(roles), ttl_seconds=24 * 3600)

    def topics(self, benchmark: str, partitions: int) -> Topics:
        """Fresh topics (with their dead-letter topics) for one benchmark."""
        topics = Topics(prefix=f"{benchmark}-{uuid.uuid4().hex[:6]}")
        names = all_topics([topics.feedback, topics.decisions, topics.reviews, topics.usage])
        ensure_topics({"bootstrap.servers": self.bootstrap}, names, partitions=partitions)
        return topics

    def database(self, benchmark: str, *, migrated: bool = True) -> str:
        """A fresh database (with the store's migrations applied unless ``migrated`` is False); its URL."""
        name = f"{benchmark.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
        self.postgres.create_database(name)
        url = self.postgres.url(name)
        if migrated:
            result = subprocess.run([sys.executable, "-m", "policy_store.migrate"],
                                    env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True,
                                    cwd=ROOT)
            if result.returncode != 0:
                raise RuntimeError(f"migrations failed:\n{result.stdout}\n{result.stderr}")
        return url

    def connect(self, database_url: str) -> psycopg.Connection:
        """A psycopg connection to a database made by :meth:`database`."""
        return psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def environment(self, **overrides: str) -> dict[str, str]:
        """The environment every service process gets: the broker, the run's token secret, and ``overrides``."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("OPENAI_", "GENERATOR_", "STORE_", "RATE_LIMIT_", "LLM_"))}
        env.update({
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "AUTH_JWT_SECRET": self.settings.auth_jwt_secret,
            "AUTH_JWT_ISSUER": self.settings.auth_jwt_issuer,
            "AUTH_JWT_AUDIENCE": self.settings.auth_jwt_audience,
            "PYTHONPATH": str(ROOT),
        })
        env.update(overrides)
        return env

    def start(self, name: str, module: str, *, port_variable: str | None = None,
              env: Mapping[str, str] | None = None, args: tuple[str, ...] = ()) -> Service:
        """Spawn ``python -m module`` in a session of its own, on a free port.

        The port is given in the environment variable ``port_variable``, or else as ``--port`` on the command line.
        """
        port = free_port()
        environment = dict(env if env is not None else self.environment())
        if port_variable:
            environment[port_variable] = str(port)
        else:
            args = ("--port", str(port), *args)
        log_file = self.home / "log" / f"{name}-{len(self.services)}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=environment, cwd=ROOT, start_new_session=True)
        service = Service(name=name, process=process, port=port, log_file=log_file)
        self.services.append(service)
        return service

    def stop_services(self) -> None:
        """Stop every service process of the run (those of the benchmark that just ended)."""
        for service in reversed(self.services):
            try:
                service.stop()
            except (OSError, subprocess.SubprocessError) as error:
                print(f"  could not stop {service.name} (pid {service.pid}): {error}", file=sys.stderr)
        self.services.clear()

    def close(self) -> None:
        """Stop everything the run started and remove its files."""
        self.stop_services()
        if self._kafka is not None:
            self._kafka.stop()
        if self._postgres is not None:
            try:
                self._postgres.stop()
            except RuntimeError as error:
                print(f"  could not stop PostgreSQL: {error}", file=sys.stderr)
        if not self.keep_files:
            shutil.rmtree(self.home, ignore_errors=True)


def wait_for(check, *, timeout: float, what: str, interval: float = 0.05):
    """Poll ``check`` until it returns a truthy value, which is returned; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"{what} not reached within {timeout:.0f}s")


def wait_listening(port: int, *, timeout: float = 30.0, what: str = "server") -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    def accepting() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    wait_for(accepting, timeout=timeout, what=f"{what} listening on {port}")


@dataclass
class Context:
    """What every benchmark gets: the run's servers, whether this is a quick run, and whether to profile."""

    run: BenchRun
    quick: bool = False
    profile: bool = False

    def scale(self, full: float, quick: float) -> float:
        """``full`` normally, ``quick`` with ``--quick``."""
        return quick if self.quick else full
