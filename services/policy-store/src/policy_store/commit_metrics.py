"""Counting what a transaction stored only once it is committed.

The consumer rolls a failed batch back and applies it again; a counter incremented while applying would count
the rolled-back attempt too. Increments wait in the session until its commit and are dropped on rollback.
"""

from __future__ import annotations

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.orm import Session

_PENDING = "policyloop_pending_increments"


def count_on_commit(session: Session, counter: Counter, amount: float = 1, labels: tuple[str, ...] = ()) -> None:
    """Increment ``counter`` (with ``labels``) by ``amount`` when ``session`` commits its transaction."""
    if amount <= 0:
        return
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _flush)
        event.listen(session, "after_rollback", _drop)
    pending.append((counter, labels, amount))


def _flush(session: Session) -> None:
    for counter, labels, amount in session.info.pop(_PENDING, []):
        (counter.labels(*labels) if labels else counter).inc(amount)
    session.info[_PENDING] = []


def _drop(session: Session) -> None:
    session.info[_PENDING] = []
