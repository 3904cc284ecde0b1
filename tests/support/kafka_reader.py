"""Reading what a topic holds, as a consumer with read_committed would see it."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from policyloop_common.cloudevents import IncomingEvent, decode, header_map


def read_topic(bootstrap: str, topic: str, *, settle_seconds: float = 1.0, timeout: float = 30.0) -> list:
    """Every committed record of ``topic`` from the beginning (raw confluent-kafka messages).

    Reads until every partition has reported its end at least once, then for ``settle_seconds`` more so
    records still in flight are seen. Waiting for the ends, not only for quiet, matters on a loaded machine:
    joining and the first fetch can take longer than the settle time, and an early "nothing there" would be
    a wrong answer rather than a slow one.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        consumer.assign(partitions)
        records, ended, last_seen = [], set(), time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(ended) == len(partitions) and time.monotonic() - last_seen >= settle_seconds:
                break
            for message in consumer.consume(num_messages=500, timeout=0.2):
                error = message.error()
                if error is None:
                    records.append(message)
                    ended.discard(message.partition())
                    last_seen = time.monotonic()
                elif error.code() == KafkaError._PARTITION_EOF and message.partition() not in ended:
                    ended.add(message.partition())
                    last_seen = time.monotonic()
        return records
    finally:
        consumer.close()


def read_events(bootstrap: str, topic: str, **kwargs) -> list[IncomingEvent]:
    """Every committed record of ``topic`` decoded as an event."""
    return [decode(value=m.value(), key=m.key(), headers=m.headers(), topic=m.topic(), partition=m.partition(),
                   offset=m.offset()) for m in read_topic(bootstrap, topic, **kwargs)]


def headers_of(message) -> dict[str, str]:
    """A raw record's headers as text."""
    return header_map(message.headers())
