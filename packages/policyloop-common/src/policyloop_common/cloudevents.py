"""CloudEvents 1.0 binary content mode: attributes in Kafka headers, the event model as the JSON value."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, ValidationError

from policyloop_common.events import EVENT_TYPES

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
# Values above this are refused before parsing: no legitimate event comes near it.
MAX_EVENT_BYTES = 1_000_000

Headers = list[tuple[str, bytes]]


class UnreadableEvent(Exception):
    """A Kafka record that is not a valid event of a known type; ``reason`` is a short machine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class OutgoingEvent:
    """An event ready for a producer: key, value and CloudEvents headers."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers
    event_id: str


@dataclass(frozen=True)
class IncomingEvent:
    """An event read from Kafka, parsed into its model."""

    event_id: str
    event_type: str
    source: str
    time: datetime
    payload: BaseModel
    key: str
    topic: str = ""
    partition: int = -1
    offset: int = -1
    extra_headers: dict[str, str] = field(default_factory=dict)


def event_key(payload: BaseModel) -> str:
    """Partition key: the event's ``partition_key`` if it has one (usage), else the feedback id, else the policy id."""
    return (getattr(payload, "partition_key", None) or getattr(payload, "feedback_id", None)
            or payload.policy_id)  # type: ignore[attr-defined]


def encode(payload: BaseModel, *, source: str, event_id: str | None = None, time: datetime | None = None,
           trace_id: str | None = None, topic: str | None = None) -> OutgoingEvent:
    """Serialize ``payload`` as a binary-mode CloudEvent for its own topic (or ``topic``, where configured)."""
    event_id = event_id or str(uuid.uuid4())
    moment = (time or datetime.now(UTC)).astimezone(UTC)
    headers: Headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type(payload).ce_type.encode()),  # type: ignore[attr-defined]
        ("ce_time", moment.isoformat().replace("+00:00", "Z").encode()),
        ("ce_dataschemaversion", str(type(payload).schema_version).encode()),  # type: ignore[attr-defined]
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if trace_id:
        headers.append(("ce_traceparent", trace_id.encode()))
    return OutgoingEvent(
        topic=topic or type(payload).topic,  # type: ignore[attr-defined]
        key=event_key(payload).encode(),
        value=payload.model_dump_json().encode(),
        headers=headers,
        event_id=event_id,
    )


def header_map(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as a dict of text; the last value of a repeated header wins."""
    result: dict[str, str] = {}
    for name, value in headers or []:
        if value is not None:
            result[name] = value.decode("utf-8", errors="replace")
    return result


def decode(*, value: bytes | None, key: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None,
           topic: str = "", partition: int = -1, offset: int = -1) -> IncomingEvent:
    """Parse a Kafka record into an event, or raise UnreadableEvent saying why it cannot be one."""
    attributes = header_map(headers)
    if value is None:
        raise UnreadableEvent("empty_value", "the record has no value")
    if len(value) > MAX_EVENT_BYTES:
        raise UnreadableEvent("oversized", f"value of {len(value)} bytes exceeds {MAX_EVENT_BYTES}")
    if attributes.get("ce_specversion") != SPEC_VERSION:
        raise UnreadableEvent("not_cloudevent", f"ce_specversion is {attributes.get('ce_specversion')!r}")
    for required in ("ce_id", "ce_type", "ce_source", "ce_time"):
        if not attributes.get(required):
            raise UnreadableEvent("not_cloudevent", f"header {required} is missing")
    event_type = attributes["ce_type"]
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise UnreadableEvent("unknown_type", f"ce_type {event_type!r} is not known")
    version = attributes.get("ce_dataschemaversion", "1")
    if version != str(model.schema_version):  # type: ignore[attr-defined]
        raise UnreadableEvent("unknown_version", f"{event_type} version {version} is not supported")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as error:
        # Checked first: pydantic cannot even report a validation error on bytes that are not UTF-8.
        raise UnreadableEvent("not_utf8", f"the value is not UTF-8 at byte {error.start}") from error
    try:
        # Given the bytes rather than the text: the same parse, 12 µs instead of 17 for the benchmark's events.
        payload = model.model_validate_json(value)
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
                            for item in error.errors(include_url=False, include_input=False))
        raise UnreadableEvent("invalid_payload", details[:2000]) from error
    try:
        time = datetime.fromisoformat(attributes["ce_time"].replace("Z", "+00:00"))
    except ValueError as error:
        raise UnreadableEvent("not_cloudevent", f"ce_time {attributes['ce_time']!r} is not a timestamp") from error
    known = {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_dataschemaversion", "content-type"}
    return IncomingEvent(
        event_id=attributes["ce_id"],
        event_type=event_type,
        source=attributes["ce_source"],
        time=time,
        payload=payload,
        key=(key or b"").decode("utf-8", errors="replace"),
        topic=topic,
        partition=partition,
        offset=offset,
        extra_headers={k: v for k, v in attributes.items() if k not in known},
    )
