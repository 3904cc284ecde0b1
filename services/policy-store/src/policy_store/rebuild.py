"""Rebuilding a store from the topics: every event from the beginning, applied into an empty database.

The topics are the record; the database is a projection of them. A rebuild reads each partition of the store's
topics from its first offset up to the end it saw when it started, applies the events with the same
:class:`Materializer` the live consumer uses (idempotent by event id, tolerant of the order in which topics
deliver), one transaction per batch, and so reproduces the state the live store reached for the same events.

It commits no consumer offsets and publishes nothing: a rebuild never disturbs the live store, and an interrupted
rebuild can be run again on the same database (``resume``), since applied events are skipped by their ids.
Records that cannot be read are counted and left where they are: the live consumer already dead-lettered them.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from policy_store.materializer import Materializer
from policy_store.models import ProcessedEvent
from policyloop_common.cloudevents import UnreadableEvent, decode

BATCH_SIZE = 500


class RebuildRefused(RuntimeError):
    """The target database already holds a store and the caller did not ask to resume."""


@dataclass
class RebuildReport:
    """What a rebuild read and applied, per topic."""

    read: Counter = field(default_factory=Counter)
    applied: Counter = field(default_factory=Counter)
    unreadable: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """The report as JSON-ready numbers."""
        return {"read": dict(self.read), "applied": dict(self.applied), "unreadable": dict(self.unreadable),
                "events_read": sum(self.read.values()), "events_applied": sum(self.applied.values()),
                "seconds": round(self.seconds, 1)}


# Called after each batch with (records handled so far, records to handle in all).
Progress = Callable[[int, int], None]


def rebuild(kafka: Mapping[str, str], topics: list[str], sessions: sessionmaker[Session], materializer: Materializer,
            *, resume: bool = False, progress: Progress | None = None, stall_timeout: float = 120.0) -> RebuildReport:
    """Apply every event of ``topics`` into the database behind ``sessions``; returns what was done."""
    started = time.monotonic()
    with sessions() as session:
        already = session.execute(select(func.count()).select_from(ProcessedEvent)).scalar_one()
    if already and not resume:
        raise RebuildRefused(f"the target database already holds {already} applied events; rebuild into an empty "
                             "database, or resume an interrupted rebuild of this one")
    consumer = Consumer({**kafka, "group.id": f"policy-store-rebuild-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest"})
    report = RebuildReport()
    try:
        ends = _ends(consumer, topics)
        total = sum(ends.values())
        remaining = {partition for partition, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for topic, partition in remaining])
        handled, last_progress = 0, time.monotonic()
        if progress:
            progress(0, total)
        while remaining:
            if time.monotonic() - last_progress > stall_timeout:
                raise RuntimeError(f"no progress for {stall_timeout:.0f}s on {sorted(remaining)} (an open "
                                   f"transaction holds the end back?); applied so far: {report.as_dict()}")
            batch = [m for m in consumer.consume(num_messages=BATCH_SIZE, timeout=1.0)
                     if m.error() is None and m.offset() < ends.get((m.topic(), m.partition()), 0)]
            if batch:
                _apply(batch, sessions, materializer, report)
                handled += len(batch)
            # Positions, not the last record seen: a partition may end with a transaction marker, never delivered.
            done = {(p.topic, p.partition) for p in consumer.position(
                        [TopicPartition(topic, partition) for topic, partition in remaining])
                    if p.offset >= ends[(p.topic, p.partition)]}
            remaining -= done
            if batch or done:
                last_progress = time.monotonic()
                if progress:
                    progress(handled, total)
    finally:
        consumer.close()
    report.seconds = time.monotonic() - started
    return report


def _ends(consumer: Consumer, topics: list[str]) -> dict[tuple[str, int], int]:
    """Where each partition ends now: the rebuild reads up to there, not what arrives while it runs."""
    ends = {}
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"topic {topic}: {metadata.error.str()}")
        for partition in metadata.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            ends[(topic, partition)] = high
    return ends


def _apply(batch: list, sessions: sessionmaker[Session], materializer: Materializer, report: RebuildReport) -> None:
    events = []
    for message in batch:
        report.read[message.topic()] += 1
        try:
            events.append(decode(value=message.value(), key=message.key(), headers=message.headers(),
                                 topic=message.topic(), partition=message.partition(), offset=message.offset()))
        except UnreadableEvent:
            report.unreadable[message.topic()] += 1
    with sessions() as session, session.begin():
        prepared = materializer.prepare_batch(session, events)
        for event in events:
            if prepared.apply(event):
                report.applied[event.topic] += 1
