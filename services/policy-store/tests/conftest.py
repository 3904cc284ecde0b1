"""Fixtures of policy-store's tests: a migrated database and sessions on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from policy_store.core.db import make_engine, make_session_factory
from policy_store.migrate import upgrade


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """A fresh database at the latest migration."""
    upgrade(database_url)
    return database_url


@pytest.fixture
def sessions(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    """Session factory bound to the migrated database."""
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()
