"""Unreadable records written straight into the feedback topic, each with the dead-letter reason it must get."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from policyloop_common.cloudevents import MAX_EVENT_BYTES
from policyloop_common.events import FEEDBACK_SUBMITTED_TOPIC

# A record above the consumers' limit but below the broker's (1 MiB by default), so the broker takes it.
OVERSIZED_BYTES = MAX_EVENT_BYTES + 4096


@dataclass(frozen=True)
class Poison:
    """One injected record: where it landed and why the consumers must refuse it."""

    kind: str
    reason: str
    partition: int
    offset: int


def _headers(*, version: str = "1", event_type: str = "FeedbackSubmitted") -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", str(uuid.uuid4()).encode()), ("ce_source", b"/chaos/poison"),
            ("ce_type", event_type.encode()), ("ce_time", datetime.now(UTC).isoformat().encode()),
            ("ce_dataschemaversion", version.encode()), ("content-type", b"application/json")]


def _valid_payload(feedback_id: str) -> bytes:
    return json.dumps({"feedback_id": feedback_id, "user_id": "chaos-poison", "conversation_id": "c",
                       "message_id": "m", "rating": "negative", "comment": "Use total_users, not users.",
                       "context": {"question": "How many users?"},
                       "submitted_at": datetime.now(UTC).isoformat()}).encode()


def poison_records(feedback_id: str) -> dict[str, tuple[str, bytes | None, list[tuple[str, bytes]]]]:
    """Each kind of poison: (expected dead-letter reason, value, headers), keyed by a ``feedback_id``."""
    return {
        "not_json": ("invalid_payload", b"<feedback>this is not JSON</feedback>", _headers()),
        "not_utf8": ("not_utf8", b"\xff\xfe\x00\x81 binary, not text", _headers()),
        "wrong_schema": ("invalid_payload", json.dumps({"feedback_id": feedback_id, "rating": "meh"}).encode(),
                         _headers()),
        "unknown_schema_version": ("unknown_version", _valid_payload(feedback_id), _headers(version="99")),
        "oversized": ("oversized", b'{"pad": "' + b"x" * OVERSIZED_BYTES + b'"}', _headers()),
        "no_cloudevent_headers": ("not_cloudevent", _valid_payload(feedback_id), []),
        "unknown_type": ("unknown_type", _valid_payload(feedback_id), _headers(event_type="FeedbackDeleted")),
    }


KINDS = tuple(poison_records("x"))


def inject_poison(bootstrap: str, *, copies: int, kinds: tuple[str, ...] = KINDS,
                  topic: str = FEEDBACK_SUBMITTED_TOPIC) -> list[Poison]:
    """Write ``copies`` records of each kind with a plain producer; return where each one landed."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.max.bytes": OVERSIZED_BYTES + 64 * 1024})
    landed: list[Poison] = []
    failures: list[str] = []

    def recorder(kind: str, reason: str):
        def report(error: KafkaError | None, message) -> None:
            if error is not None:
                failures.append(f"{kind}: {error.str()}")
            else:
                landed.append(Poison(kind, reason, message.partition(), message.offset()))
        return report

    for copy in range(copies):
        for kind in kinds:
            # Keys like feedback ids spread the poison over the partitions, as real records would be.
            key = f"poison-{kind}-{copy}-{uuid.uuid4().hex[:8]}"
            reason, value, headers = poison_records(key)[kind]
            producer.produce(topic, key=key.encode(), value=value, headers=headers, on_delivery=recorder(kind, reason))
    if producer.flush(60) or failures:
        raise RuntimeError(f"poison not written: {failures or 'not acknowledged in 60 s'}")
    return sorted(landed, key=lambda p: (p.partition, p.offset))


def wait_consumed(bootstrap: str, groups: list[str], poison: list[Poison], *, timeout: float,
                  topic: str = FEEDBACK_SUBMITTED_TOPIC) -> float | None:
    """Wait until every group committed past every poison record; the seconds it took, None on timeout.

    Only then is a record's dead letter final: before, a crash or a failed batch may hand it out again.
    """
    started = time.monotonic()
    last = {p.partition: 0 for p in poison}
    for record in poison:
        last[record.partition] = max(last[record.partition], record.offset)
    consumers = [Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
                 for group in groups]
    try:
        while time.monotonic() - started < timeout:
            done = True
            for consumer in consumers:
                try:
                    committed = consumer.committed([TopicPartition(topic, p) for p in last], timeout=10)
                except KafkaException:
                    done = False  # the broker is busy (or restarting); ask again
                    continue
                done &= all(tp.offset > last[tp.partition] for tp in committed)
            if done:
                return time.monotonic() - started
            time.sleep(0.5)
        return None
    finally:
        for consumer in consumers:
            consumer.close()
