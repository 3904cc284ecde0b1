"""Applying events to the database: idempotent by event id, whatever the order in which topics deliver them."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import Connection, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from policy_store.bulk import any_of, insert_in_order, unnested
from policy_store.commit_metrics import count_on_commit
from policy_store.decided_feedback import DecidedFeedback, keep_decision, lock_decided_feedback
from policy_store.history_rows import add_history_row
from policy_store.metrics import ATTRIBUTED_FEEDBACK, POLICY_USES
from policy_store.models import (
    FeedbackRecord,
    PolicyEvidence,
    PolicyHistory,
    PolicyRecord,
    PolicyUsage,
    ProcessedEvent,
    ReanalysisRequest,
)
from policy_store.serialization import policy_document
from policyloop_common.cloudevents import IncomingEvent
from policyloop_common.events import (
    REVIEW_OUTCOME,
    DecisionEvent,
    FeedbackReanalysisRequested,
    FeedbackSubmitted,
    PolicyEdited,
    PolicyGenerated,
    PolicyGenerationFailed,
    PolicyImported,
    PolicyReviewed,
    PolicySkipped,
    PolicyUsed,
    ReviewAction,
    SkipReason,
    TokenUsage,
)
from policyloop_common.policy import Policy, PolicyStatus, priority_with_support
from policyloop_common.text_matching import schema_objects

log = logging.getLogger(__name__)

GENERATOR_ACTOR = "policy-generator"
DECISIONS = (PolicyGenerated, PolicySkipped, PolicyGenerationFailed)
# The columns a submission sets: the decision's columns are the decision events' own.
SUBMISSION_FIELDS = ("user_id", "conversation_id", "message_id", "rating", "comment", "context", "submitted_at")
SUBMISSION_COLUMNS = ("feedback_id", "status", *SUBMISSION_FIELDS)
CLAIM_COLUMNS = ("event_id", "event_type", "topic", "partition", "offset")
ANSWER_COLUMNS = ("conversation_id", "message_id")
# Where a session keeps the state of the batch it is applying.
BATCH_STATE = "policyloop.materializer.batch"
EVIDENCE = PolicyEvidence.__table__.c
FEEDBACK = FeedbackRecord.__table__
PROCESSED = ProcessedEvent.__table__
# One evidence row, given as parameters: the statement is built once, not again for each repeated feedback.
ADD_EVIDENCE = insert(PolicyEvidence.__table__).on_conflict_do_nothing().returning(EVIDENCE.feedback_id)


class EvidenceRow(NamedTuple):
    feedback_id: str
    added_at: datetime
    event_id: str | None


@dataclass
class BatchState:
    """What ``Materializer.prepare_batch`` locked and learnt, kept in the session for the batch's events.

    ``evidence`` holds the evidence rows of the policies the batch concerns, in the table's order (when, then
    feedback id), read once when the batch began and kept up to date by the batch's own writes; a policy missing
    from it is looked up. The ``no_*`` sets hold policies the batch may create that had no such rows when it
    began; every write of the batch that adds one takes the policy out of its set, so a look-up is skipped only
    while it would return nothing.
    """

    feedback: dict[str, DecidedFeedback] = field(default_factory=dict)
    policies: dict[str, PolicyRecord] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    evidence: dict[str, list[EvidenceRow]] = field(default_factory=dict)
    no_predecessors: set[str] = field(default_factory=set)
    no_early_reviews: set[str] = field(default_factory=set)


def _state(session: Session) -> BatchState:
    state = session.info.get(BATCH_STATE)
    if state is None:  # not setdefault: that would build a state on every call, for nothing but the first
        state = session.info[BATCH_STATE] = BatchState()
    return state


def _without_autoflush(session: Session) -> Connection:
    """The session's connection, for the statements on the evidence table.

    Evidence rows are only ever written by statements, never added to the session, so no row the batch added
    needs to be in the database before they run. Through the session each would first flush every row added so
    far (autoflush, Core statements included): a batch with duplicates then wrote its new policies and history
    rows a few at a time, between the duplicates, instead of together at commit.
    """
    return session.connection()


class PreparedBatch:
    """A claimed batch: ``apply`` each of its events in order; True for those applied now (not before)."""

    def __init__(self, materializer: Materializer, session: Session, claimed: set[str]) -> None:
        self._materializer = materializer
        self._session = session
        self._unapplied = set(claimed)
        self.state = BatchState()

    def apply(self, event: IncomingEvent) -> bool:
        if event.event_id not in self._unapplied:
            return False
        self._unapplied.discard(event.event_id)
        if not isinstance(event.payload, FeedbackSubmitted):
            self._materializer._apply_claimed(self._session, event)
        return True


def _policies_concerned(payload: object) -> list[str]:
    """The policies an event may change or create."""
    if isinstance(payload, PolicyGenerated):
        return [payload.policy.policy_id, *payload.decision.supersedes]
    if isinstance(payload, PolicySkipped):
        return [payload.duplicate_of] if payload.reason is SkipReason.DUPLICATE_POLICY and payload.duplicate_of else []
    if isinstance(payload, PolicyReviewed):
        return [payload.policy_id, *([payload.superseded_by] if payload.superseded_by else [])]
    if isinstance(payload, PolicyEdited):
        return [payload.policy_id]
    if isinstance(payload, PolicyImported):
        return [payload.policy.policy_id]
    return []


class Materializer:
    """Turns events into rows; ``auto_activate`` decides the status of new policies."""

    def __init__(self, *, auto_activate: bool = True) -> None:
        self.auto_activate = auto_activate

    def apply(self, session: Session, event: IncomingEvent) -> bool:
        """Apply ``event`` inside the caller's transaction; False when it was applied before."""
        return self.prepare_batch(session, [event]).apply(event)

    def prepare_batch(self, session: Session, events: Sequence[IncomingEvent]) -> PreparedBatch:
        """Claim a batch's events and do its set-based work, in the caller's transaction; the caller then calls
        ``apply`` of the result for each event, in order (one span and one log line each).

        A batch costs a handful of statements more than its events' own writes, instead of about ten round trips
        an event: every event id is claimed at once; the submissions are upserted in one statement (a decision
        applied first keeps its columns, so they may go first); the feedback rows and policies the batch decides
        on are created and locked in one statement each, in id order (two store replicas lock in the same order);
        and what a new policy would look up — evidence, predecessors, reviews applied before it — is read once for
        the batch, so that a policy with none of them (nearly all) costs no look-up at all.
        """
        fresh, seen = [], set()
        for event in events:
            if event.event_id not in seen:
                seen.add(event.event_id)
                fresh.append(event)
        claimed: set[str] = set()
        if fresh:
            # The batch's rows as one parameter (policy_store.bulk): a statement of fixed text whatever the batch holds.
            claims = insert_in_order(PROCESSED, CLAIM_COLUMNS, [dict(
                event_id=event.event_id, event_type=event.event_type, topic=event.topic or "",
                partition=event.partition, offset=event.offset) for event in fresh])
            claimed = set(session.execute(claims.on_conflict_do_nothing(index_elements=["event_id"])
                                          .returning(PROCESSED.c.event_id)).scalars())
        fresh = [event for event in fresh if event.event_id in claimed]
        batch = PreparedBatch(self, session, claimed)
        session.info[BATCH_STATE] = batch.state
        self._feedback_submitted_all(session, [event.payload for event in fresh
                                               if isinstance(event.payload, FeedbackSubmitted)])
        batch.state.feedback.update(lock_decided_feedback(session, [event.payload.feedback_id for event in fresh
                                                                    if isinstance(event.payload, DECISIONS)]))
        self._lock_policies(session, batch.state,
                            concerned={policy for event in fresh for policy in _policies_concerned(event.payload)},
                            created={event.payload.policy.policy_id for event in fresh
                                     if isinstance(event.payload, PolicyGenerated | PolicyImported)})
        return batch

    def _apply_claimed(self, session: Session, event: IncomingEvent) -> None:
        """The effect of one claimed event (submissions were upserted when the batch was prepared)."""
        payload = event.payload
        if isinstance(payload, PolicyReviewed):
            self._policy_reviewed(session, payload, event.event_id)
        elif isinstance(payload, PolicyUsed):
            self._policy_used(session, payload, event.event_id)
        elif isinstance(payload, PolicyEdited):
            self._policy_edited(session, payload, event.event_id)
        elif isinstance(payload, PolicyImported):
            self._policy_imported(session, payload, event.event_id)
        elif isinstance(payload, DECISIONS):
            self._decision(session, payload, event)
        elif isinstance(payload, FeedbackReanalysisRequested):
            self._reanalysis_requested(session, payload, event.event_id)

    def _feedback_submitted_all(self, session: Session, submissions: list[FeedbackSubmitted]) -> None:
        """The submissions' own fields, one statement for all: a decision that arrived first keeps its status."""
        if not submissions:
            return
        rows = {event.feedback_id: dict(
            feedback_id=event.feedback_id, status="pending", user_id=event.user_id,
            conversation_id=event.conversation_id, message_id=event.message_id, rating=event.rating.value,
            comment=event.comment, context=event.context.model_dump(mode="json"), submitted_at=event.submitted_at)
            for event in submissions}  # one row per feedback (a statement may not update a row twice): the last
        statement = insert_in_order(FEEDBACK, SUBMISSION_COLUMNS, rows.values())
        session.execute(statement.on_conflict_do_update(
            index_elements=["feedback_id"], set_={name: statement.excluded[name] for name in SUBMISSION_FIELDS}))
        # The policies already reported for these answers now have their feedback (attribution is joined when read).
        answers = unnested(PolicyUsage.__table__, ANSWER_COLUMNS, [
            dict(conversation_id=conversation, message_id=message)
            for conversation, message in {(event.conversation_id, event.message_id) for event in submissions}])
        uses = dict(((conversation, message), count) for conversation, message, count in session.execute(
            select(PolicyUsage.conversation_id, PolicyUsage.message_id, func.count())
            .join(answers, (PolicyUsage.conversation_id == answers.c.conversation_id)
                  & (PolicyUsage.message_id == answers.c.message_id))
            .group_by(PolicyUsage.conversation_id, PolicyUsage.message_id)))
        for event in submissions:
            count_on_commit(session, ATTRIBUTED_FEEDBACK, uses.get((event.conversation_id, event.message_id), 0),
                            (event.rating.value,))

    @staticmethod
    def _lock_policies(session: Session, state: BatchState, *, concerned: set[str], created: set[str]) -> None:
        """Lock (and load) the policies the batch concerns and read their evidence; of those it may create, note
        which have no predecessor and no review waiting for them, so that creating them reads nothing more."""
        if not concerned:
            return
        for record in session.execute(select(PolicyRecord).where(any_of(PolicyRecord.policy_id, concerned))
                                      .order_by(PolicyRecord.policy_id).with_for_update()).scalars():
            state.policies[record.policy_id] = record
        state.locked.update(concerned)
        # Each duplicate would read its policy's evidence, and each new policy the evidence that came before it.
        state.evidence = {policy_id: [] for policy_id in concerned}
        for row in _without_autoflush(session).execute(
                select(EVIDENCE.policy_id, EVIDENCE.feedback_id, EVIDENCE.added_at, EVIDENCE.event_id)
                .where(any_of(EVIDENCE.policy_id, concerned))
                .order_by(EVIDENCE.policy_id, EVIDENCE.added_at, EVIDENCE.feedback_id)):
            state.evidence[row.policy_id].append(EvidenceRow(row.feedback_id, row.added_at, row.event_id))
        ids = sorted(created - state.policies.keys())
        if not ids:
            return
        with_predecessors = set(session.execute(select(PolicyRecord.superseded_by).distinct()
                                                .where(any_of(PolicyRecord.superseded_by, ids))).scalars())
        with_early_reviews = set(session.execute(select(PolicyHistory.policy_id).distinct().where(
            any_of(PolicyHistory.policy_id, ids), PolicyHistory.version.is_(None))).scalars())
        state.no_predecessors.update(set(ids) - with_predecessors)
        state.no_early_reviews.update(set(ids) - with_early_reviews)

    def _policy_used(self, session: Session, event: PolicyUsed, event_id: str) -> None:
        """One row per policy and answer: a second report of the same use changes nothing."""
        rows = [dict(policy_id=policy_id, conversation_id=event.conversation_id, message_id=event.message_id,
                     question=event.question, used_at=event.used_at, event_id=event_id)
                for policy_id in event.policy_ids]
        added = session.execute(insert(PolicyUsage).values(rows).on_conflict_do_nothing()
                                .returning(PolicyUsage.policy_id)).scalars().all()
        count_on_commit(session, POLICY_USES, len(added))
        if not added:
            return
        # Feedback on the answer may have been stored before its usage report: it is attributed now.
        ratings = session.execute(
            select(FeedbackRecord.rating, func.count())
            .where(FeedbackRecord.conversation_id == event.conversation_id,
                   FeedbackRecord.message_id == event.message_id, FeedbackRecord.rating.is_not(None))
            .group_by(FeedbackRecord.rating)).all()
        for rating, count in ratings:
            count_on_commit(session, ATTRIBUTED_FEEDBACK, count * len(added), (rating,))

    @staticmethod
    def _feedback_row(session: Session, feedback_id: str) -> DecidedFeedback:
        """The decided feedback's row, locked with the batch's others (or now, for one that was not)."""
        state = _state(session)
        if feedback_id not in state.feedback:
            state.feedback.update(lock_decided_feedback(session, [feedback_id]))
        return state.feedback[feedback_id]

    def _decision(self, session: Session, event: DecisionEvent, incoming: IncomingEvent) -> None:
        feedback = self._feedback_row(session, event.feedback_id)
        run_id = event.reanalysis_run_id
        if run_id is None:
            # "failed" is not final: a feedback replayed from the dead-letter topic gets its real decision later.
            if feedback.status in ("pending", "failed"):
                self._show_decision(session, feedback, event, incoming.time)
            elif feedback.reanalysis_run_id is None:
                log.warning("second decision for a decided feedback ignored",
                            extra={"feedback_id": event.feedback_id, "event_id": incoming.event_id})
                return
            else:
                # A re-analysis of a feedback still pending overtook its first decision: the row keeps the
                # re-analysis, but the policy the generator wrote (and indexed) exists here too.
                log.info("first decision after a re-analysis decision; its policy effects only",
                         extra={"feedback_id": event.feedback_id, "event_id": incoming.event_id})
        else:
            self._reanalysis_decided(session, event, incoming)
            # Re-analysis decisions replace the one shown, unless it is a later one (an older run's arriving late).
            if _shows_later_decision(feedback, incoming.time, run_id):
                log.info("re-analysis decision older than the one shown; recorded for its run only",
                         extra={"feedback_id": event.feedback_id, "event_id": incoming.event_id, "run_id": run_id})
            else:
                self._show_decision(session, feedback, event, incoming.time)
        self._decision_effects(session, event, incoming)

    @staticmethod
    def _show_decision(session: Session, feedback: DecidedFeedback, event: DecisionEvent, at: datetime) -> None:
        """The feedback row shows ``event``: every decision field is set, none is kept from an earlier one."""
        feedback.decided_at, feedback.reanalysis_run_id = at, event.reanalysis_run_id
        feedback.reason = feedback.policy_id = feedback.duplicate_of = None
        if isinstance(event, PolicyGenerated):
            feedback.status, feedback.policy_id = "generated", event.policy.policy_id
            feedback.decision = event.decision.model_dump(mode="json")
        elif isinstance(event, PolicySkipped):
            feedback.status, feedback.reason = "skipped", event.reason.value
            feedback.decision = {**event.decision.model_dump(mode="json"), "explanation": event.explanation}
            if event.reason is SkipReason.DUPLICATE_POLICY and event.duplicate_of:
                feedback.duplicate_of = feedback.policy_id = event.duplicate_of
        else:
            feedback.status, feedback.reason = "failed", event.error_class
            feedback.decision = {"error_class": event.error_class, "error_message": event.error_message,
                                 "attempts": event.attempts}
        keep_decision(session, feedback)

    def _decision_effects(self, session: Session, event: DecisionEvent, incoming: IncomingEvent) -> None:
        """What a decision does to policies: a new policy or version, evidence, supersedes; each idempotent."""
        if isinstance(event, PolicyGenerated):
            self._policy_generated(session, event.policy, incoming,
                                   needs_review=bool(event.decision.review_reasons), spent=event.decision.usage)
            for replaced in event.decision.supersedes:
                self._superseded_by_generator(session, replaced, event, incoming)
        elif (isinstance(event, PolicySkipped) and event.reason is SkipReason.DUPLICATE_POLICY
              and event.duplicate_of):
            self._add_evidence(session, event.duplicate_of, event.feedback_id, incoming)

    @staticmethod
    def _policy(session: Session, policy_id: str, *, for_update: bool = False) -> PolicyRecord | None:
        """The policy's row, from the batch's locked ones when it is one of them (then without a statement)."""
        state = _state(session)
        if policy_id in state.locked:
            return state.policies.get(policy_id)
        return session.get(PolicyRecord, policy_id, with_for_update=for_update or None)

    @staticmethod
    def _created(session: Session, record: PolicyRecord) -> None:
        """A new policy row, known to the rest of the batch."""
        session.add(record)
        _state(session).policies[record.policy_id] = record

    @staticmethod
    def _drop_own_evidence(session: Session, policy: Policy) -> None:
        """Evidence recorded before the policy arrived for feedback that is one of its own sources (a re-analysis
        finding a lesson it taught, say): applied after the policy, it counts already and is no evidence
        (``_evidence``), so it is none in either order."""
        if not policy.source_feedback_ids:
            return
        known = _state(session).evidence.get(policy.policy_id)
        if known is not None:
            if not any(row.feedback_id in policy.source_feedback_ids for row in known):
                return
            known[:] = [row for row in known if row.feedback_id not in policy.source_feedback_ids]
        _without_autoflush(session).execute(delete(PolicyEvidence.__table__).where(
            EVIDENCE.policy_id == policy.policy_id, EVIDENCE.feedback_id.in_(policy.source_feedback_ids)))

    def _reanalysis_requested(self, session: Session, event: FeedbackReanalysisRequested, event_id: str) -> None:
        """The request's columns of its row; a decision applied before it keeps its own columns."""
        fields = dict(requested_by=event.requested_by, requested_at=event.requested_at, reason=event.reason,
                      event_id=event_id)
        session.execute(insert(ReanalysisRequest).values(run_id=event.run_id, feedback_id=event.feedback_id, **fields)
                        .on_conflict_do_update(index_elements=["run_id", "feedback_id"], set_=fields))

    def _reanalysis_decided(self, session: Session, event: DecisionEvent, incoming: IncomingEvent) -> None:
        """The decision's columns of its run's row, whether or not the request was applied yet."""
        if isinstance(event, PolicyGenerated):
            outcome, policy_id = "generated", event.policy.policy_id
        elif isinstance(event, PolicySkipped):
            outcome = "skipped"
            policy_id = event.duplicate_of if event.reason is SkipReason.DUPLICATE_POLICY else None
        else:
            outcome, policy_id = "failed", None
        fields = dict(outcome=outcome, policy_id=policy_id, decided_at=incoming.time,
                      decision_event_id=incoming.event_id)
        # A feedback decided twice within a run (its failed request replayed) keeps the later decision.
        session.execute(insert(ReanalysisRequest)
                        .values(run_id=event.reanalysis_run_id, feedback_id=event.feedback_id, **fields)
                        .on_conflict_do_update(index_elements=["run_id", "feedback_id"], set_=fields,
                                               where=or_(ReanalysisRequest.decided_at.is_(None),
                                                         ReanalysisRequest.decided_at <= incoming.time)))

    def _policy_generated(self, session: Session, policy: Policy, incoming: IncomingEvent,
                          needs_review: bool = False, spent: TokenUsage | None = None) -> None:
        record = self._policy(session, policy.policy_id, for_update=True)
        if record is not None and record.version >= policy.version:
            return
        if record is None:
            self._drop_own_evidence(session, policy)
        content = self._content(session, policy)
        if spent is not None:
            content.update(prompt_tokens=spent.prompt_tokens, completion_tokens=spent.completion_tokens,
                           cost_usd=spent.cost_usd)
        if record is None:
            # A policy written from suspicious feedback (screened by the generator) waits for a reviewer.
            active = self.auto_activate and not needs_review
            status = PolicyStatus.ACTIVE if active else PolicyStatus.PENDING_REVIEW
            record = PolicyRecord(policy_id=policy.policy_id, status=status.value, created_at=policy.created_at,
                                  valid_from=incoming.time if status is PolicyStatus.ACTIVE else None,
                                  supersedes=self._predecessors(session, policy.policy_id), **content)
            self._created(session, record)
            action = "created"
        else:
            for name, value in content.items():
                setattr(record, name, value)
            action = "updated"
        # No flush of its own: the batch's new policies and their history rows go to the database together, at
        # the next statement that reads (autoflush) or at commit.
        self._history(session, record, action, GENERATOR_ACTOR, None, incoming.time, incoming.event_id)
        if action == "created":
            self._record_early_evidence(session, record, policy.source_feedback_ids)
            self._replay_early_reviews(session, record)

    def _superseded_by_generator(self, session: Session, replaced: str, event: PolicyGenerated,
                                 incoming: IncomingEvent) -> None:
        """The generator found ``replaced`` contradicted by the new policy: superseded, linked, kept."""
        record = self._policy(session, replaced)
        if record is not None and record.status not in (PolicyStatus.ACTIVE.value, PolicyStatus.PENDING_REVIEW.value):
            return  # already out of service: a reviewer's decision stands
        reason = f"contradicted by policy {event.policy.policy_id}: {event.decision.explanation}"[:2000]
        self._policy_reviewed(session, PolicyReviewed(
            policy_id=replaced, action=ReviewAction.SUPERSEDE, reviewer=GENERATOR_ACTOR, reason=reason,
            reviewed_at=incoming.time, superseded_by=event.policy.policy_id), incoming.event_id)

    def _policy_edited(self, session: Session, event: PolicyEdited, event_id: str) -> None:
        """A reviewer's rewrite: the next version of the policy, with the history saying who, when and why."""
        record = self._policy(session, event.policy_id, for_update=True)
        if record is None:
            # Kept without a version, like an early review; applied when the policy is materialized.
            _state(session).no_early_reviews.discard(event.policy_id)
            session.add(PolicyHistory(policy_id=event.policy_id, version=None, action="edited", actor=event.editor,
                                      reason=event.reason, at=event.edited_at, event_id=event_id,
                                      snapshot={"pending_edit": event.model_dump(mode="json")}))
            return
        if self._edit(session, record, event):
            self._history(session, record, "edited", event.editor, event.reason, event.edited_at, event_id)

    def _edit(self, session: Session, record: PolicyRecord, event: PolicyEdited) -> bool:
        """Apply the edit if it makes a newer version; False when the policy moved past it (concurrent edits)."""
        if event.version <= record.version:
            log.warning("edit of an older version ignored", extra={"policy_id": record.policy_id,
                                                                   "version": event.version})
            return False
        for name, value in event.changes.updates().items():
            setattr(record, name, value)
        text = " ".join(filter(None, [record.rule, record.correct_mapping or ""]))
        record.schema_objects = sorted(schema_objects(text))
        record.version, record.updated_at = event.version, event.edited_at
        session.flush()
        return True

    def _policy_imported(self, session: Session, event: PolicyImported, event_id: str) -> None:
        """A policy from an export, with its own status; an id this store already has keeps what it has."""
        policy = event.policy
        if self._policy(session, policy.policy_id) is not None:
            log.info("imported policy already present; left as it is", extra={"policy_id": policy.policy_id})
            return
        active = policy.status is PolicyStatus.ACTIVE
        self._drop_own_evidence(session, policy)
        record = PolicyRecord(policy_id=policy.policy_id, status=policy.status.value, created_at=policy.created_at,
                              valid_from=event.imported_at if active else None,
                              supersedes=self._predecessors(session, policy.policy_id),
                              **self._content(session, policy))
        self._created(session, record)
        session.flush()
        self._history(session, record, "imported", event.importer,
                      f"imported from {event.origin}" if event.origin else "imported", event.imported_at, event_id)
        self._record_early_evidence(session, record, policy.source_feedback_ids)
        self._replay_early_reviews(session, record)

    def _content(self, session: Session, policy: Policy) -> dict:
        """The columns a policy event sets, with the evidence already recorded for it."""
        sources = list(dict.fromkeys([*policy.source_feedback_ids, *self._evidence_ids(session, policy.policy_id)]))
        text = " ".join(filter(None, [policy.rule, policy.correct_mapping or ""]))
        return dict(version=policy.version, category=policy.category.value,
                    priority=priority_with_support(policy.priority, len(sources)).value,
                    rule=policy.rule, correct_mapping=policy.correct_mapping,
                    missing_knowledge=policy.missing_knowledge, examples=list(policy.examples),
                    rationale=policy.rationale, source_feedback_ids=sources, support_count=len(sources),
                    schema_objects=sorted(schema_objects(text)), generator_provider=policy.generator.provider,
                    generator_model=policy.generator.model, updated_at=policy.updated_at,
                    prompt_tokens=policy.generator.prompt_tokens,
                    completion_tokens=policy.generator.completion_tokens, cost_usd=policy.generator.cost_usd)

    # Topics (and partitions) are read in parallel, so a policy's reviews and repeated feedback may be applied
    # before the policy itself — always so in a rebuild from the beginning. The two methods below make the
    # result the same as in arrival order: the state a store reaches does not depend on which partition was
    # read first, so a rebuild reproduces the live store.

    def _record_early_evidence(self, session: Session, record: PolicyRecord, own_sources: list[str]) -> None:
        """History rows for evidence that arrived before its policy, as if it had come after."""
        known = _state(session).evidence.get(record.policy_id)
        rows = known if known is not None else _without_autoflush(session).execute(
            select(EVIDENCE.feedback_id, EVIDENCE.added_at, EVIDENCE.event_id)
            .where(EVIDENCE.policy_id == record.policy_id).order_by(EVIDENCE.added_at, EVIDENCE.feedback_id))
        for row in rows:
            if row.feedback_id not in own_sources:
                self._history(session, record, "evidence", GENERATOR_ACTOR,
                              f"feedback {row.feedback_id} repeats this lesson", row.added_at, row.event_id,
                              version=self._version_at(session, record, row.added_at))

    def _replay_early_reviews(self, session: Session, record: PolicyRecord) -> None:
        """Reviews and edits applied before their policy take effect now, in the order they were made."""
        if record.policy_id in _state(session).no_early_reviews:
            return
        reviews = session.execute(
            select(PolicyHistory).where(PolicyHistory.policy_id == record.policy_id,
                                        PolicyHistory.action.in_([*(a.value for a in ReviewAction), "edited"]),
                                        PolicyHistory.version.is_(None))
            .order_by(PolicyHistory.at, PolicyHistory.id)).scalars().all()
        for review in reviews:
            if review.action == "edited":
                self._edit(session, record, PolicyEdited.model_validate(review.snapshot["pending_edit"]))
            else:
                pending = review.snapshot or {}
                self._transition(session, record, ReviewAction(review.action), review.at,
                                 pending.get("superseded_by"), merge=(review.at, review.event_id)
                                 if pending.get("merge") else None)
            session.flush()
            review.version, review.snapshot = record.version, policy_document(record)

    def _add_evidence(self, session: Session, policy_id: str, feedback_id: str, incoming: IncomingEvent) -> None:
        self._evidence(session, policy_id, feedback_id, incoming.time, incoming.event_id)

    def _evidence(self, session: Session, policy_id: str, feedback_id: str, at: datetime, event_id: str) -> None:
        record = self._policy(session, policy_id, for_update=True)
        if record is not None and feedback_id in record.source_feedback_ids:
            return  # counted already, as one of its own sources or as evidence: support stays as it is
        added = _without_autoflush(session).execute(ADD_EVIDENCE, dict(
            policy_id=policy_id, feedback_id=feedback_id, added_at=at, event_id=event_id)).first()
        _note_evidence(_state(session), policy_id, EvidenceRow(feedback_id, at, event_id), added=added is not None)
        if added is None or record is None:
            return
        evidence = self._evidence_ids(session, policy_id)
        own = [source for source in record.source_feedback_ids if source not in set(evidence)]
        record.source_feedback_ids = list(dict.fromkeys([*own, *evidence]))
        record.support_count = len(record.source_feedback_ids)
        record.priority = priority_with_support(record.priority, record.support_count).value
        # No flush of its own either: the policy's new support goes with the batch's other rows.
        self._history(session, record, "evidence", GENERATOR_ACTOR, f"feedback {feedback_id} repeats this lesson",
                      at, event_id, version=self._version_at(session, record, at))

    def _policy_reviewed(self, session: Session, event: PolicyReviewed, event_id: str) -> None:
        record = self._policy(session, event.policy_id, for_update=True)
        if record is None:
            # Kept without a version; applied when the policy itself is materialized.
            _state(session).no_early_reviews.discard(event.policy_id)
            pending = {"superseded_by": event.superseded_by, "merge": event.merge} if event.superseded_by else None
            session.add(PolicyHistory(policy_id=event.policy_id, version=None, action=event.action.value,
                                      actor=event.reviewer, reason=event.reason, at=event.reviewed_at,
                                      event_id=event_id, snapshot=pending))
            return
        self._transition(session, record, event.action, event.reviewed_at, event.superseded_by,
                         merge=(event.reviewed_at, event_id) if event.merge else None)
        session.flush()
        self._history(session, record, event.action.value, event.reviewer, event.reason, event.reviewed_at,
                      event_id)

    def _transition(self, session: Session, record: PolicyRecord, action: ReviewAction, at: datetime,
                    superseded_by: str | None = None, merge: tuple[datetime, str] | None = None) -> None:
        """A review's effect on a policy: its status, the validity period that status implies, and links.

        ``merge`` (when, event id) makes the superseded policy's own source feedback evidence of its successor.
        """
        status = REVIEW_OUTCOME[action]
        record.status = status.value
        record.updated_at = at
        if status is PolicyStatus.ACTIVE and record.valid_from is None:
            record.valid_from = at
        if status in (PolicyStatus.RETIRED, PolicyStatus.REJECTED, PolicyStatus.SUPERSEDED):
            record.valid_to = at
        if status is PolicyStatus.SUPERSEDED and superseded_by:
            record.superseded_by = superseded_by
            _state(session).no_predecessors.discard(superseded_by)
            successor = self._policy(session, superseded_by, for_update=True)
            if successor is not None:
                successor.supersedes = sorted({*(successor.supersedes or []), record.policy_id})
            if merge is not None:
                evidence = set(self._evidence_ids(session, record.policy_id))
                for feedback_id in [f for f in record.source_feedback_ids if f not in evidence] + sorted(evidence):
                    self._evidence(session, superseded_by, feedback_id, *merge)

    @staticmethod
    def _predecessors(session: Session, policy_id: str) -> list[str]:
        """Policies already superseded by ``policy_id`` (the successor may be applied after them)."""
        if policy_id in _state(session).no_predecessors:
            return []
        return sorted(session.execute(select(PolicyRecord.policy_id)
                                      .where(PolicyRecord.superseded_by == policy_id)).scalars())

    @staticmethod
    def _evidence_ids(session: Session, policy_id: str) -> list[str]:
        """Feedback that repeated the policy's lesson, in a fixed order (when, then id) whatever the arrival order."""
        known = _state(session).evidence.get(policy_id)
        if known is not None:
            return [row.feedback_id for row in known]
        return list(_without_autoflush(session).execute(
            select(EVIDENCE.feedback_id).where(EVIDENCE.policy_id == policy_id)
            .order_by(EVIDENCE.added_at, EVIDENCE.feedback_id)).scalars())

    @staticmethod
    def _version_at(session: Session, record: PolicyRecord, at: datetime) -> int:
        """The version in force at ``at``: evidence belongs to the version it repeated, whenever it is applied."""
        if record.version == 1:
            return 1  # no history row has a later version than the policy's own: nothing to look up
        session.flush()
        version = session.execute(select(func.max(PolicyHistory.version)).where(
            PolicyHistory.policy_id == record.policy_id, PolicyHistory.version.is_not(None),
            PolicyHistory.action != "evidence", PolicyHistory.at <= at)).scalar_one_or_none()
        return version or record.version

    @staticmethod
    def _history(session: Session, record: PolicyRecord, action: str, actor: str, reason: str | None,
                 at: datetime | None, event_id: str, version: int | None = None) -> None:
        add_history_row(session, dict(policy_id=record.policy_id, version=version or record.version, action=action,
                                      actor=actor, reason=reason, at=at or datetime.now(UTC), event_id=event_id,
                                      snapshot=policy_document(record)))


def _note_evidence(state: BatchState, policy_id: str, row: EvidenceRow, *, added: bool) -> None:
    """Keep the batch's copy of the policy's evidence as the table has it, or give it up where that is unsure."""
    known = state.evidence.get(policy_id)
    if known is None:
        return
    if not added:
        if row.feedback_id not in {kept.feedback_id for kept in known}:
            del state.evidence[policy_id]  # a row written by someone else meanwhile: look the policy up again
        return
    if any(kept.added_at == row.added_at for kept in known):
        # Rows at the same moment are in the order of the database's collation of their ids, which Python's
        # order of strings need not match: the database orders this policy's evidence from now on.
        del state.evidence[policy_id]
        return
    bisect.insort(known, row, key=lambda kept: kept.added_at)


def _shows_later_decision(feedback: DecidedFeedback, at: datetime, run_id: str) -> bool:
    """True when the row shows a decision made after ``at`` (ties go to the greater run id, so that the result
    does not depend on the order in which two runs' decisions are applied)."""
    if feedback.decided_at is None:
        return False
    return (feedback.decided_at, feedback.reanalysis_run_id or "") > (at, run_id)
