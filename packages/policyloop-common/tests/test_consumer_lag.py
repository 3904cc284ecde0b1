"""Consumer lag from librdkafka statistics, as the gauge shows it."""

from __future__ import annotations

import json

from policyloop_common.kafka.consumer_lag import ConsumerLagGauge, partition_lag
from policyloop_common.metrics import CONSUMER_LAG


def statistics(**partitions: dict) -> str:
    return json.dumps({"topics": {"feedback.submitted.v1": {"partitions": {
        "-1": {"fetch_state": "none", "consumer_lag": -1}, **partitions}}}})


def gauge(service: str, partition: str) -> float | None:
    for metric in CONSUMER_LAG.collect():
        for sample in metric.samples:
            if sample.labels == {"service": service, "topic": "feedback.submitted.v1", "partition": partition}:
                return sample.value
    return None


def test_lag_counts_from_the_position_to_the_last_stable_offset() -> None:
    assert partition_lag({"fetch_state": "active", "app_offset": 40, "ls_offset": 100, "hi_offset": 104}) == 60


def test_before_the_first_position_the_log_start_counts() -> None:
    assert partition_lag({"fetch_state": "active", "app_offset": -1001, "lo_offset": 10, "ls_offset": 25}) == 15


def test_a_partition_not_fetched_here_has_no_lag() -> None:
    assert partition_lag({"fetch_state": "none", "app_offset": 5, "ls_offset": 9, "consumer_lag": 4}) == -1


def test_gauge_follows_the_assignment() -> None:
    lag = ConsumerLagGauge("lag-test")
    lag.on_statistics(statistics(**{"0": {"fetch_state": "active", "app_offset": 3, "ls_offset": 10},
                                    "1": {"fetch_state": "active", "app_offset": 7, "ls_offset": 7}}))
    assert (gauge("lag-test", "0"), gauge("lag-test", "1")) == (7, 0)
    # Partition 0 moved to another member in a rebalance: its last value must not linger here.
    lag.on_statistics(statistics(**{"0": {"fetch_state": "none"},
                                    "1": {"fetch_state": "active", "app_offset": 8, "ls_offset": 12}}))
    assert (gauge("lag-test", "0"), gauge("lag-test", "1")) == (None, 4)
    assert gauge("lag-test", "-1") is None


def test_unreadable_statistics_change_nothing() -> None:
    lag = ConsumerLagGauge("lag-test-2")
    lag.on_statistics(statistics(**{"2": {"fetch_state": "active", "app_offset": 1, "ls_offset": 3}}))
    lag.on_statistics("{not json")
    assert gauge("lag-test-2", "2") == 2
