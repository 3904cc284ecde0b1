"""Fixtures of policy-store's tests: a migrated database and sessions on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy import event
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


@contextmanager
def _statements_sent(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def statements_sent() -> Callable[[Session], AbstractContextManager[list[str]]]:
    """``with statements_sent(session) as statements``: the text of every statement the session sends meanwhile."""
    return _statements_sent
