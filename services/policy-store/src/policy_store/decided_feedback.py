"""The feedback rows a batch decides on: read and locked together, their decisions written in one statement.

Loaded as ORM objects, each decided row cost its share of the load and an ``UPDATE`` of its own at the flush
(11 % of the store's CPU in the benchmark, with the policies' updates). A decision reads only the row's status
and the decision it shows, and sets every decision column (none is kept from an earlier decision), so the rows
are plain records here, and those a decision changed go back as one ``UPDATE … FROM`` the batch's JSON document
(``policy_store.bulk``), kept until the session next reads the feedback table or commits
(``policy_store.kept_rows``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from policy_store.bulk import any_of, insert_in_order, unnested
from policy_store.kept_rows import KeptRows
from policy_store.models import FeedbackRecord

FEEDBACK = FeedbackRecord.__table__
# The columns a decision sets, all of them every time.
DECISION_COLUMNS = ("status", "decided_at", "reanalysis_run_id", "reason", "policy_id", "duplicate_of", "decision")


@dataclass(slots=True, eq=False)
class DecidedFeedback:
    """A feedback row's decision: what the row shows now (``Materializer._show_decision`` changes it)."""

    feedback_id: str
    status: str
    decided_at: datetime | None
    reanalysis_run_id: str | None
    reason: str | None = None
    policy_id: str | None = None
    duplicate_of: str | None = None
    decision: dict[str, Any] | None = None


def lock_decided_feedback(session: Session, feedback_ids: Iterable[str]) -> dict[str, DecidedFeedback]:
    """Create the rows missing among ``feedback_ids`` and lock them all, in id order (two store replicas lock in
    the same order); their decisions by feedback id."""
    ids = sorted(set(feedback_ids))
    if not ids:
        return {}
    session.execute(insert_in_order(FEEDBACK, ("feedback_id", "status"),
                                    [dict(feedback_id=feedback_id, status="pending") for feedback_id in ids])
                    .on_conflict_do_nothing(index_elements=["feedback_id"]))
    rows = session.execute(select(FEEDBACK.c.feedback_id, FEEDBACK.c.status, FEEDBACK.c.decided_at,
                                  FEEDBACK.c.reanalysis_run_id)
                           .where(any_of(FEEDBACK.c.feedback_id, ids)).order_by(FEEDBACK.c.feedback_id)
                           .with_for_update())
    return {row.feedback_id: DecidedFeedback(row.feedback_id, row.status, row.decided_at, row.reanalysis_run_id)
            for row in rows}


def keep_decision(session: Session, feedback: DecidedFeedback) -> None:
    """Write ``feedback``'s decision, as it is then, before the session next reads the feedback or commits."""
    DECISIONS.keep(session, feedback)


def _update(session: Session, kept: list[DecidedFeedback]) -> None:
    # One row per feedback (a statement may not update a row twice); each record is as its last decision left it.
    rows = {feedback.feedback_id: {name: getattr(feedback, name) for name in ("feedback_id", *DECISION_COLUMNS)}
            for feedback in kept}
    source = unnested(FEEDBACK, ("feedback_id", *DECISION_COLUMNS), rows.values())
    session.connection().execute(update(FEEDBACK).where(FEEDBACK.c.feedback_id == source.c.feedback_id)
                                 .values({name: source.c[name] for name in DECISION_COLUMNS}))


DECISIONS = KeptRows("policyloop.decided_feedback.kept", FEEDBACK, _update)
