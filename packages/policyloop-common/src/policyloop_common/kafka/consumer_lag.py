"""Consumer lag per assigned partition, read from librdkafka's statistics rather than asked of the broker.

librdkafka already tracks each partition's last stable offset and this consumer's position; its periodic
statistics carry both for free, where querying watermarks after every batch would cost a broker round trip.
"""

from __future__ import annotations

import json
import logging

from policyloop_common.metrics import CONSUMER_LAG

log = logging.getLogger(__name__)

# How often librdkafka emits statistics, and so how fresh the lag gauge is.
STATISTICS_INTERVAL_MS = 5_000


class ConsumerLagGauge:
    """Turns librdkafka statistics into ``policyloop_consumer_lag``; partitions no longer assigned are dropped."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._published: set[tuple[str, str]] = set()

    def on_statistics(self, statistics_json: str) -> None:
        """The ``stats_cb`` of a consumer: runs inside its poll, on the consuming thread."""
        try:
            statistics = json.loads(statistics_json)
        except ValueError:
            log.warning("unreadable librdkafka statistics ignored")
            return
        current: set[tuple[str, str]] = set()
        for topic, topic_stats in statistics.get("topics", {}).items():
            for partition, partition_stats in topic_stats.get("partitions", {}).items():
                # "-1" is librdkafka's internal partition, not one of the topic's.
                lag = -1 if partition == "-1" else partition_lag(partition_stats)
                if lag < 0:
                    continue
                CONSUMER_LAG.labels(self.service, topic, partition).set(lag)
                current.add((topic, partition))
        for topic, partition in self._published - current:
            CONSUMER_LAG.remove(self.service, topic, partition)
        self._published = current


def partition_lag(partition_stats: dict) -> int:
    """Records behind for one partition of the statistics; -1 when it is not being consumed here."""
    # While this member fetches the partition, count from its position: librdkafka's own consumer_lag counts from
    # the offset it last committed itself, which a transactional consumer (offsets committed by its producer)
    # never updates, and which is -1 before a group's first commit.
    if partition_stats.get("fetch_state") != "active":
        return -1
    # read_committed consumers stop at the last stable offset: records of open transactions are not lag yet.
    end = partition_stats.get("ls_offset", -1)
    position = partition_stats.get("app_offset", -1)
    start = position if position >= 0 else partition_stats.get("lo_offset", -1)
    return max(end - start, 0) if end >= 0 and start >= 0 else -1
