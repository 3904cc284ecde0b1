"""Reading a whole topic as a read_committed consumer sees it, up to its end."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition


class TopicNotSettled(Exception):
    """The topic could not be read to its end in time (a transaction stayed open, say)."""


def read_committed(bootstrap: str, topic: str, *, timeout: float = 180.0) -> list[Message]:
    """Every committed record of ``topic``, read until each partition's position reaches its high watermark.

    A read_committed position stops before a transaction that is still open, so this also waits for open
    transactions to end, committed or aborted (fenced by a restarted producer, or timed out by the broker).
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 4 * 1024 * 1024})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        remaining = set(partitions)
        while remaining:
            if time.monotonic() > deadline:
                raise TopicNotSettled(f"{topic}: partitions {sorted(remaining)} not read to their end "
                                      f"within {timeout:.0f}s")
            records += [m for m in consumer.consume(num_messages=1000, timeout=0.5) if m.error() is None]
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in remaining}
            for position in consumer.position([TopicPartition(topic, p) for p in remaining]):
                # A partition that ends with a transaction marker is done once the position passed it.
                if position.offset >= ends[position.partition] or (ends[position.partition] == 0):
                    remaining.discard(position.partition)
        return records
    finally:
        consumer.close()
