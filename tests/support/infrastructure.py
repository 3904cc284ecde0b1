"""Real Kafka and PostgreSQL servers for one test session: fresh, private, on free ports, removed afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import psycopg

from tools.local_stack.kafka import KafkaBroker
from tools.local_stack.postgres import PostgresServer


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerSet:
    """Starts what a test asks for, once per session, and tears all of it down at the end."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="policyloop-test-"))
        self._kafka: KafkaBroker | None = None
        self._postgres: PostgresServer | None = None

    @property
    def kafka(self) -> KafkaBroker:
        """The session's broker, started on first use (or the one named by TEST_KAFKA_BOOTSTRAP)."""
        if self._kafka is None:
            broker = KafkaBroker(home=self.home / "kafka", port=free_port(), controller_port=free_port(),
                                 heap="768M")
            broker.start()
            self._kafka = broker
        return self._kafka

    @property
    def postgres(self) -> PostgresServer:
        """The session's PostgreSQL server, started on first use."""
        if self._postgres is None:
            server = PostgresServer(home=self.home / "postgres", port=free_port())
            server.start()
            self._postgres = server
        return self._postgres

    def new_database(self, prefix: str = "test") -> str:
        """Create an empty database with a unique name; return its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.postgres.create_database(name)
        return self.postgres.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`new_database`, closing its connections first."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(f"host=127.0.0.1 port={self.postgres.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Stop the servers and remove their files."""
        if self._kafka is not None:
            self._kafka.stop()
        if self._postgres is not None:
            self._postgres.stop()
        if not os.environ.get("POLICYLOOP_KEEP_TEST_DATA"):
            shutil.rmtree(self.home, ignore_errors=True)
