"""Session fixtures shared by every test suite: the real Kafka broker and PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.infrastructure import ServerSet


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[ServerSet]:
    """Fresh servers for this run; started lazily by the fixtures below."""
    infra = ServerSet()
    yield infra
    infra.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(infrastructure: ServerSet) -> str:
    """Bootstrap address of the session's real Kafka broker."""
    return infrastructure.kafka.bootstrap


@pytest.fixture(scope="session")
def postgres_admin_url(infrastructure: ServerSet) -> str:
    """SQLAlchemy URL of the session server's ``postgres`` database (superuser, trust auth)."""
    return infrastructure.postgres.url("postgres")


@pytest.fixture
def database_url(infrastructure: ServerSet) -> Iterator[str]:
    """A new empty database for one test, dropped afterwards."""
    url = infrastructure.new_database()
    yield url
    infrastructure.drop_database(url)


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix for topics and consumer groups, so tests do not see each other's data."""
    return uuid.uuid4().hex[:10]
