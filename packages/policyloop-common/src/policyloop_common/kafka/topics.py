"""Creating the topics the pipeline needs, with their dead-letter topics."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from policyloop_common.events import (
    FEEDBACK_SUBMITTED_TOPIC,
    POLICY_DECISIONS_TOPIC,
    POLICY_REVIEWS_TOPIC,
    POLICY_USAGE_TOPIC,
    dead_letter_topic,
)

log = logging.getLogger(__name__)

PIPELINE_TOPICS = (FEEDBACK_SUBMITTED_TOPIC, POLICY_DECISIONS_TOPIC, POLICY_REVIEWS_TOPIC, POLICY_USAGE_TOPIC)


def all_topics(topics: Iterable[str] = PIPELINE_TOPICS) -> list[str]:
    """The topics with their dead-letter topics."""
    names = list(topics)
    return names + [dead_letter_topic(name) for name in names]


def ensure_topics(base: Mapping[str, str], names: Iterable[str], *, partitions: int,
                  replication_factor: int = 1, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Existing topics are left as they are."""
    admin = AdminClient(dict(base))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [name for name in names if name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor) for name in wanted],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    log.info("topics created", extra={"topics": created, "partitions": partitions})
    return created
