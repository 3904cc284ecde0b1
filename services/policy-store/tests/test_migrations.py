"""Migrations upgrade an empty database to the models' schema and downgrade it back to nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from policy_store.migrate import downgrade, upgrade
from policy_store.models import Base

pytestmark = pytest.mark.integration


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_and_downgrade_removes_them(database_url: str) -> None:
    upgrade(database_url)
    assert tables(database_url) == set(Base.metadata.tables)
    engine = create_engine(database_url)
    columns = {c["name"] for c in inspect(engine).get_columns("policies")}
    engine.dispose()
    assert set(Base.metadata.tables["policies"].columns.keys()) == columns
    downgrade(database_url)
    assert tables(database_url) == set()
    upgrade(database_url)
    assert tables(database_url) == set(Base.metadata.tables)
