"""A transaction's history rows, kept and sent in one statement before anything reads the history.

Every change the materializer makes adds a row to ``policy_history`` (with a snapshot of the policy). Added to
the session as ORM objects, each needed its generated id back: SQLAlchemy sends them as an ``INSERT … RETURNING``
that pairs every returned id with its row, the dearest statement of a batch (9 % of the store's CPU in the
benchmark, docs/benchmarks.md finding 11). Nothing needs those ids, so the rows are kept (``policy_store.kept_rows``)
and sent in order as one ``INSERT`` without ``RETURNING`` — before any statement of the session that reads the
history, and before it commits.

Rows the materializer changes later (a review kept for a policy not yet applied, given its version when the
policy arrives) stay ORM objects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from policy_store.bulk import insert_in_order
from policy_store.kept_rows import KeptRows
from policy_store.models import PolicyHistory

HISTORY = PolicyHistory.__table__
COLUMNS = ("policy_id", "version", "action", "actor", "reason", "at", "event_id", "snapshot")


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert the rows in the order they were added, after the session's own pending rows.

    Those go first because they were added first: a history row the session holds as an object is one kept for
    a policy not applied yet, so every row kept here for the same policy came after it.
    """
    session.flush()
    session.connection().execute(insert_in_order(HISTORY, COLUMNS, rows))


HISTORY_ROWS = KeptRows("policyloop.history_rows.pending", HISTORY, _insert)


def add_history_row(session: Session, row: dict[str, Any]) -> None:
    """Keep ``row`` (a value for each of ``COLUMNS``) for the session's next read of the history or its commit."""
    HISTORY_ROWS.keep(session, row)
