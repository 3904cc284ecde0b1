"""A transaction's history rows, kept and sent in one statement before anything reads the history.

Every change the materializer makes adds a row to ``policy_history`` (with a snapshot of the policy). Added to
the session as ORM objects, each needed its generated id back: SQLAlchemy sends them as an ``INSERT … RETURNING``
that pairs every returned id with its row, the dearest statement of a batch (9 % of the store's CPU in the
benchmark, docs/benchmarks.md finding 11). Nothing needs those ids, so the rows are kept here, in order, and sent
as one ``INSERT`` without ``RETURNING`` — before any statement of the session that reads the history, and before
it commits. A transaction rolled back or closed drops them with the rest of its work.

Rows the materializer changes later (a review kept for a policy not yet applied, given its version when the
policy arrives) stay ORM objects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import TextClause, event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.util import find_tables

from policy_store.bulk import insert_in_order
from policy_store.models import PolicyHistory

HISTORY = PolicyHistory.__table__
COLUMNS = ("policy_id", "version", "action", "actor", "reason", "at", "event_id", "snapshot")
# Where a session keeps the rows not sent yet.
PENDING = "policyloop.history_rows.pending"


def add_history_row(session: Session, row: dict[str, Any]) -> None:
    """Keep ``row`` (a value for each of ``COLUMNS``) for the session's next read of the history or its commit."""
    pending = session.info.get(PENDING)
    if pending is None:
        pending = session.info[PENDING] = []
        event.listen(session, "do_orm_execute", _before_statement)
        event.listen(session, "before_commit", send_history_rows)
        event.listen(session, "after_transaction_end", _drop_unsent)
    pending.append(row)


def send_history_rows(session: Session) -> None:
    """Insert the rows kept so far, in the order they were added, after the session's own pending rows.

    Those go first because they were added first: a history row the session holds as an object is one kept for
    a policy not applied yet, so every row kept here for the same policy came after it.
    """
    pending = session.info.get(PENDING)
    if pending:
        session.flush()
        rows = list(pending)
        pending.clear()
        session.connection().execute(insert_in_order(HISTORY, COLUMNS, rows))


def _before_statement(state: ORMExecuteState) -> None:
    if not state.session.info.get(PENDING):
        return
    statement = state.statement
    # A statement written as text may read anything: the rows go first. Otherwise only for the history table.
    if isinstance(statement, TextClause) or HISTORY in find_tables(statement, include_joins=True,
                                                                    include_aliases=True):
        send_history_rows(state.session)


def _drop_unsent(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ended without committing them (rolled back, or closed) takes its rows with it."""
    pending = session.info.get(PENDING)
    if pending and transaction.parent is None:
        pending.clear()
