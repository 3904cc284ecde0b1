"""Dead-letter records: the original bytes with headers saying where they came from and why they were refused."""

from __future__ import annotations

from confluent_kafka import Message

from policyloop_common.cloudevents import OutgoingEvent
from policyloop_common.events import dead_letter_topic

REASON_HEADER = "dlq_reason"
ERROR_HEADER = "dlq_error"
TOPIC_HEADER = "dlq_original_topic"
PARTITION_HEADER = "dlq_original_partition"
OFFSET_HEADER = "dlq_original_offset"
TRUNCATED_HEADER = "dlq_truncated_from"
DLQ_HEADERS = {REASON_HEADER, ERROR_HEADER, TOPIC_HEADER, PARTITION_HEADER, OFFSET_HEADER, TRUNCATED_HEADER}
# A record the broker took can still be too large for a producer's default message.max.bytes (1,000,000) once the
# dead-letter headers are added. Its dead letter keeps this much of the value: enough to see what it was, while
# the whole record stays in its original topic at the offset the headers name.
MAX_DEAD_LETTER_VALUE_BYTES = 512 * 1024


def dead_letter_for(message: Message, *, reason: str, error: str) -> OutgoingEvent:
    """The record to write to ``<topic>.dlq`` for a message that could not be processed."""
    headers = [(name, value) for name, value in (message.headers() or []) if name not in DLQ_HEADERS]
    value = message.value() or b""
    if len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        headers.append((TRUNCATED_HEADER, str(len(value)).encode()))
        value = value[:MAX_DEAD_LETTER_VALUE_BYTES]
    headers += [
        (REASON_HEADER, reason.encode()),
        (ERROR_HEADER, error[:4000].encode()),
        (TOPIC_HEADER, message.topic().encode()),
        (PARTITION_HEADER, str(message.partition()).encode()),
        (OFFSET_HEADER, str(message.offset()).encode()),
    ]
    return OutgoingEvent(
        topic=dead_letter_topic(message.topic()),
        key=message.key() or b"",
        value=value,
        headers=headers,
        event_id=f"dlq:{message.topic()}:{message.partition()}:{message.offset()}",
    )
