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

import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session, sessionmaker

from policy_store.bulk import any_of
from policy_store.core.config import StoreSettings
from policy_store.materializer import Materializer
from policy_store.metrics import TWINS_MERGED
from policy_store.models import PolicyRecord
from policy_store.publishing import ConsumerDecisions
from policy_store.relevance import policy_search_text
from policy_store.serialization import policy_model
from policyloop_common.cloudevents import IncomingEvent, encode
from policyloop_common.events import DecisionKind, PolicyGenerated, PolicyReviewed, ReviewAction
from policyloop_common.kafka.producer import DurableProducer
from policyloop_common.lessons import may_be_one_lesson
from policyloop_common.policy import PolicyStatus
from policyloop_common.text_matching import Document, similarity_at_least

log = logging.getLogger(__name__)

TWIN_REVIEWER = "policy-store/twins"
TWIN_NAMESPACE = uuid.UUID("0c3f7a52-9e1b-4d7e-8a43-6b2e5f1c9d08")
SERVED = (PolicyStatus.ACTIVE.value, PolicyStatus.PENDING_REVIEW.value)
# Policies compared with each new one, at most: half created just before it, half just after.
NEAREST = 20
# Twins of different categories must read the same, word for word.
SAME_TEXT = 1.0
# Prepared texts kept for the next batches' comparisons (``PreparedTexts``): the newest policies, dozens of batches'
# worth at the benchmark's mix and ten in a bulk load of nothing but new policies (500 a batch).
PREPARED_TEXTS = 5_000


def twin_event_id(younger: str, older: str) -> str:
    """The one event id the merge of this pair can have."""
    return str(uuid.uuid5(TWIN_NAMESPACE, f"{younger}\n{older}"))


# The nearest policies of each probe, for a whole batch in one statement: two walks of the creation-time index
# outwards from each probe (no sort of the whole window), among the served policies of its category or sharing
# one of its schema objects. Imported policies were chosen by an operator, not written at the same moment by
# another generator, so they are left out.
_NEAREST_OF_EACH = text("""
SELECT probe.policy_id AS probe_id, near.policy_id AS near_id, near.version AS near_version
FROM policies AS probe
CROSS JOIN LATERAL (
    (SELECT other.policy_id, other.version FROM policies AS other
     WHERE other.created_at BETWEEN probe.created_at - :window AND probe.created_at AND {related}
     ORDER BY other.created_at DESC, other.policy_id DESC LIMIT :half)
    UNION ALL
    (SELECT other.policy_id, other.version FROM policies AS other
     WHERE other.created_at > probe.created_at AND other.created_at <= probe.created_at + :window AND {related}
     ORDER BY other.created_at, other.policy_id LIMIT :half)
) AS near
WHERE probe.policy_id = ANY(:probe_ids)
""".format(related="""other.policy_id <> probe.policy_id AND other.status = ANY(:served)
         AND (other.category = probe.category
              OR other.schema_objects ?| ARRAY(SELECT jsonb_array_elements_text(probe.schema_objects)))
         AND NOT EXISTS (SELECT 1 FROM policy_history AS h
                         WHERE h.policy_id = other.policy_id AND h.action = 'imported')"""))


def find_twins(session: Session, records: Sequence[PolicyRecord | Row], *, threshold: float, window: timedelta,
               prepared: PreparedTexts | None = None) -> dict[str, PolicyRecord]:
    """For each of ``records`` (policies, or rows of ``PROBE_COLUMNS``) that has one, the oldest served policy
    created within ``window`` of it that teaches the same lesson: one statement for all of them, a second for the
    texts of the neighbours not prepared yet, and a third for the rows of the pairs that read alike.

    Compared are at most ``NEAREST`` policies for each, the nearest in creation time among those of the same
    category or sharing a schema object: twins are written within seconds of each other about the same objects,
    and the bound keeps a bulk load (thousands of policies created at once) linear. ``prepared`` keeps the texts
    of the policies compared for the next call; the neighbours it knows are not read again.
    """
    if not records:
        return {}
    # The walks must follow the creation-time index and stop at the limit. Right after a bulk load the planner's
    # statistics still describe a table of a few rows, and it chose to fetch and sort each probe's whole window
    # instead (measured on 3,869 policies created within a second: 50 probes in 1,064 ms, against 6.8 ms once the
    # statistics caught up). Without sorts and bitmap scans, for this transaction only, the ordered walk is the
    # plan whatever the statistics say.
    session.execute(text("SET LOCAL enable_sort = off"))
    session.execute(text("SET LOCAL enable_bitmapscan = off"))
    pairs = session.execute(_NEAREST_OF_EACH, dict(probe_ids=[record.policy_id for record in records],
                                                    window=window, half=NEAREST // 2, served=list(SERVED))).all()
    prepared = prepared if prepared is not None else PreparedTexts()
    documents = {record.policy_id: prepared.add(record.policy_id, record.version, _document_of(record))
                 for record in records}
    for _, near, version in pairs:
        if near not in documents and (known := prepared.get(near, version)) is not None:
            documents[near] = known
    # The text of the neighbours not prepared yet, only: nearly every pair scores below the threshold, and whole
    # rows (a policy's examples, sources and history links) cost several times more to load than the comparison
    # they feed.
    unknown = {near for _, near, _ in pairs if near not in documents}
    if unknown:
        for row in session.execute(select(*_TEXT_COLUMNS).where(any_of(PolicyRecord.policy_id, unknown))):
            documents[row.policy_id] = prepared.add(row.policy_id, row.version, _document_of(row))
    alike: dict[str, list[tuple[str, float]]] = {}
    for probe, near, _ in pairs:
        if near not in documents:
            continue  # deleted since the first statement (a rebuild's reset): nothing left to merge with
        similarity = similarity_at_least(documents[probe], documents[near], threshold)
        if similarity is not None:
            alike.setdefault(probe, []).append((near, similarity))
    if not alike:
        return {}
    # Whole rows only now, for the few pairs left: the rules of ``may_be_one_lesson`` read every field.
    loaded = {record.policy_id: record for record in session.execute(select(PolicyRecord).where(
        any_of(PolicyRecord.policy_id, {*alike, *(near for nears in alike.values() for near, _ in nears)}))).scalars()}
    twins = {}
    for probe, nears in alike.items():
        if probe not in loaded:
            continue  # deleted meanwhile, like a neighbour above
        twin = _oldest_twin(loaded[probe], [(loaded[near], similarity) for near, similarity in nears
                                            if near in loaded])
        if twin is not None:
            twins[probe] = twin
    return twins


def _oldest_twin(record: PolicyRecord, alike: list[tuple[PolicyRecord, float]]) -> PolicyRecord | None:
    """The oldest of the policies that read like ``record`` (with their similarity) which may be one lesson
    with it."""
    probe = policy_model(record)
    twins = []
    for other, similarity in alike:
        # Alike in wording is not enough: lessons of two values of one column, or contradicting mappings, read
        # alike and stay apart here exactly as the generator keeps them apart (policyloop_common.lessons).
        if may_be_one_lesson(probe, policy_model(other), similarity, cross_category_threshold=SAME_TEXT):
            twins.append(other)
    return min(twins, key=lambda other: (other.created_at, other.policy_id), default=None)


# A policy's id and version, and what its searched text is made of (``policy_search_text``).
_TEXT_COLUMNS = (PolicyRecord.policy_id, PolicyRecord.version, PolicyRecord.rule, PolicyRecord.correct_mapping,
                 PolicyRecord.examples)
# What a new policy is checked with: its text, and whether and since when it is served.
PROBE_COLUMNS = (*_TEXT_COLUMNS, PolicyRecord.status, PolicyRecord.created_at)


class PreparedTexts:
    """The prepared texts of the policies last compared, by id and version, for the next batches' twin checks.

    Nearly every neighbour of a new policy was new itself a batch or two before, and compared then: kept here,
    its text is not read again. Policies are compared only with those created within seconds of them, so the most
    recent few thousand are enough.
    """

    def __init__(self, size: int = PREPARED_TEXTS) -> None:
        self._size = size
        self._documents: OrderedDict[tuple[str, int], Document] = OrderedDict()

    def get(self, policy_id: str, version: int) -> Document | None:
        document = self._documents.get((policy_id, version))
        if document is not None:
            self._documents.move_to_end((policy_id, version))
        return document

    def add(self, policy_id: str, version: int, document: Document) -> Document:
        self._documents[(policy_id, version)] = document
        self._documents.move_to_end((policy_id, version))
        if len(self._documents) > self._size:
            self._documents.popitem(last=False)
        return document


def _document_of(policy: PolicyRecord | Row) -> Document:
    """The prepared text of a policy row, or of a row of ``_TEXT_COLUMNS`` (``Document.of`` keeps it for the next
    comparisons)."""
    return Document.of(policy_search_text(policy))


class TwinResolver(ConsumerDecisions):
    """Merges each concurrent twin the batch created into the older policy of its lesson."""

    def __init__(self, settings: StoreSettings, session_factory: sessionmaker[Session], materializer: Materializer,
                 publisher: DurableProducer) -> None:
        super().__init__(settings, session_factory, materializer, publisher)
        self._prepared = PreparedTexts()

    def after_batch(self, events: Sequence[IncomingEvent]) -> list[str]:
        """Merge the twins among the policies the batch created; returns the ids superseded."""
        created = [event.payload.policy.policy_id for event in events
                   if isinstance(event.payload, PolicyGenerated)
                   and event.payload.decision.kind in (DecisionKind.NEW, DecisionKind.SUPERSEDE)]
        merged = []
        window = timedelta(seconds=self._settings.twin_window_seconds)
        # One session for the batch's look-ups (a bulk load creates hundreds of policies per batch); a merge is
        # rare and commits through its own, after which the policies not yet checked are looked up again.
        with self._sessions() as session:
            while created:
                records = [record for record in session.execute(
                    select(*PROBE_COLUMNS).where(any_of(PolicyRecord.policy_id, created)))
                    if record.status in SERVED]
                order = {policy_id: position for position, policy_id in enumerate(created)}
                records.sort(key=lambda record: order[record.policy_id])
                twins = find_twins(session, records, threshold=self._settings.twin_threshold, window=window,
                                   prepared=self._prepared)
                remaining: list[str] = []
                for position, record in enumerate(records):
                    twin = twins.get(record.policy_id)
                    if twin is None:
                        continue
                    younger, older = sorted([record, twin], key=lambda r: (r.created_at, r.policy_id), reverse=True)
                    if self._merge(younger.policy_id, older.policy_id):
                        merged.append(younger.policy_id)
                    remaining = [later.policy_id for later in records[position + 1:]]
                    session.expire_all()
                    break
                created = remaining
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
