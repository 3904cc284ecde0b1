"""A store's state as comparable data: what two stores that applied the same events must agree on."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, select

from policy_store.models import Base

# Columns that record when or where a database applied an event, not what the events say: a rebuild applies
# the same events at another time and reads each from its topic, whereas the live store also applies its own
# reviews before reading them back. History snapshots are the policy at the moment a change was applied, which
# depends on which partition was read first; what changed, who, when and why are compared.
NOT_STATE = {
    "feedback": {"recorded_at"},
    "processed_events": {"processed_at", "topic", "partition", "offset"},
    "policy_history": {"id", "snapshot"},
}


def table_contents(database_url: str) -> dict[str, list[str]]:
    """Every table's rows as sorted JSON, without the columns that are not state."""
    engine = create_engine(database_url)
    contents = {}
    try:
        with engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                columns = [c for c in table.columns if c.name not in NOT_STATE.get(table.name, set())]
                rows = connection.execute(select(*columns)).all()
                contents[table.name] = sorted(json.dumps(list(row), default=str, sort_keys=True) for row in rows)
    finally:
        engine.dispose()
    return contents
