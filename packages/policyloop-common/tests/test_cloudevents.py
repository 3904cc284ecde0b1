"""CloudEvents binary mode: what goes into headers and value, and what is refused on the way back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from policyloop_common.cloudevents import UnreadableEvent, decode, encode, header_map
from policyloop_common.events import FeedbackContext, FeedbackSubmitted, Rating


def feedback() -> FeedbackSubmitted:
    return FeedbackSubmitted(feedback_id="f-1", user_id="u-1", conversation_id="c", message_id="m",
                             rating=Rating.NEGATIVE, comment="Cột đúng là total_users",
                             context=FeedbackContext(question="Có bao nhiêu hệ thống?"),
                             submitted_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


def test_encode_puts_cloudevents_attributes_in_headers() -> None:
    event = encode(feedback(), source="/policyloop/test", event_id="e-1")
    headers = header_map(event.headers)
    assert event.topic == "feedback.submitted.v1"
    assert event.key == b"f-1"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == "e-1"
    assert headers["ce_type"] == "FeedbackSubmitted"
    assert headers["ce_source"] == "/policyloop/test"
    assert headers["content-type"] == "application/json"
    assert datetime.fromisoformat(headers["ce_time"].replace("Z", "+00:00")).tzinfo is not None
    assert json.loads(event.value)["comment"] == "Cột đúng là total_users"


def test_decode_round_trips() -> None:
    event = encode(feedback(), source="/policyloop/test")
    incoming = decode(value=event.value, key=event.key, headers=event.headers)
    assert incoming.payload == feedback()
    assert incoming.event_id == event.event_id
    assert incoming.key == "f-1"


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda v, h: (b"not json", h), "invalid_payload"),
    (lambda v, h: (v, [x for x in h if x[0] != "ce_type"]), "not_cloudevent"),
    (lambda v, h: (v, [(k, b"Unknown" if k == "ce_type" else x) for k, x in h]), "unknown_type"),
    (lambda v, h: (v, [(k, b"9" if k == "ce_dataschemaversion" else x) for k, x in h]), "unknown_version"),
    (lambda v, h: (b"{" + b" " * 1_000_001 + b"}", h), "oversized"),
    (lambda v, h: (json.dumps({"feedback_id": "x"}).encode(), h), "invalid_payload"),
    (lambda v, h: (None, h), "empty_value"),
    (lambda v, h: (b"\xff\xfe binary", h), "not_utf8"),
    (lambda v, h: (v.replace(b"total_users", b"\xc3\x28"), h), "not_utf8"),
])
def test_decode_refuses_what_is_not_a_valid_event(mutate, reason: str) -> None:
    event = encode(feedback(), source="/policyloop/test")
    value, headers = mutate(event.value, event.headers)
    with pytest.raises(UnreadableEvent) as refused:
        decode(value=value, key=event.key, headers=headers)
    assert refused.value.reason == reason


def test_a_field_added_by_a_newer_producer_is_ignored_not_refused() -> None:
    event = encode(feedback(), source="/policyloop/test")
    newer = json.loads(event.value)
    newer["sentiment"] = "angry"
    newer["context"]["screen"] = "dashboard"
    incoming = decode(value=json.dumps(newer).encode(), key=event.key, headers=event.headers)
    assert incoming.payload == feedback()


def test_an_invalid_payload_is_reported_without_echoing_its_input() -> None:
    with pytest.raises(UnreadableEvent) as refused:
        event = encode(feedback(), source="/policyloop/test")
        decode(value=json.dumps({"feedback_id": "x", "comment": "secret-ish text"}).encode(), key=event.key,
               headers=event.headers)
    assert refused.value.reason == "invalid_payload"
    assert "user_id: Field required" in refused.value.message and "secret-ish" not in refused.value.message
