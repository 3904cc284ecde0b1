"""A batch decided concurrently: bounded overlap of model calls, batch order, and in-batch twins kept as one."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bench.workload import Lesson, feedback_event, policy_for
from policy_generator.batch_decisions import BatchAbandoned, BatchDecider, Pending, _UnseenPolicies
from policy_generator.context import build_context
from policy_generator.decision import DecisionMaker
from policy_generator.decision_threads import DecisionThreads
from policy_generator.dedup import IN_BATCH_RECHECK_THRESHOLD, feedback_document
from policy_generator.evaluation import is_actionable_group, load_cases
from policy_generator.policy_index import PolicyIndex
from policy_generator.providers.offline import OfflineProvider
from policy_generator.providers.openai_provider import OpenAIProvider
from policyloop_common.events import (
    FeedbackContext,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyGenerationFailed,
    PolicySkipped,
)
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.polling import eventually

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
POLICY = {"category": "schema_mapping", "priority": "high",
          "rule": "Use systems.total_users for the number of users; there is no column users.",
          "correct_mapping": "users -> systems.total_users",
          "missing_knowledge": "The user count column is total_users.",
          "examples": ["How many systems have more than 500 users?"], "rationale": "Avoids a missing column."}


def feedback(comment: str, question: str = "How many systems have more than 500 users?",
             sql: str = "SELECT count(*) FROM systems WHERE users > 500") -> FeedbackSubmitted:
    return FeedbackSubmitted(feedback_id=str(uuid.uuid4()), user_id="u", conversation_id="c", message_id="m",
                             rating="negative", comment=comment,
                             context=FeedbackContext(question=question, sql_queries=[sql]),
                             submitted_at=datetime.now(UTC))


def case_feedback(case: dict) -> FeedbackSubmitted:
    return FeedbackSubmitted(feedback_id=case["case_id"], user_id="u", submitted_at=datetime.now(UTC),
                             **case["feedback"])


@pytest.fixture
def threads() -> Iterator[DecisionThreads]:
    pool = DecisionThreads(8)
    yield pool
    pool.close()


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def openai_maker(model: FakeOpenAI, index: PolicyIndex | None = None) -> DecisionMaker:
    provider = OpenAIProvider(api_key="k", base_url=model.base_url, timeout_seconds=10, max_attempts=1)
    return DecisionMaker(index=index or PolicyIndex(), provider=provider)


def rechecks(kind: str) -> float:
    return REGISTRY.get_sample_value("policyloop_generator_in_batch_rechecks_total", {"kind": kind}) or 0.0


def policy_of(event) -> str | None:
    """The policy a decision created or folded the feedback into."""
    if isinstance(event, PolicyGenerated):
        return event.policy.policy_id
    if isinstance(event, PolicySkipped):
        return event.duplicate_of
    return None


@pytest.mark.parametrize("cases_file", ["feedback-cases.jsonl", "feedback-cases-extra.jsonl"])
def test_a_whole_labelled_file_in_one_batch_gives_one_policy_per_lesson(cases_file: str,
                                                                        threads: DecisionThreads) -> None:
    cases = load_cases(DATA / cases_file)
    batch = [Pending(case_feedback(case)) for case in cases]
    decider = BatchDecider(DecisionMaker(index=PolicyIndex(), provider=OfflineProvider()), threads)
    decided = decider.decide(batch, threading.Event())
    assert [result.event.feedback_id for result in decided] == [case["case_id"] for case in cases]
    by_group: dict[str, set[str | None]] = {}
    for case, result in zip(cases, decided, strict=True):
        by_group.setdefault(case["group"], set()).add(policy_of(result.event))
    lessons = {group: policies for group, policies in by_group.items() if is_actionable_group(group)}
    # Every case of a lesson ends in one policy, and no two lessons share one.
    assert all(len(policies) == 1 and None not in policies for policies in lessons.values()), lessons
    assert len(set.union(*lessons.values())) == len(lessons)
    created = [result.event for result in decided if isinstance(result.event, PolicyGenerated)]
    assert len(created) == len(lessons)
    assert all(by_group[group] == {None} for group in by_group if not is_actionable_group(group))


def test_an_english_and_a_vietnamese_telling_in_one_batch_give_one_policy(threads: DecisionThreads) -> None:
    english = feedback("Wrong column name. The systems table has total_users, there is no users column.")
    vietnamese = feedback("Sai tên cột: số người dùng nằm ở cột total_users chứ không phải users.",
                          question="Hệ thống nào có nhiều người dùng nhất?",
                          sql="SELECT name FROM systems ORDER BY users DESC")
    before = rechecks("duplicate")
    first, second = BatchDecider(DecisionMaker(index=PolicyIndex(), provider=OfflineProvider()),
                                 threads).decide([Pending(english), Pending(vietnamese)], threading.Event())
    assert isinstance(first.event, PolicyGenerated)
    assert isinstance(second.event, PolicySkipped) and second.event.reason == "duplicate_policy"
    assert second.event.duplicate_of == first.event.policy.policy_id
    assert rechecks("duplicate") == before + 1


def test_different_lessons_in_one_batch_are_not_decided_twice(model: FakeOpenAI,
                                                              threads: DecisionThreads) -> None:
    budget = {**POLICY, "rule": "Values of budget_vnd are in million VND.", "correct_mapping": None,
              "missing_knowledge": "budget_vnd is stored in millions."}
    model.script(Reply.decision(verdict="NEW", policy=POLICY), Reply.decision(verdict="NEW", policy=budget))
    batch = [Pending(feedback("Wrong column: the table has total_users, not users")),
             Pending(feedback("Round percentages to one decimal place in the answer.", question="Share of cloud?",
                              sql="SELECT avg(x) FROM systems"))]
    decided = BatchDecider(openai_maker(model), threads).decide(batch, threading.Event())
    assert [type(result.event) for result in decided] == [PolicyGenerated, PolicyGenerated]
    assert len(model.requests) == 2


def test_a_twin_below_the_fast_path_is_put_to_the_model_again_with_the_batchs_policy(
        model: FakeOpenAI, threads: DecisionThreads) -> None:
    model.script(Reply.decision(verdict="NEW", policy=POLICY), Reply.decision(verdict="NEW", policy=POLICY),
                 Reply.decision(verdict="DUPLICATE", candidate=0, reasoning="same column lesson"))
    comment = "Wrong column: the table has total_users, not users"
    first, second = BatchDecider(openai_maker(model), threads).decide(
        [Pending(feedback(comment)), Pending(feedback(comment))], threading.Event())
    assert isinstance(first.event, PolicyGenerated)
    assert isinstance(second.event, PolicySkipped) and second.event.duplicate_of == first.event.policy.policy_id
    assert len(model.requests) == 3
    # The second question to the model lists the policy made earlier in the batch as a candidate.
    assert first.event.policy.policy_id in second.event.decision.candidate_policy_ids
    assert POLICY["rule"] in model.requests[2].body["messages"][1]["content"]
    assert second.event.decision.llm_calls == 2
    assert second.event.decision.usage.prompt_tokens == 240


def test_a_batch_submitted_before_another_was_finished_is_rechecked_against_its_policies(
        model: FakeOpenAI, threads: DecisionThreads) -> None:
    # The worker fetches the next batch while the calls of the one before are out: the second batch's first
    # decision cannot have seen the policy the first batch makes.
    model.script(Reply.decision(verdict="NEW", policy=POLICY), Reply.decision(verdict="NEW", policy=POLICY),
                 Reply.decision(verdict="DUPLICATE", candidate=0, reasoning="same column lesson"))
    comment = "Wrong column: the table has total_users, not users"
    decider = BatchDecider(openai_maker(model), threads)
    before = rechecks("duplicate")
    first_batch = decider.submit([Pending(feedback(comment))])
    second_batch = decider.submit([Pending(feedback(comment))])
    [first] = decider.finish(first_batch, threading.Event())
    [second] = decider.finish(second_batch, threading.Event())
    assert isinstance(first.event, PolicyGenerated)
    assert isinstance(second.event, PolicySkipped) and second.event.duplicate_of == first.event.policy.policy_id
    assert first.event.policy.policy_id in second.event.decision.candidate_policy_ids
    assert len(model.requests) == 3
    assert rechecks("duplicate") == before + 1


def test_the_recheck_compares_each_feedback_with_the_versions_made_before_it() -> None:
    def lesson_policy(number: int, policy_id: str):
        return policy_for(Lesson.number(number), feedback_id=f"f-{number}", policy_id=policy_id)

    def reached(unseen: _UnseenPolicies) -> list[int]:
        """Which of lessons 1-4 a feedback telling it again would be rechecked for."""
        return [number for number in (1, 2, 3, 4) if unseen.reaches(
            feedback_document(build_context(feedback_event(Lesson.number(number)))), IN_BATCH_RECHECK_THRESHOLD)]

    # An earlier batch made policy x (lesson 1); this batch's first decisions drafted a new version of x
    # (lesson 2) at position 0 and policy y (lesson 3) at position 1.
    unseen = _UnseenPolicies([lesson_policy(1, "x")], {0: lesson_policy(2, "x"), 1: lesson_policy(3, "y")})
    assert reached(unseen) == [1]
    unseen.made(0, lesson_policy(2, "x"))
    assert reached(unseen) == [2]  # the batch's version of x replaced the earlier batch's
    # A second look wrote another policy than the first draft: that one is compared from now on.
    unseen.made(1, lesson_policy(4, "y"))
    assert reached(unseen) == [2, 4]


def test_batches_are_finished_in_the_order_they_were_submitted(threads: DecisionThreads) -> None:
    decider = BatchDecider(DecisionMaker(index=PolicyIndex(), provider=OfflineProvider()), threads)
    first_batch = decider.submit([Pending(feedback("Wrong column: the table has total_users, not users"))])
    second_batch = decider.submit([Pending(feedback("Round percentages to one decimal place."))])
    with pytest.raises(ValueError, match="order"):
        decider.finish(second_batch, threading.Event())
    assert [type(result.event) for result in decider.finish(first_batch, threading.Event())] == [PolicyGenerated]


def test_a_near_verbatim_twin_is_folded_without_asking_the_model_again(model: FakeOpenAI,
                                                                       threads: DecisionThreads) -> None:
    model.script(Reply.decision(verdict="NEW", policy=POLICY), Reply.decision(verdict="NEW", policy=POLICY))
    first, second = BatchDecider(openai_maker(model), threads).decide(
        [Pending(feedback("Wrong column: the table has total_users, not users")),
         Pending(feedback(POLICY["rule"]))], threading.Event())
    assert isinstance(first.event, PolicyGenerated)
    assert isinstance(second.event, PolicySkipped) and second.event.duplicate_of == first.event.policy.policy_id
    assert len(model.requests) == 2  # a third request would have found no scripted reply and failed


def test_model_calls_overlap_up_to_the_number_of_threads_and_come_back_in_batch_order(model: FakeOpenAI) -> None:
    pool = DecisionThreads(3)
    try:
        # Earlier requests are answered later, so the answers arrive out of batch order.
        model.script(*[replace(Reply.decision(verdict="NOT_ACTIONABLE"), delay=0.5 - 0.04 * n) for n in range(10)])
        batch = [Pending(feedback(f"Wrong answer number {n}")) for n in range(10)]
        decided = BatchDecider(openai_maker(model), pool).decide(batch, threading.Event())
    finally:
        pool.close()
    assert [result.event.feedback_id for result in decided] == [item.feedback.feedback_id for item in batch]
    assert all(isinstance(result.event, PolicySkipped) for result in decided)
    assert len(model.requests) == 10
    assert 1 < model.most_in_flight <= 3


def test_a_batch_given_up_raises_and_starts_no_more_model_calls(model: FakeOpenAI) -> None:
    pool = DecisionThreads(1)
    try:
        model.script(*[replace(Reply.decision(verdict="NOT_ACTIONABLE"), delay=2.0) for _ in range(3)])
        abandon = threading.Event()

        def give_up_once_the_model_is_asked() -> None:
            eventually(lambda: len(model.requests) >= 1, timeout=30, interval=0.02, what="a model call")
            abandon.set()

        helper = threading.Thread(target=give_up_once_the_model_is_asked)
        helper.start()
        with pytest.raises(BatchAbandoned):
            BatchDecider(openai_maker(model), pool).decide([Pending(feedback(f"lesson {n}")) for n in range(3)],
                                                           abandon)
        helper.join()
        # The one thread runs in order: once this call has run, the two queued decisions were skipped or run.
        assert pool.submit(len, "done").result(timeout=30) == 4
    finally:
        pool.close()
    assert len(model.requests) == 1


def test_a_failed_second_look_fails_the_feedback_instead_of_making_a_second_policy(
        model: FakeOpenAI, threads: DecisionThreads) -> None:
    model.script(Reply.decision(verdict="NEW", policy=POLICY), Reply.decision(verdict="NEW", policy=POLICY),
                 Reply.error(503))
    comment = "Wrong column: the table has total_users, not users"
    first, second = BatchDecider(openai_maker(model), threads).decide(
        [Pending(feedback(comment)), Pending(feedback(comment))], threading.Event())
    assert isinstance(first.event, PolicyGenerated)
    assert isinstance(second.event, PolicyGenerationFailed)
