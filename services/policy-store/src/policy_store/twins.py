"""One policy for concurrent twins: the same lesson written twice at once by different generator processes.

Each generator process decides its partitions against the policies it knows; two tellings of one lesson on
partitions of different processes, decided within the same second or two, cannot see each other's policy (within
one process the batch recheck handles it: docs/dedup.md). The store is where every decision meets, so the store
enforces it: after each consumer batch, every policy the batch created is compared with the served or pending
policies created within ``TWIN_WINDOW_SECONDS`` of it (imported ones aside). A pair at or above ``TWIN_THRESHOLD``
that may be one lesson by the generator's own rules (``policyloop_common.lessons``) is one lesson: the
younger policy (by creation time, then id) is superseded by the older with ``merge`` — its source feedback become
evidence of the survivor — through a ``PolicyReviewed`` event, so the generators' indexes and a rebuild see it too.

The threshold is measured (docs/dedup.md): policies written independently from feedbacks of one lesson score at
least 0.737 against each other in the labelled cases, policies of different lessons at most 0.351.

The event id is derived from the pair: store replicas, or a batch retried after a crash, that find the same twins
publish the same event, and it is applied once.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, or_, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session

from policy_store.metrics import TWINS_MERGED
from policy_store.models import PolicyHistory, PolicyRecord
from policy_store.publishing import ConsumerDecisions
from policy_store.relevance import policy_search_text
from policy_store.serialization import policy_model
from policyloop_common.cloudevents import IncomingEvent, encode
from policyloop_common.events import DecisionKind, PolicyGenerated, PolicyReviewed, ReviewAction
from policyloop_common.lessons import may_be_one_lesson
from policyloop_common.policy import PolicyStatus
from policyloop_common.text_matching import Document, similarity_docs

log = logging.getLogger(__name__)

TWIN_REVIEWER = "policy-store/twins"
TWIN_NAMESPACE = uuid.UUID("0c3f7a52-9e1b-4d7e-8a43-6b2e5f1c9d08")
SERVED = (PolicyStatus.ACTIVE.value, PolicyStatus.PENDING_REVIEW.value)
# Policies compared with each new one, at most: half created just before it, half just after.
NEAREST = 20
# Twins of different categories must read the same, word for word.
SAME_TEXT = 1.0


def twin_event_id(younger: str, older: str) -> str:
    """The one event id the merge of this pair can have."""
    return str(uuid.uuid5(TWIN_NAMESPACE, f"{younger}\n{older}"))


def find_twin(session: Session, record: PolicyRecord, *, threshold: float, window: timedelta) -> PolicyRecord | None:
    """The oldest served policy created within ``window`` of ``record`` that teaches the same lesson, if any.

    Compared are at most ``NEAREST`` policies, the nearest in creation time among those of the same category or
    sharing a schema object: twins are written within seconds of each other about the same objects, and the bound
    keeps a bulk load (thousands of policies created at once) linear.
    """
    related = PolicyRecord.category == record.category
    if record.schema_objects:
        related = or_(related, PolicyRecord.schema_objects.op("?|")(array(record.schema_objects)))
    # Imported policies were chosen by an operator, not written at the same moment by another generator.
    imported = exists().where(PolicyHistory.policy_id == PolicyRecord.policy_id, PolicyHistory.action == "imported")
    near = select(PolicyRecord).where(PolicyRecord.policy_id != record.policy_id, PolicyRecord.status.in_(SERVED),
                                      related, ~imported)
    # Two walks of the creation-time index, outwards from the policy: no sort of the whole window.
    before = near.where(PolicyRecord.created_at.between(record.created_at - window, record.created_at)) \
        .order_by(PolicyRecord.created_at.desc(), PolicyRecord.policy_id.desc()).limit(NEAREST // 2)
    after = near.where(PolicyRecord.created_at > record.created_at,
                       PolicyRecord.created_at <= record.created_at + window) \
        .order_by(PolicyRecord.created_at, PolicyRecord.policy_id).limit(NEAREST // 2)
    nearby = [*session.execute(before).scalars(), *session.execute(after).scalars()]
    probe = _document(record.policy_id, record.version, policy_search_text(record))
    twins = []
    for other in nearby:
        similarity = similarity_docs(probe, _document(other.policy_id, other.version, policy_search_text(other)))
        # Alike in wording is not enough: lessons of two values of one column, or contradicting mappings, read
        # alike and stay apart here exactly as the generator keeps them apart (policyloop_common.lessons).
        if similarity >= threshold and may_be_one_lesson(policy_model(record), policy_model(other), similarity,
                                                         cross_category_threshold=SAME_TEXT):
            twins.append(other)
    return min(twins, key=lambda other: (other.created_at, other.policy_id), default=None)


@functools.lru_cache(maxsize=4096)
def _document(policy_id: str, version: int, text: str) -> Document:
    """A policy's prepared text, kept for the next comparisons (a version's text never changes)."""
    return Document.of(text)


class TwinResolver(ConsumerDecisions):
    """Merges each concurrent twin the batch created into the older policy of its lesson."""

    def after_batch(self, events: Sequence[IncomingEvent]) -> list[str]:
        """Merge the twins among the policies the batch created; returns the ids superseded."""
        created = [event.payload.policy.policy_id for event in events
                   if isinstance(event.payload, PolicyGenerated)
                   and event.payload.decision.kind in (DecisionKind.NEW, DecisionKind.SUPERSEDE)]
        merged = []
        window = timedelta(seconds=self._settings.twin_window_seconds)
        # One session for the batch's look-ups (a bulk load creates hundreds of policies per batch); a merge is
        # rare and commits through its own, after which the rows read so far are read again.
        with self._sessions() as session:
            for policy_id in created:
                record = session.get(PolicyRecord, policy_id)
                if record is None or record.status not in SERVED:
                    continue
                twin = find_twin(session, record, threshold=self._settings.twin_threshold, window=window)
                if twin is None:
                    continue
                younger, older = sorted([record, twin], key=lambda r: (r.created_at, r.policy_id), reverse=True)
                if self._merge(younger.policy_id, older.policy_id):
                    merged.append(younger.policy_id)
                session.expire_all()
        return merged

    def _merge(self, younger: str, older: str) -> bool:
        event = PolicyReviewed(policy_id=younger, action=ReviewAction.SUPERSEDE, reviewer=TWIN_REVIEWER,
                               reason=f"the same lesson as {older}, written at the same time; merged into it",
                               reviewed_at=datetime.now(UTC), superseded_by=older, merge=True)
        outgoing = encode(event, source="/policyloop/policy-store", topic=self._settings.reviews_topic,
                          event_id=twin_event_id(younger, older), trace_id=uuid.uuid4().hex)
        # Unpublished, both policies stay; the next batch creating a policy of this lesson, or a reviewer, settles it.
        if not self._record(outgoing, "merge_twins"):
            return False
        TWINS_MERGED.inc()
        log.warning("concurrent twin merged", extra={"policy_id": younger, "into": older})
        return True
