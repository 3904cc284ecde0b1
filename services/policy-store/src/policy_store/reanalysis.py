"""Re-analysis: choosing the feedback to decide again and asking the generator for it, one request per feedback.

After a better model, prompt or schema catalogue, an operator has the generator decide stored feedback again. The
store knows every submission, so it selects the feedback (negative, with the submission stored) and publishes one
``FeedbackReanalysisRequested`` per feedback, carrying the submission rebuilt from its row. The event id is derived
from the run id and the feedback id: publishing a run's page again is the same event, applied once here and decided
once per run by the generator, so a run can be repeated or resumed safely. Each request is published and applied
on the same path as the review routes (:mod:`policy_store.publishing`): Kafka first, so a broker outage is a clear
503 and nothing is recorded that the generator will not see.

The selection is read in keyset pages ordered by feedback id: rows after the cursor are not yet requested, so the
decisions that arrive while a run is being published do not move the pages still to come.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from policy_store.identifiers import could_exist
from policy_store.materializer import Materializer
from policy_store.models import FeedbackRecord
from policy_store.publishing import apply_here, publish_or_503
from policyloop_common.cloudevents import OutgoingEvent, encode
from policyloop_common.errors import ApiError
from policyloop_common.events import FeedbackContext, FeedbackReanalysisRequested, FeedbackSubmitted, Rating

log = logging.getLogger(__name__)

SOURCE = "/policyloop/policy-store"
# What the feedback row's status may be; every one of them can be decided again.
FEEDBACK_STATUSES = ("pending", "generated", "skipped", "failed")
# Run ids travel in URL paths and in operators' shells; the event model allows the same characters.
RUN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Namespace of the request event ids: uuid5(namespace, run and feedback) is the same wherever it is computed.
REANALYSIS_NAMESPACE = uuid.UUID("9d6e3b1a-57c4-4f0e-b2a8-3c1f6e0d7a94")


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id, ``rrun-<UTC time>-<6 hex>``: sortable by when the run started, unique in practice."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"rrun-{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def request_event_id(run_id: str, feedback_id: str) -> str:
    """The one event id the request of ``feedback_id`` within ``run_id`` can have."""
    return str(uuid.uuid5(REANALYSIS_NAMESPACE, f"{run_id}\n{feedback_id}"))


@dataclass(frozen=True)
class Selection:
    """Which feedback a run re-analyses; filters left empty select everything that can be re-analysed."""

    feedback_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    submitted_after: datetime | None = None
    submitted_before: datetime | None = None

    @property
    def narrows(self) -> bool:
        """False when no filter is set: the selection is every feedback that can be re-analysed."""
        return bool(self.feedback_ids or self.statuses or self.reasons
                    or self.submitted_after or self.submitted_before)

    def query(self) -> Select:
        """The rows this selection matches, among those that can be re-analysed."""
        query = reanalysable(select(FeedbackRecord))
        if self.feedback_ids:
            query = query.where(FeedbackRecord.feedback_id.in_(self.feedback_ids))
        if self.statuses:
            query = query.where(FeedbackRecord.status.in_(self.statuses))
        if self.reasons:
            query = query.where(FeedbackRecord.reason.in_(self.reasons))
        if self.submitted_after is not None:
            query = query.where(FeedbackRecord.submitted_at >= self.submitted_after)
        if self.submitted_before is not None:
            query = query.where(FeedbackRecord.submitted_at < self.submitted_before)
        return query


def reanalysable(query: Select) -> Select:
    """``query`` restricted to feedback the generator can decide again: negative, with its submission stored.

    Positive feedback teaches nothing; a row whose submission has not arrived (or has left the topic's retention
    before a rebuild) holds a decision without the text to decide it from.
    """
    return query.where(FeedbackRecord.rating == Rating.NEGATIVE.value, FeedbackRecord.user_id.is_not(None),
                       FeedbackRecord.conversation_id.is_not(None), FeedbackRecord.message_id.is_not(None),
                       FeedbackRecord.context.is_not(None), FeedbackRecord.submitted_at.is_not(None))


def count_selected(session: Session, selection: Selection) -> int:
    """How many feedbacks the selection matches now."""
    return session.execute(select(func.count()).select_from(selection.query().subquery())).scalar_one()


def selected_page(session: Session, selection: Selection, *, after: str | None, limit: int) -> list[FeedbackRecord]:
    """Up to ``limit`` matching rows with feedback ids after ``after``, in feedback id order."""
    query = selection.query()
    if after is not None:
        query = query.where(FeedbackRecord.feedback_id > after)
    return list(session.execute(query.order_by(FeedbackRecord.feedback_id).limit(limit)).scalars())


def not_reanalysable(session: Session, feedback_ids: Sequence[str]) -> list[str]:
    """The ids, in the order given, that no run can re-analyse: unknown, positive, or without their submission."""
    if not feedback_ids:
        return []
    known = set(session.execute(reanalysable(select(FeedbackRecord.feedback_id))
                                .where(FeedbackRecord.feedback_id.in_(feedback_ids))).scalars())
    return [feedback_id for feedback_id in dict.fromkeys(feedback_ids) if feedback_id not in known]


def submission_of(record: FeedbackRecord) -> FeedbackSubmitted:
    """The ``FeedbackSubmitted`` a row was materialized from (ValidationError if the row does not hold one)."""
    return FeedbackSubmitted(
        feedback_id=record.feedback_id, user_id=record.user_id, conversation_id=record.conversation_id,
        message_id=record.message_id, rating=record.rating, comment=record.comment,
        context=FeedbackContext.model_validate(record.context), submitted_at=record.submitted_at)


def encode_cursor(feedback_id: str) -> str:
    """The cursor that continues after this feedback."""
    return base64.urlsafe_b64encode(feedback_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The feedback id a cursor continues after; 422 for anything that is not one of ours."""
    try:
        feedback_id = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
    except (ValueError, UnicodeDecodeError) as error:
        raise _bad_cursor() from error
    if not could_exist(feedback_id):
        raise _bad_cursor()
    return feedback_id


def _bad_cursor() -> ApiError:
    return ApiError(422, "invalid_request", "the cursor is not valid",
                    [{"field": "cursor", "message": "use next_cursor from a previous page of the same selection"}])


@dataclass(frozen=True)
class Requested:
    """What one call asked for: the feedback ids requested, and those whose row holds no valid submission."""

    feedback_ids: list[str]
    unreadable_ids: list[str]


async def request_reanalysis(app: FastAPI, records: Sequence[FeedbackRecord], *, run_id: str, requested_by: str,
                             reason: str | None) -> Requested:
    """Publish one request per row (503 when Kafka does not take them all), then record them here."""
    requested_at = datetime.now(UTC)
    trace_id = uuid.uuid4().hex
    outgoing: list[OutgoingEvent] = []
    unreadable: list[str] = []
    for record in records:
        try:
            event = FeedbackReanalysisRequested(feedback_id=record.feedback_id, run_id=run_id,
                                                requested_by=requested_by, requested_at=requested_at,
                                                reason=reason, feedback=submission_of(record))
        except ValidationError as error:
            # Stored by an older version under other bounds: the generator could not read it either.
            log.warning("stored submission cannot be re-analysed",
                        extra={"feedback_id": record.feedback_id, "error": str(error)[:300]})
            unreadable.append(record.feedback_id)
            continue
        outgoing.append(encode(event, source=SOURCE, event_id=request_event_id(run_id, record.feedback_id),
                               time=requested_at, trace_id=trace_id, topic=app.state.settings.feedback_topic))
    # All at once: each waits for the broker's acknowledgement, and a page may hold a thousand.
    results = await asyncio.gather(*(publish_or_503(app, event, "re-analysis request") for event in outgoing),
                                   return_exceptions=True)
    failure = next((result for result in results if isinstance(result, BaseException)), None)
    if failure is not None:
        # The ones Kafka took are applied by the consumer; repeating the call publishes the same event ids.
        raise failure
    await run_in_threadpool(_apply_all, app.state.session_factory, app.state.materializer, outgoing)
    skipped = set(unreadable)
    return Requested(feedback_ids=[record.feedback_id for record in records if record.feedback_id not in skipped],
                     unreadable_ids=unreadable)


def _apply_all(sessions: sessionmaker[Session], materializer: Materializer, events: Sequence[OutgoingEvent]) -> None:
    for event in events:
        apply_here(sessions, materializer, event)
