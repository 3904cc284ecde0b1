"""feedback-api's pure parts: language choice, idempotent ids, rate limiting, request validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from feedback_api.idempotency import IdempotencyRecord, feedback_id_for
from feedback_api.messages import accepted_message, preferred_language
from feedback_api.models import FeedbackRequest
from feedback_api.rate_limit import RateLimiter


@pytest.mark.parametrize(("header", "language"), [
    (None, "vi"), ("", "vi"), ("en", "en"), ("en-US,en;q=0.9", "en"), ("vi", "vi"), ("fr", "vi"),
    ("vi;q=0.5, en;q=0.8", "en"), ("en;q=0.3, vi", "vi"), ("de, en-GB;q=0.7", "en"),
])
def test_language_follows_accept_language(header: str | None, language: str) -> None:
    assert preferred_language(header) == language


def test_messages_match_the_contract() -> None:
    assert accepted_message("vi", True) == "Đã ghi nhận phản hồi và tạo giải pháp tự động"
    assert accepted_message("en", False) == "Feedback recorded"


def test_feedback_id_is_stable_per_user_and_key() -> None:
    assert feedback_id_for("u1", "k") == feedback_id_for("u1", "k")
    assert feedback_id_for("u1", "k") != feedback_id_for("u2", "k")
    assert feedback_id_for("u1", "k") != feedback_id_for("u1", "k2")


def test_idempotency_record_evicts_oldest_when_full() -> None:
    record = IdempotencyRecord(ttl_seconds=60, max_entries=2)
    for name in ("a", "b", "c"):
        record.put(name, "fp", {"feedback_id": name})
    assert record.get("a") is None
    assert record.get("c").response == {"feedback_id": "c"}


def test_rate_limiter_allows_a_burst_then_says_how_long_to_wait() -> None:
    limiter = RateLimiter(per_minute=3)
    assert [limiter.acquire("u") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("u")
    assert 0 < wait <= 20.0
    assert limiter.acquire("someone-else") == 0.0


def test_negative_feedback_needs_a_comment() -> None:
    base = {"conversation_id": "c", "message_id": "m", "context": {"question": "q"}}
    with pytest.raises(ValidationError, match="comment is required"):
        FeedbackRequest(**base, rating="negative", comment="  ")
    assert FeedbackRequest(**base, rating="positive").comment is None


def test_lists_are_bounded() -> None:
    with pytest.raises(ValidationError):
        FeedbackRequest(conversation_id="c", message_id="m", rating="positive",
                        context={"question": "q", "steps": ["s"] * 51})


@pytest.mark.parametrize("body", [
    {"conversation_id": "c", "message_id": "m", "rating": "positive", "context": {"question": "q"}, "mood": "x"},
    {"conversation_id": "c", "message_id": "m", "rating": "positive", "context": {"question": "q", "screen": "x"}},
])
def test_a_request_with_unknown_fields_is_refused_though_events_tolerate_them(body: dict) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        FeedbackRequest.model_validate(body)
