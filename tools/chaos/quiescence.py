"""Waiting for the pipeline to come to rest after the load: everything decided, every group at the end."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from policyloop_common.events import FEEDBACK_SUBMITTED_TOPIC

POLL_SECONDS = 1.0


def groups_at_end(bootstrap: str, groups: list[str], topic: str = FEEDBACK_SUBMITTED_TOPIC) -> bool:
    """True when each group has committed offsets up to the end of every partition of ``topic``.

    The feedback topic holds no transaction markers, so a group at rest has committed exactly the high watermark.
    Until then a rebalance could hand records out again, and a redelivery could still produce a second decision.
    """
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-quiescence-probe",
                      "enable.auto.commit": False})
    try:
        partitions = sorted(probe.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    except KafkaException:
        return False
    finally:
        probe.close()
    for group in groups:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        except KafkaException:
            return False
        finally:
            consumer.close()
        if any(tp.offset != ends[tp.partition] and ends[tp.partition] > 0 for tp in committed):
            return False
    return True


def wait_quiescent(*, undecided: Callable[[], int], bootstrap: str, groups: list[str], timeout: float) -> bool:
    """Wait until nothing accepted is undecided in the store and the groups are at the end; False on timeout.

    Open transactions of a killed generator hold read_committed readers back until the restarted instance fences
    them (or the broker times them out after 60 s); the timeout is far above that.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if undecided() == 0 and groups_at_end(bootstrap, groups):
            return True
        time.sleep(POLL_SECONDS)
    return False
