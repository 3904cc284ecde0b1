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


def reflected_indexes(url: str, table: str) -> dict[str, dict]:
    """The table's indexes as the database describes them, by name."""
    engine = create_engine(url)
    try:
        return {index["name"]: index for index in inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


def indexes(url: str, table: str) -> set[str]:
    return set(reflected_indexes(url, table))


def test_usage_revision_upgrades_downgrades_and_upgrades_again(database_url: str) -> None:
    upgrade(database_url, "0001")
    assert "policy_usage" not in tables(database_url)
    upgrade(database_url, "0002")
    assert "policy_usage" in tables(database_url)
    assert {"ix_feedback_message", "ix_feedback_submitted_at"} <= indexes(database_url, "feedback")
    assert indexes(database_url, "policy_usage") == {"ix_policy_usage_message"}
    downgrade(database_url, "0001")
    assert "policy_usage" not in tables(database_url)
    assert not {"ix_feedback_message", "ix_feedback_submitted_at"} & indexes(database_url, "feedback")
    upgrade(database_url)
    assert tables(database_url) == set(Base.metadata.tables)
    expected = {column.name for column in Base.metadata.tables["policy_usage"].columns}
    engine = create_engine(database_url)
    try:
        assert {c["name"] for c in inspect(engine).get_columns("policy_usage")} == expected
        assert inspect(engine).get_pk_constraint("policy_usage")["constrained_columns"] == [
            "policy_id", "conversation_id", "message_id"]
    finally:
        engine.dispose()


def columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_reanalysis_revision_upgrades_downgrades_and_upgrades_again(database_url: str) -> None:
    upgrade(database_url, "0003")
    assert "reanalysis_requests" not in tables(database_url)
    upgrade(database_url, "0004")
    expected = set(Base.metadata.tables["reanalysis_requests"].columns.keys())
    assert columns(database_url, "reanalysis_requests") == expected
    assert "reanalysis_run_id" in columns(database_url, "feedback")
    engine = create_engine(database_url)
    try:
        assert inspect(engine).get_pk_constraint("reanalysis_requests")["constrained_columns"] == [
            "run_id", "feedback_id"]
    finally:
        engine.dispose()
    downgrade(database_url, "0003")
    assert "reanalysis_requests" not in tables(database_url)
    assert "reanalysis_run_id" not in columns(database_url, "feedback")
    upgrade(database_url)
    assert columns(database_url, "feedback") == set(Base.metadata.tables["feedback"].columns.keys())


def test_imported_history_index_revision_upgrades_downgrades_and_upgrades_again(database_url: str) -> None:
    upgrade(database_url, "0004")
    assert "ix_policy_history_imported" not in indexes(database_url, "policy_history")
    upgrade(database_url, "0005")
    imported = reflected_indexes(database_url, "policy_history")["ix_policy_history_imported"]
    assert imported["column_names"] == ["policy_id"]
    assert "imported" in imported["dialect_options"]["postgresql_where"]
    downgrade(database_url, "0004")
    assert "ix_policy_history_imported" not in indexes(database_url, "policy_history")
    upgrade(database_url)
    assert {"ix_policy_history_policy_id", "ix_policy_history_imported"} <= indexes(database_url, "policy_history")
