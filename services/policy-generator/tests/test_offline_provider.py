"""The offline provider writes specific policies from the feedback itself, in English and Vietnamese."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_generator.context import GenerationContext
from policy_generator.evaluation import evaluate_cases, load_cases
from policy_generator.providers.base import DecisionRequest, Verdict
from policy_generator.providers.offline import OfflineProvider

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"


def decide(comment: str, question: str = "How many systems have more than 500 users?", sql: str = "",
           results: list[str] | None = None):
    context = GenerationContext(question=question, comment=comment, sql_queries=[sql] if sql else [],
                                results=results or [])
    return OfflineProvider().decide(DecisionRequest(context=context))


def test_report_example_names_the_right_column_and_the_mapping() -> None:
    decision = decide("Wrong column: the table has total_users, not users",
                      sql="SELECT count(*) FROM systems WHERE users > 500",
                      results=['{"error": "column \\"users\\" does not exist"}'])
    assert decision.verdict is Verdict.NEW
    policy = decision.policy
    assert policy.category.value == "schema_mapping"
    assert policy.priority.value == "high"
    assert "total_users" in policy.rule and "users" in policy.rule
    assert policy.correct_mapping == "users -> systems.total_users"
    assert policy.examples == ["How many systems have more than 500 users?"]
    assert decision.llm_calls == 0


def test_vietnamese_comment_gives_a_policy_with_its_objects() -> None:
    decision = decide("Trạng thái 'đang hoạt động' tương ứng với status = 'operating', không có giá trị 'active'.",
                      question="Bao nhiêu hệ thống đang hoạt động?",
                      sql="SELECT count(*) FROM systems WHERE status = 'active'")
    assert decision.verdict is Verdict.NEW
    assert decision.policy.category.value == "business_logic"
    assert "operating" in decision.policy.rule
    assert decision.policy.correct_mapping == "'active' -> status = 'operating'"


@pytest.mark.parametrize("comment", ["bad answer", "không đúng", "Wrong!", "sai rồi", "useless", "This is wrong."])
def test_comments_that_teach_nothing_are_not_actionable(comment: str) -> None:
    decision = decide(comment)
    assert decision.verdict is Verdict.NOT_ACTIONABLE
    assert decision.policy is None
    # A failed query in the context says what went wrong, not what the fix is.
    failed = decide(comment, sql="SELECT count(*) FROM systems WHERE users > 500",
                    results=['{"error": "column \\"users\\" does not exist"}'])
    assert failed.verdict is Verdict.NOT_ACTIONABLE


@pytest.mark.parametrize(("comment", "category"), [
    ("Please answer in English, the question was in English.", "response_format"),
    ("830.5 is in millions of VND; the answer reported it as VND.", "data_interpretation"),
    ("Count DISTINCT system_id, a system has several integration rows.", "query_construction"),
    ("Systems of level 3 or above include level 3: security_level >= 3.", "business_logic"),
])
def test_category_follows_the_lesson(comment: str, category: str) -> None:
    decision = decide(comment)
    assert decision.verdict is Verdict.NEW
    assert decision.policy.category.value == category


def test_labelled_sample_ends_as_one_policy_per_lesson() -> None:
    report = evaluate_cases(load_cases(DATA / "feedback-cases.jsonl"), OfflineProvider())
    assert report.pairwise_precision >= 0.9
    assert report.pairwise_recall >= 0.9
    assert report.category_accuracy >= 0.8
    assert report.not_actionable_leaks == 0
    assert report.policies == report.actionable_groups


def test_unseen_paraphrases_generalize() -> None:
    """Cases written apart from the sample, to keep the heuristics honest."""
    report = evaluate_cases(load_cases(DATA / "feedback-cases-extra.jsonl"), OfflineProvider())
    assert report.pairwise_precision >= 0.9
    assert report.pairwise_recall >= 0.75
    assert report.category_accuracy >= 0.6
    assert report.not_actionable_leaks == 0
