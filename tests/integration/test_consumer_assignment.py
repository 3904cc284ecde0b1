"""How a consumer group shares its partitions, on the real broker: each store replica takes a share of every topic."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from policy_store.consumer import StoreConsumer
from policyloop_common.kafka.batch_loop import BatchConsumerLoop
from policyloop_common.kafka.offsets import next_offsets
from policyloop_common.kafka.topics import ensure_topics
from tests.support.polling import eventually

PARTITIONS = 6


class Member(BatchConsumerLoop):
    """A group member with the store's assignment that commits what it reads and counts it."""

    assignment = StoreConsumer.assignment

    def __init__(self, bootstrap: str, group: str, topics: list[str]) -> None:
        super().__init__({"bootstrap.servers": bootstrap}, group_id=group, topics=topics, batch_size=100,
                         poll_timeout=0.1)
        self.read = 0
        # Kept by the rebalance callbacks, in the loop's thread: what the member holds between two polls.
        self._held: set[tuple[str, int]] = set()

    def rebalance_callbacks(self) -> dict[str, Callable[[Consumer, list[TopicPartition]], None]]:
        return {"on_assign": self._assigned, "on_revoke": self._revoked, "on_lost": self._revoked}

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._held |= {(partition.topic, partition.partition) for partition in partitions}

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._held -= {(partition.topic, partition.partition) for partition in partitions}

    def process_batch(self, records: list[Message]) -> None:
        self.read += len(records)
        self.consumer.commit(offsets=next_offsets(records), asynchronous=False)

    def held(self) -> set[tuple[str, int]]:
        return set(self._held)


@pytest.fixture
def members() -> Iterator[list[Member]]:
    """The members a test starts, stopped after it."""
    started: list[Member] = []
    yield started
    for member in started:
        member.stop()


def _publish(bootstrap: str, topic: str, count: int, tag: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for number in range(count):
        producer.produce(topic, key=f"{tag}-{number}".encode(), value=b"{}")
    assert producer.flush(30) == 0


def test_a_store_replica_joining_a_running_group_takes_a_share_of_every_topic(
        kafka_bootstrap: str, unique_name: str, members: list[Member]) -> None:
    # The store reads busy topics (feedback, decisions) beside quiet ones (reviews, usage). Balanced by the count of
    # partitions only, the replica that joins second could be given nothing but the quiet topic's.
    busy, quiet = f"assignment-busy-{unique_name}", f"assignment-quiet-{unique_name}"
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, [busy, quiet], partitions=PARTITIONS)
    _publish(kafka_bootstrap, busy, 300, "before")
    group = f"assignment-{unique_name}"

    first = Member(kafka_bootstrap, group, [busy, quiet])
    members.append(first)
    first.start()
    eventually(lambda: len(first.held()) == 2 * PARTITIONS and first.read >= 300, timeout=60,
               what="the first member holding every partition and reading the backlog")

    second = Member(kafka_bootstrap, group, [busy, quiet])
    members.append(second)
    second.start()
    eventually(lambda: len(first.held()) == len(second.held()) == PARTITIONS
               and not first.held() & second.held(), timeout=60, what="the partitions shared between the two")

    for member in (first, second):
        held = member.held()
        busy_partitions = {partition for topic, partition in held if topic == busy}
        quiet_partitions = {partition for topic, partition in held if topic == quiet}
        assert len(busy_partitions) == PARTITIONS // 2
        # Partition p of every topic with the same member: a feedback's events (same key) meet in one replica.
        assert busy_partitions == quiet_partitions

    # Both do the busy topic's work from now on.
    read_before = (first.read, second.read)
    _publish(kafka_bootstrap, busy, 300, "after")
    eventually(lambda: first.read + second.read - sum(read_before) == 300, timeout=60,
               what="the new records read")
    assert first.read > read_before[0]
    assert second.read > read_before[1]
