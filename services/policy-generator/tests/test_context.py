"""The bounded context a provider sees: each part clipped to its own bound, the whole as labelled text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from policy_generator.context import (
    MAX_ANSWER_CHARS,
    MAX_COMMENT_CHARS,
    MAX_QUERIES,
    MAX_QUERY_CHARS,
    MAX_QUESTION_CHARS,
    MAX_RENDERED_CHARS,
    MAX_RESULT_CHARS,
    MAX_RESULTS,
    MAX_STEP_CHARS,
    MAX_STEPS,
    GenerationContext,
    build_context,
)
from policyloop_common.events import FeedbackContext, FeedbackSubmitted

REPORT_COMMENT = "Wrong column: the table has total_users, not users"


def feedback(comment: str | None = REPORT_COMMENT, **context) -> FeedbackSubmitted:
    context.setdefault("question", "How many systems have more than 500 users?")
    return FeedbackSubmitted(feedback_id="f-1", user_id="u-1", conversation_id="c-1", message_id="m-1",
                             rating="negative", comment=comment, context=FeedbackContext(**context),
                             submitted_at=datetime.now(UTC))


def test_the_report_example_keeps_every_part() -> None:
    context = build_context(feedback(
        sql_queries=["SELECT count(*) FROM systems WHERE users > 500"],
        results=[{"error": 'column "users" does not exist'}], steps=["list tables", "run query"],
        answer="There are 12 systems.", model="gpt-4o-mini"))
    assert context.comment == "Wrong column: the table has total_users, not users"
    assert context.question == "How many systems have more than 500 users?"
    assert context.sql_queries == ["SELECT count(*) FROM systems WHERE users > 500"]
    assert context.steps == ["list tables", "run query"]
    assert context.answer == "There are 12 systems."
    assert context.assistant_model == "gpt-4o-mini"
    # Results become JSON text, so the quotes of an error message arrive escaped and can be parsed back.
    assert json.loads(context.results[0]) == {"error": 'column "users" does not exist'}


def test_every_part_is_clipped_to_its_bound() -> None:
    context = build_context(feedback(
        comment="c" * 4000, question="q" * 4000, answer="a" * 20000,
        steps=["s" * 5000] * 50, sql_queries=["SELECT " + "x" * 4990] * 50,
        results=[{"value": "r" * 4000}] * 50))
    assert len(context.comment) == MAX_COMMENT_CHARS and context.comment.endswith("…")
    assert len(context.question) == MAX_QUESTION_CHARS
    assert len(context.answer) == MAX_ANSWER_CHARS
    assert len(context.steps) == MAX_STEPS and all(len(step) == MAX_STEP_CHARS for step in context.steps)
    assert len(context.sql_queries) == MAX_QUERIES
    assert all(len(query) == MAX_QUERY_CHARS for query in context.sql_queries)
    assert len(context.results) == MAX_RESULTS
    assert all(len(result) == MAX_RESULT_CHARS for result in context.results)
    assert len(context.render()) <= MAX_RENDERED_CHARS


def test_text_within_bounds_is_untouched_apart_from_whitespace() -> None:
    context = build_context(feedback(comment="  Sai tên cột:\n  số người dùng   nằm ở cột total_users.  ",
                                     question="Hệ thống nào có nhiều người dùng nhất?"))
    assert context.comment == "Sai tên cột: số người dùng nằm ở cột total_users."
    assert context.question == "Hệ thống nào có nhiều người dùng nhất?"


def test_vietnamese_results_stay_readable() -> None:
    context = build_context(feedback(results=[{"tỉnh": "Hà Nội", "số_hệ_thống": 64}]))
    assert context.results == ['{"tỉnh": "Hà Nội", "số_hệ_thống": 64}']


def test_a_missing_comment_becomes_empty_text() -> None:
    assert build_context(feedback(comment=None)).comment == ""


def test_render_labels_the_parts_it_has_and_leaves_out_the_others() -> None:
    sql = "SELECT count(*) FROM systems WHERE users > 500"
    rendered = build_context(feedback(sql_queries=[sql])).render()
    assert rendered.startswith("Question: How many systems have more than 500 users?\n\nUser feedback: Wrong")
    assert "SQL executed:\n- SELECT count(*) FROM systems WHERE users > 500" in rendered
    assert "Assistant's answer" not in rendered
    assert "Steps taken" not in rendered and "Results" not in rendered


def test_render_clips_the_whole_text() -> None:
    context = GenerationContext(question="q", comment="c", answer="a" * 9000)
    rendered = context.render()
    assert len(rendered) == MAX_RENDERED_CHARS and rendered.endswith("…")
