"""Candidates for a feedback: the most similar pending or active policies, best first; the duplicate bar."""

from __future__ import annotations

import importlib.util
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policy_generator.context import GenerationContext
from policy_generator.dedup import (
    DUPLICATE_THRESHOLD,
    FAST_PATH_THRESHOLD,
    error_messages,
    feedback_objects,
    feedback_text,
    find_duplicate,
    policy_text,
    rank_candidates,
)
from policy_generator.evaluation import load_cases, similarity_report
from policy_generator.providers.base import Candidate
from policy_generator.providers.offline import OfflineProvider
from policyloop_common.policy import GeneratorInfo, Policy, PolicyStatus

START = datetime(2026, 1, 1, tzinfo=UTC)
USERS_ERROR = '{"error": "column \\"users\\" does not exist"}'


def policy(policy_id: str, rule: str, *, mapping: str | None = None, category: str = "schema_mapping",
           status: str = "pending_review", examples: list[str] | None = None, age: int = 0) -> Policy:
    created = START + timedelta(minutes=age)
    return Policy(policy_id=policy_id, version=1, status=status, category=category, priority="high",
                  rule=rule, correct_mapping=mapping, missing_knowledge="", examples=examples or [],
                  rationale="", source_feedback_ids=[policy_id], support_count=1, created_at=created,
                  updated_at=created,
                  generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))


USERS = policy(
    "users", "Use the column systems.total_users, not users: there is no column users in systems.",
    mapping="users -> systems.total_users", examples=["How many systems have more than 500 users?"])
OPERATING = policy(
    "operating", "Use systems.status = 'operating', not 'active': 'active' is not a value of systems.status.",
    mapping="'active' -> systems.status = 'operating'", category="business_logic",
    examples=["How many active systems are there?"])
SECURITY = policy(
    "security", "Use systems.security_level >= 3, not systems.security_level > 3: the bound 3 itself is "
    "included.", category="business_logic", examples=["How many systems have security level 3 or above?"])
DISTINCT = policy(
    "distinct", "Count with count(DISTINCT systems.id), not count(*): integrations can hold several rows per "
    "system.", category="query_construction", examples=["How many systems are connected to NDXP?"])
LANGUAGE = policy(
    "language", "Answer in the language of the question: a question in Vietnamese gets an answer in "
    "Vietnamese.",
    category="response_format", examples=["Có bao nhiêu hệ thống đang vận hành?"])
POLICIES = [USERS, OPERATING, SECURITY, DISTINCT, LANGUAGE]


def context(comment: str, question: str = "How many systems have more than 500 users?", sql: str = "",
            results: list[str] | None = None) -> GenerationContext:
    return GenerationContext(question=question, comment=comment, sql_queries=[sql] if sql else [],
                             results=results or [])


def test_policy_text_is_rule_mapping_missing_knowledge_and_examples() -> None:
    text = policy_text(USERS.model_copy(update={"missing_knowledge": "The assistant queried users."}))
    assert text.split("\n") == [USERS.rule, "users -> systems.total_users", "The assistant queried users.",
                                "How many systems have more than 500 users?"]
    assert policy_text(SECURITY).split("\n") == [SECURITY.rule, SECURITY.examples[0]]


def test_feedback_text_is_comment_question_and_sql_in_that_order() -> None:
    text = feedback_text(context("total_users, not users", sql="SELECT count(*) FROM systems WHERE users > "
                                                               "500"))
    assert text.split("\n") == ["total_users, not users", "How many systems have more than 500 users?",
                                "SELECT count(*) FROM systems WHERE users > 500"]


def test_error_messages_are_read_from_result_rows() -> None:
    # Rows are JSON text; a row clipped to its bound is no longer JSON and is searched as it is.
    found = context("x", results=[USERS_ERROR, '{"count": 3}', '{"error": "syntax error at or near '
                                                               '\\"FORM\\""'
                                  ', "detail": "…"}', '{"error": "column s.users does not exist", "hint": '
                                                      '"Perh…'])
    assert error_messages(found) == ['column "users" does not exist', 'syntax error at or near "FORM"',
                                     '{"error": "column s.users does not exist", "hint": "Perh…']
    assert error_messages(context("x", results=['{"count": 0}'])) == []


def test_feedback_objects_are_the_comments_and_half_of_the_errors_not_the_sqls() -> None:
    objects = feedback_objects(context("The user count is stored in total_users.",
                                       sql="SELECT count(*) FROM systems s WHERE s.users > 500",
                                       results=[USERS_ERROR]))
    assert objects == {"total_users": 1.0, "users": 0.4}


def test_candidates_are_the_most_similar_pending_or_active_policies_best_first() -> None:
    retired = policy("retired-users", USERS.rule, mapping=USERS.correct_mapping, status="retired")
    rejected = policy("rejected-users", USERS.rule, mapping=USERS.correct_mapping, status="rejected")
    active = OPERATING.model_copy(update={"status": PolicyStatus.ACTIVE})
    feedback = context("Sai tên cột: số người dùng nằm ở cột total_users chứ không phải users.",
                       question="Hệ thống nào có nhiều người dùng nhất?",
                       sql="SELECT name FROM systems ORDER BY users DESC LIMIT 1", results=[USERS_ERROR])
    candidates = rank_candidates(feedback, [retired, rejected, active, *POLICIES[2:], USERS], k=3)
    assert [c.index for c in candidates] == [0, 1, 2]
    assert candidates[0].policy.policy_id == "users"
    assert candidates[0].similarity >= DUPLICATE_THRESHOLD > candidates[1].similarity
    assert [c.similarity for c in candidates] == sorted((c.similarity for c in candidates), reverse=True)
    assert {c.policy.policy_id for c in candidates}.isdisjoint({"retired-users", "rejected-users"})


@pytest.mark.parametrize(("comment", "question", "expected"), [
    ("The status for running systems is 'operating'; 'active' is not a value.", "Count the active systems",
     "operating"),
    ("Trạng thái 'đang hoạt động' tương ứng với status = 'operating'.", "Bao nhiêu hệ thống đang hoạt động?",
     "operating"),
    ("Level 4 or higher must include level 4: security_level >= 4.", "Systems of level 4 or higher?",
     "security"),
    ("Đếm trùng hệ thống vì có nhiều dòng trong integrations, dùng count(distinct system_id).",
     "Số hệ thống kết nối LGSP", "distinct"),
    ("Câu hỏi tiếng Việt thì trả lời tiếng Việt nhé.", "Hệ thống nào mới nhất?", "language"),
])
def test_a_paraphrase_in_either_language_ranks_its_lesson_first(comment: str, question: str,
                                                                 expected: str) -> None:
    candidates = rank_candidates(context(comment, question=question), POLICIES)
    assert candidates[0].policy.policy_id == expected
    assert candidates[0].similarity > 2 * candidates[1].similarity


def test_k_limits_the_candidates_and_no_policy_gives_none() -> None:
    assert len(rank_candidates(context("total_users, not users"), POLICIES, k=2)) == 2
    assert rank_candidates(context("total_users, not users"), []) == []


def test_equal_scores_go_to_the_older_policy() -> None:
    older = policy("older", USERS.rule, mapping=USERS.correct_mapping, age=0)
    newer = policy("newer", USERS.rule, mapping=USERS.correct_mapping, age=5)
    candidates = rank_candidates(context("total_users, not users"), [newer, older])
    assert candidates[0].similarity == candidates[1].similarity
    assert [c.policy.policy_id for c in candidates] == ["older", "newer"]


def test_find_duplicate_takes_the_best_candidate_at_the_threshold() -> None:
    best = Candidate(index=0, policy=USERS, similarity=0.62)
    other = Candidate(index=1, policy=OPERATING, similarity=0.2)
    assert find_duplicate([best, other]) is best
    assert find_duplicate([best, other], threshold=0.62) is best
    assert find_duplicate([best, other], threshold=0.63) is None
    assert find_duplicate([Candidate(index=0, policy=USERS, similarity=DUPLICATE_THRESHOLD - 0.01)]) is None
    assert find_duplicate([]) is None


def test_ranking_a_thousand_policies_takes_well_under_50_ms() -> None:
    rules = [p.model_copy(update={"policy_id": f"p{i}", "rule": f"{p.rule} (case {i})",
                                  "created_at": START + timedelta(seconds=i)})
             for i, p in enumerate(POLICIES * 200)]
    feedback = context("Sai tên cột: số người dùng nằm ở cột total_users chứ không phải users.",
                       sql="SELECT name FROM systems ORDER BY users DESC LIMIT 1", results=[USERS_ERROR])
    rank_candidates(feedback, rules)  # the first sight of a policy prepares it; the index then reuses it
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        candidates = rank_candidates(feedback, rules)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.05
    assert candidates[0].policy.rule.startswith(USERS.rule)


# The fast path folds a feedback into a policy with no provider check: it must stay clear of every other lesson.
FAST_PATH_MARGIN = 0.05
DATA = Path(__file__).resolve().parents[3] / "tests" / "data"


def labelled_cases() -> list[dict]:
    """Every labelled case: the sample, its paraphrase file and the paraphrase cases of the provider's tests."""
    spec = importlib.util.spec_from_file_location("offline_provider_cases",
                                                  Path(__file__).with_name("test_offline_provider.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    extra = [{**case, "group": "G1" if case["group"] == "H5" else case["group"]}  # H5 teaches what G1 does
             for case in load_cases(DATA / "feedback-cases-extra.jsonl")]
    return [*load_cases(DATA / "feedback-cases.jsonl"), *extra, *module.PARAPHRASES]


def test_no_feedback_reaches_the_fast_path_against_another_lessons_policy() -> None:
    report = similarity_report(labelled_cases(), OfflineProvider())
    assert report.cases == 124 and report.policies >= 95
    assert len(report.repeats) == report.policies and report.same_lesson and report.different_lesson
    highest = report.highest_different()
    assert highest is not None
    assert highest.similarity + FAST_PATH_MARGIN <= FAST_PATH_THRESHOLD, "\n".join(report.lines())
    # The fast path is for repeats: it still takes a good share of verbatim ones, and the provider the rest.
    taken = sum(pair.similarity >= FAST_PATH_THRESHOLD for pair in report.repeats)
    assert taken >= len(report.repeats) // 3, "\n".join(report.lines())
    assert DUPLICATE_THRESHOLD < FAST_PATH_THRESHOLD
