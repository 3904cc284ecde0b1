"""Consumer settings shared by the services: read_committed, manual commits, the group's assignment."""

from __future__ import annotations

from collections.abc import Mapping

# Adding a consumer moves only the partitions it takes; the others keep working. It balances the number of
# partitions each member holds, not each topic's: right for a group that reads one topic.
INCREMENTAL = "cooperative-sticky"
# Each topic's partitions split evenly among the members, partition p of every topic to the same member; every
# member stops for the rebalance (a fraction of a second when they leave and join cleanly). For a group that reads
# several topics of different traffic: the incremental assignor, when a member joins a running group, moved all of
# a busy topic's partitions to one member and left the other only the quiet topics' (docs/operations.md).
PER_TOPIC = "range"


def consumer_config(base: Mapping[str, str], *, group_id: str, assignment: str = INCREMENTAL,
                    **overrides: object) -> dict:
    """Settings for a consumer that commits offsets itself after its work is durable; ``assignment`` is the
    group's partition assignment strategy (``INCREMENTAL`` or ``PER_TOPIC``)."""
    config: dict[str, object] = {
        **base,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": assignment,
        "session.timeout.ms": 15_000,
        "max.poll.interval.ms": 300_000,
    }
    config.update(overrides)
    return config
