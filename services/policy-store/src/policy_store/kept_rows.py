"""Writes a transaction keeps and sends together: before any statement that reads their table, and before commit.

Writing each row when it is made costs a statement per row, or, for ORM objects, the flush's bookkeeping and
statements of its own (``policy_store.history_rows``, ``policy_store.decided_feedback``). Kept here instead,
each kind of row goes as one statement — as late as it can go and still be seen by everything that reads it:
a statement of the session naming its table (or written as text, which may read anything), or the commit. A
transaction rolled back or closed drops them with the rest of its work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, TextClause, event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.util import find_tables

# Where a session keeps the kinds it has rows of, in the order they were first used.
KINDS = "policyloop.kept_rows.kinds"


@dataclass(frozen=True, eq=False)
class KeptRows:
    """One kind of kept row: ``send`` writes the rows of ``table`` kept so far, given in the order kept."""

    name: str
    table: Table
    send: Callable[[Session, list[Any]], None]

    def keep(self, session: Session, row: Any) -> None:
        """Keep ``row`` for the session's next statement on ``table``, or its commit."""
        pending = session.info.get(self.name)
        if pending is None:
            pending = session.info[self.name] = []
            kinds = session.info.get(KINDS)
            if kinds is None:
                kinds = session.info[KINDS] = []
                event.listen(session, "do_orm_execute", _before_statement)
                event.listen(session, "before_commit", send_all)
                event.listen(session, "after_transaction_end", _drop_unsent)
            kinds.append(self)
        pending.append(row)

    def send_kept(self, session: Session) -> None:
        """Write the rows kept so far (none kept: nothing is sent)."""
        pending = session.info.get(self.name)
        if pending:
            rows = list(pending)
            pending.clear()
            self.send(session, rows)


def send_all(session: Session) -> None:
    """Write every kind of row kept so far."""
    for kind in session.info.get(KINDS, ()):
        kind.send_kept(session)


def _before_statement(state: ORMExecuteState) -> None:
    kinds = [kind for kind in state.session.info.get(KINDS, ()) if state.session.info.get(kind.name)]
    if not kinds:
        return
    statement = state.statement
    if isinstance(statement, TextClause):
        read = None  # written as text, it may read anything: every kind goes first
    else:
        read = find_tables(statement, include_joins=True, include_aliases=True)
    for kind in kinds:
        if read is None or kind.table in read:
            kind.send_kept(state.session)


def _drop_unsent(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ended without committing them (rolled back, or closed) takes its rows with it."""
    if transaction.parent is None:
        for kind in session.info.get(KINDS, ()):
            session.info[kind.name].clear()
