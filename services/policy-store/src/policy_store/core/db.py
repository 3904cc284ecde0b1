"""Engine and sessions; ``SessionDep`` gives a route one session per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from policy_store.json_encoding import json_bytes


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine that checks connections before use, so a restarted PostgreSQL is picked up again; JSON values
    are written by ``json_bytes``."""
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                         connect_args={"connect_timeout": 5}, json_serializer=json_bytes)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def database_reachable(engine: Engine) -> bool:
    """True when ``SELECT 1`` succeeds."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return True


def get_db(request: Request) -> Iterator[Session]:
    """One session per request, closed afterwards."""
    with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
