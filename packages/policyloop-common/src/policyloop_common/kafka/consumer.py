"""Consumer settings shared by the services: read_committed, manual commits, cooperative rebalancing."""

from __future__ import annotations

from collections.abc import Mapping


def consumer_config(base: Mapping[str, str], *, group_id: str, **overrides: object) -> dict:
    """Settings for a consumer that commits offsets itself after its work is durable."""
    config: dict[str, object] = {
        **base,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        # Adding a consumer moves only the partitions it takes; the others keep working.
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 15_000,
        "max.poll.interval.ms": 300_000,
    }
    config.update(overrides)
    return config
