"""The store's Kafka loop: a batch of events applied in one database transaction, then its offsets committed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import KafkaException, Message
from opentelemetry.trace import SpanKind
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from policy_store.materializer import Materializer
from policy_store.metrics import EVENTS_APPLIED
from policyloop_common.cloudevents import IncomingEvent, UnreadableEvent, decode
from policyloop_common.kafka.batch_loop import BatchConsumerLoop
from policyloop_common.kafka.consumer import PER_TOPIC
from policyloop_common.kafka.dead_letters import dead_letter_for
from policyloop_common.kafka.offsets import next_offsets
from policyloop_common.kafka.producer import DurableProducer, PublishFailed
from policyloop_common.metrics import DEAD_LETTERS, EVENTS_CONSUMED, INTERNAL_ERRORS
from policyloop_common.tracing import KAFKA_TRACEPARENT, traced

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 30.0


class StoreConsumer(BatchConsumerLoop):
    """Runs in a thread; offsets are committed only after the rows of their events are committed."""

    thread_name = "store-consumer"
    service = "policy-store"
    # The store reads four topics whose traffic differs (feedback and decisions busy, reviews and usage quiet):
    # each replica takes its share of every topic. It holds nothing between polls, so the pause of an eager
    # rebalance costs it no work; and the submission and the decision of a feedback (same key, same partition
    # number) are applied by the same replica.
    assignment = PER_TOPIC

    def __init__(self, kafka: Mapping[str, str], *, group_id: str, topics: list[str],
                 session_factory: sessionmaker[Session], materializer: Materializer, dead_letters: DurableProducer,
                 batch_size: int = 500, poll_timeout: float = 0.5,
                 after_batch: Callable[[Sequence[IncomingEvent]], object] | None = None) -> None:
        super().__init__(kafka, group_id=group_id, topics=topics, batch_size=batch_size, poll_timeout=poll_timeout)
        self._sessions = session_factory
        self._materializer = materializer
        self._dead_letters = dead_letters
        # Runs once the batch's rows are committed and before its offsets are: a failure there rewinds the batch.
        self._after_batch = after_batch
        self._failures = 0
        self.database_healthy = True

    def process_batch(self, records: list[Message]) -> None:
        """Apply the batch; on failure rewind to its first records and back off, so nothing is skipped."""
        try:
            self._apply_batch(records)
            self._failures = 0
            self.database_healthy = True
        except (SQLAlchemyError, PublishFailed, KafkaException) as error:
            # After a failed offset commit the rows are in; the redelivered events are no-ops then.
            self._failures += 1
            self.database_healthy = not isinstance(error, SQLAlchemyError)
            INTERNAL_ERRORS.labels("policy-store", "apply_batch").inc()
            delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(self._failures, 6))
            log.warning("batch not applied; retrying from its first offsets",
                        extra={"error": str(error)[:500], "retry_in_seconds": delay, "records": len(records)})
            self.rewind(records)
            self.pause(delay)

    def _apply_batch(self, records: list[Message]) -> None:
        events: list[IncomingEvent] = []
        for message in records:
            try:
                events.append(decode(value=message.value(), key=message.key(), headers=message.headers(),
                                     topic=message.topic(), partition=message.partition(),
                                     offset=message.offset()))
            except UnreadableEvent as error:
                # Dead-lettered before the offset moves past it, so nothing is lost.
                self._dead_letters.publish_sync(dead_letter_for(message, reason=error.reason, error=error.message))
                DEAD_LETTERS.labels("policy-store", message.topic(), error.reason).inc()
                log.warning("unreadable record sent to the dead-letter topic",
                            extra={"reason": error.reason, "topic": message.topic(), "offset": message.offset()})
        applied = 0
        with self._sessions() as session, session.begin():
            batch = self._materializer.prepare_batch(session, events)
            for event in events:
                with traced(f"store.apply {event.event_type}", event.extra_headers.get(KAFKA_TRACEPARENT),
                            kind=SpanKind.CONSUMER, feedback_id=getattr(event.payload, "feedback_id", None)):
                    changed = batch.apply(event)
                    applied += changed
                    # One line per event, tagged with its feedback and trace: the last hop of a feedback's trail.
                    log.info("event applied", extra={"type": event.event_type, "changed": bool(changed),
                                                     "topic": event.topic, "offset": event.offset})
                EVENTS_CONSUMED.labels("policy-store", event.topic, event.event_type).inc()
        if self._after_batch is not None:
            self._after_batch(events)
        self.consumer.commit(offsets=next_offsets(records), asynchronous=False)
        EVENTS_APPLIED.inc(applied)
