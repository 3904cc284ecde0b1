"""Choosing feedback for re-analysis: what can be decided again, the filters, keyset pages, the rebuilt submission."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from policy_store.models import FeedbackRecord
from policy_store.reanalysis import (
    RUN_ID,
    Selection,
    count_selected,
    decode_cursor,
    encode_cursor,
    new_run_id,
    not_reanalysable,
    request_event_id,
    selected_page,
    submission_of,
)
from policyloop_common.errors import ApiError
from policyloop_common.events import FeedbackContext, FeedbackSubmitted, Rating

from .test_materializer import NOW, apply, as_incoming, duplicate, generated, submitted
from .test_reanalysis_materializer import failure, not_actionable

pytestmark = pytest.mark.integration


def submission(feedback_id: str, *, hours: int = 0, rating: Rating = Rating.NEGATIVE) -> FeedbackSubmitted:
    return submitted(feedback_id).model_copy(update={"rating": rating, "submitted_at": NOW + timedelta(hours=hours)})


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Feedback of every kind: decided each way, positive, and decided without its submission stored."""
    apply(sessions, *[as_incoming(event) for event in (
        submission("a-pending", hours=0),
        submission("b-generated", hours=1), generated("b-generated", "p1"),
        submission("c-duplicate", hours=2), duplicate("c-duplicate", "p1"),
        submission("d-not-actionable", hours=3), not_actionable("d-not-actionable"),
        submission("e-failed", hours=4), failure("e-failed"),
        submission("f-positive", hours=5, rating=Rating.POSITIVE),
        generated("g-no-submission", "p2"),
        submission("h-not-actionable", hours=6), not_actionable("h-not-actionable"),
    )])
    return sessions


def ids(sessions: sessionmaker[Session], selection: Selection, *, limit: int = 100) -> list[str]:
    with sessions() as session:
        return [row.feedback_id for row in selected_page(session, selection, after=None, limit=limit)]


def test_only_negative_feedback_with_its_submission_stored_can_be_reanalysed(store) -> None:
    everything = ["a-pending", "b-generated", "c-duplicate", "d-not-actionable", "e-failed", "h-not-actionable"]
    assert ids(store, Selection()) == everything
    with store() as session:
        assert count_selected(session, Selection()) == 6
        assert not_reanalysable(session, ["f-positive", "b-generated", "unknown", "g-no-submission", "unknown"]) == [
            "f-positive", "unknown", "g-no-submission"]


def test_filters_narrow_the_selection_and_combine(store) -> None:
    assert ids(store, Selection(statuses=("skipped", "failed"))) == [
        "c-duplicate", "d-not-actionable", "e-failed", "h-not-actionable"]
    assert ids(store, Selection(reasons=("not_actionable",))) == ["d-not-actionable", "h-not-actionable"]
    assert ids(store, Selection(reasons=("ProviderError", "duplicate_policy"))) == ["c-duplicate", "e-failed"]
    assert ids(store, Selection(feedback_ids=("h-not-actionable", "a-pending", "f-positive"))) == [
        "a-pending", "h-not-actionable"]
    # After is inclusive, before exclusive: consecutive windows never count a feedback twice.
    assert ids(store, Selection(submitted_after=NOW + timedelta(hours=1),
                                submitted_before=NOW + timedelta(hours=3))) == ["b-generated", "c-duplicate"]
    assert ids(store, Selection(statuses=("skipped",), submitted_after=NOW + timedelta(hours=3))) == [
        "d-not-actionable", "h-not-actionable"]
    assert not Selection().narrows and Selection(statuses=("pending",)).narrows


def test_keyset_pages_cover_the_selection_once_in_feedback_id_order(store) -> None:
    seen, after = [], None
    with store() as session:
        while True:
            page = selected_page(session, Selection(), after=after, limit=4)
            seen.append([row.feedback_id for row in page])
            if len(page) < 4:
                break
            after = decode_cursor(encode_cursor(page[-1].feedback_id))
    assert seen == [["a-pending", "b-generated", "c-duplicate", "d-not-actionable"], ["e-failed", "h-not-actionable"]]

    # A decision arriving between pages changes the rows already requested, not the pages still to come.
    apply(store, as_incoming(generated("a-pending", "p3")))
    with store() as session:
        later = selected_page(session, Selection(statuses=("skipped", "failed")), after="c-duplicate", limit=10)
        assert [row.feedback_id for row in later] == ["d-not-actionable", "e-failed", "h-not-actionable"]


def test_a_cursor_that_is_not_ours_is_refused() -> None:
    for cursor in ("%%%", encode_cursor("x" * 65), "AA"):  # not base64, too long an id, a NUL character
        with pytest.raises(ApiError) as refused:
            decode_cursor(cursor)
        assert (refused.value.status, refused.value.details[0]["field"]) == (422, "cursor")


def test_the_submission_rebuilt_from_a_row_equals_the_original(sessions) -> None:
    original = FeedbackSubmitted(
        feedback_id="f-rich", user_id="user-7", conversation_id="conv-1", message_id="msg-9",
        rating=Rating.NEGATIVE, comment="Sai cột: bảng có total_users, không có users",
        context=FeedbackContext(question="Có bao nhiêu hệ thống có hơn 500 người dùng?", answer="Có 12 hệ thống",
                                steps=["list tables", "inspect columns of systems"],
                                sql_queries=["SELECT count(*) FROM systems WHERE users > 500"],
                                results=[{"error": 'column "users" does not exist'}, [1, 2.5, None, {"n": [True]}]],
                                model="gpt-4o-mini"),
        submitted_at=datetime(2026, 11, 3, 9, 15, 42, 123456, tzinfo=UTC))
    apply(sessions, as_incoming(original))
    with sessions() as session:
        rebuilt = submission_of(session.get(FeedbackRecord, "f-rich"))
    assert rebuilt == original
    assert rebuilt.model_dump_json() == original.model_dump_json()


def test_run_ids_are_new_each_time_and_request_ids_are_the_same_each_time() -> None:
    first, second = new_run_id(NOW), new_run_id(NOW)
    assert first != second and first.startswith("rrun-20261101T000000Z-")
    assert RUN_ID.fullmatch(first) and re.fullmatch(r"rrun-\d{8}T\d{6}Z-[0-9a-f]{6}", first)
    assert request_event_id("run-a", "f1") == request_event_id("run-a", "f1")
    assert len({request_event_id("run-a", "f1"), request_event_id("run-b", "f1"), request_event_id("run-a", "f2")}) == 3
