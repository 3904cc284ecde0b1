"""The store's Kafka loop: a batch of events applied in one database transaction, then its offsets committed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from policyloop_common.cloudevents import IncomingEvent, UnreadableEvent, decode
from policyloop_common.kafka.consumer import consumer_config
from policyloop_common.kafka.dead_letters import dead_letter_for
from policyloop_common.kafka.producer import DurableProducer, PublishFailed
from policyloop_common.logging import log_context
from policyloop_common.metrics import DEAD_LETTERS, EVENTS_CONSUMED, INTERNAL_ERRORS
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from policy_store.materializer import Materializer
from policy_store.metrics import BATCH_SECONDS, EVENTS_APPLIED

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 30.0


class StoreConsumer:
    """Runs in a thread; offsets are committed only after the rows of their events are committed."""

    def __init__(self, kafka: Mapping[str, str], *, group_id: str, topics: list[str],
                 session_factory: sessionmaker[Session], materializer: Materializer, dead_letters: DurableProducer,
                 batch_size: int = 500, poll_timeout: float = 0.5) -> None:
        self._consumer = Consumer(consumer_config(kafka, group_id=group_id))
        self._topics = topics
        self._sessions = session_factory
        self._materializer = materializer
        self._dead_letters = dead_letters
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-consumer", daemon=True)
        self.database_healthy = True

    def start(self) -> None:
        """Subscribe and start the loop."""
        self._consumer.subscribe(self._topics)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the loop runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand, commit, leave the group."""
        self._stop.set()
        self._thread.join(timeout=timeout)
        self._consumer.close()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(num_messages=self._batch_size, timeout=self._poll_timeout)
            except KafkaException as error:
                log.warning("consume failed", extra={"error": str(error)})
                time.sleep(1)
                continue
            records = [m for m in messages if m.error() is None or self._log_error(m)]
            if not records:
                continue
            try:
                self._apply_batch(records)
                failures = 0
                self.database_healthy = True
            except (SQLAlchemyError, PublishFailed, KafkaException) as error:
                # After a failed offset commit the rows are in; the redelivered events are no-ops then.
                failures += 1
                self.database_healthy = not isinstance(error, SQLAlchemyError)
                INTERNAL_ERRORS.labels("policy-store", "apply_batch").inc()
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(failures, 6))
                log.warning("batch not applied; retrying from its first offsets",
                            extra={"error": str(error)[:500], "retry_in_seconds": delay, "records": len(records)})
                self._rewind(records)
                self._stop.wait(delay)

    @staticmethod
    def _log_error(message: Message) -> bool:
        if message.error().code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", extra={"error": message.error().str()})
        return False

    def _apply_batch(self, records: list[Message]) -> None:
        started = time.perf_counter()
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
            for event in events:
                with log_context(feedback_id=getattr(event.payload, "feedback_id", None)):
                    applied += self._materializer.apply(session, event)
                EVENTS_CONSUMED.labels("policy-store", event.topic, event.event_type).inc()
        self._consumer.commit(offsets=self._next_offsets(records), asynchronous=False)
        EVENTS_APPLIED.inc(applied)
        BATCH_SECONDS.observe(time.perf_counter() - started)

    @staticmethod
    def _next_offsets(records: list[Message]) -> list[TopicPartition]:
        highest: dict[tuple[str, int], int] = {}
        for message in records:
            key = (message.topic(), message.partition())
            highest[key] = max(highest.get(key, -1), message.offset())
        return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in highest.items()]

    def _rewind(self, records: list[Message]) -> None:
        """Seek each partition back to the first record of the failed batch."""
        lowest: dict[tuple[str, int], int] = {}
        for message in records:
            key = (message.topic(), message.partition())
            lowest[key] = min(lowest.get(key, message.offset()), message.offset())
        for (topic, partition), offset in lowest.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as error:
                # The partition moved to another consumer meanwhile; it resumes from the committed offset.
                log.info("partition no longer assigned", extra={"topic": topic, "partition": partition,
                                                                "error": str(error)})
