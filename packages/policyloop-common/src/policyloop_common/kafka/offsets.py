"""The offsets to commit after a batch of records is durable: one past the highest record of each partition."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Message, TopicPartition


def next_offsets(records: Iterable[Message]) -> list[TopicPartition]:
    """Per topic-partition of ``records``, the offset of the next record to read (Kafka's commit convention)."""
    highest: dict[tuple[str, int], int] = {}
    for message in records:
        key = (message.topic(), message.partition())
        highest[key] = max(highest.get(key, -1), message.offset())
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in highest.items()]
