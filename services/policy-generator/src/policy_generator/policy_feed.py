"""Keeps a PolicyIndex current by reading the decision and review topics from the beginning (read_committed)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from policy_generator.policy_index import PolicyIndex
from policyloop_common.cloudevents import UnreadableEvent, decode
from policyloop_common.kafka.consumer import consumer_config

log = logging.getLogger(__name__)


class PolicyFeed:
    """A thread that assigns itself every partition of the topics (no consumer group) and applies each event."""

    def __init__(self, kafka: Mapping[str, str], topics: list[str], index: PolicyIndex) -> None:
        # A throw-away group id: the feed never joins the group nor commits, it always starts from the beginning.
        self._consumer = Consumer(consumer_config(kafka, group_id=f"policy-feed-{uuid.uuid4().hex}"))
        self._topics = topics
        self._index = index
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-feed", daemon=True)
        self.events_applied = 0

    def start(self) -> None:
        """Assign all partitions from the beginning and start applying events."""
        metadata = self._consumer.list_topics(timeout=30)
        partitions = []
        for topic in self._topics:
            if topic not in metadata.topics or metadata.topics[topic].error is not None:
                raise RuntimeError(f"topic {topic} does not exist; create the topics first")
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.topics[topic].partitions]
        self._consumer.assign(partitions)
        self._targets = {(tp.topic, tp.partition): self._high_watermark(tp) for tp in partitions}
        self._thread.start()

    def _high_watermark(self, partition: TopicPartition, timeout: float = 30.0) -> int:
        """The partition's end offset; retried while a new topic's leader is still being elected."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._consumer.get_watermark_offsets(partition, timeout=10)[1]
            except KafkaException as error:
                # A just-created topic answers "not leader" or "unknown partition" for a moment.
                if time.monotonic() > deadline:
                    raise
                log.info("waiting for a partition leader", extra={"topic": partition.topic, "error": str(error),
                                                                  "partition": partition.partition})
                time.sleep(0.5)

    def wait_caught_up(self, timeout: float) -> bool:
        """Block until every event present at start has been applied, or ``timeout`` passes."""
        return self._caught_up.wait(timeout)

    @property
    def caught_up(self) -> bool:
        """True once the index reflects every event present when the feed started."""
        return self._caught_up.is_set()

    @property
    def alive(self) -> bool:
        """True while the feed thread runs."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread and close the consumer."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(num_messages=500, timeout=0.5)
            except KafkaException as error:
                log.warning("policy feed could not read", extra={"error": str(error)})
                time.sleep(1)
                continue
            for message in messages:
                if message.error():
                    continue
                self._apply(message)
            if not self._caught_up.is_set() and self._reached_targets():
                self._caught_up.set()
                log.info("policy index loaded", extra={"policies": len(self._index),
                                                       "events": self.events_applied})

    def _apply(self, message) -> None:
        event_id = _event_id(message.headers())
        if event_id is not None and self._index.applied_at_commit(event_id):
            # This process's own decision, applied when its transaction committed.
            self.events_applied += 1
            return
        try:
            event = decode(value=message.value(), key=message.key(), headers=message.headers(),
                           topic=message.topic(), partition=message.partition(), offset=message.offset())
        except UnreadableEvent as error:
            # Bad records on these topics are the store's to dead-letter; the index just skips them.
            log.warning("policy feed skipped an unreadable record", extra={"reason": error.reason})
            return
        self._index.apply(event.payload)  # type: ignore[arg-type]
        self.events_applied += 1

    def _reached_targets(self) -> bool:
        positions = self._consumer.position([TopicPartition(t, p) for t, p in self._targets])
        for tp in positions:
            target = self._targets[(tp.topic, tp.partition)]
            # A negative position means nothing was read yet, which is fine only for an empty partition.
            current = tp.offset if tp.offset >= 0 else 0
            if current < target:
                return False
        return True


def _event_id(headers: list[tuple[str, bytes | None]] | None) -> str | None:
    """The record's CloudEvent id, read without decoding the event."""
    for name, value in headers or ():
        if name == "ce_id" and value is not None:
            return value.decode("utf-8", errors="replace")
    return None
