"""The generator's transactional loop on a real broker: one decision per feedback, poison to the DLQ, restarts,
concurrent decisions in record order, and a stop in the middle of a batch."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from policy_generator.decision import DecisionMaker
from policy_generator.policy_feed import PolicyFeed
from policy_generator.policy_index import PolicyIndex
from policy_generator.providers.base import PolicyProvider
from policy_generator.providers.offline import OfflineProvider
from policy_generator.worker import GeneratorWorker
from policyloop_common.cloudevents import encode
from policyloop_common.events import (
    DecisionDetails,
    DecisionKind,
    FeedbackContext,
    FeedbackReanalysisRequested,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyReviewed,
    PolicySkipped,
    Rating,
    ReviewAction,
)
from policyloop_common.kafka.dead_letters import DLQ_HEADERS, OFFSET_HEADER, REASON_HEADER, dead_letter_for
from policyloop_common.kafka.replay import replay_dead_letters
from policyloop_common.kafka.topics import all_topics, ensure_topics
from policyloop_common.policy import GeneratorInfo, Policy, PolicyStatus
from tests.support.kafka_reader import headers_of, read_events, read_topic
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

PROVINCE_POLICY = {"category": "schema_mapping", "priority": "high",
                   "rule": "The location of a system is the province of its agency: agencies.province.",
                   "correct_mapping": "location -> agencies.province",
                   "missing_knowledge": "Systems have no location column; their agency has a province.",
                   "examples": ["Systems in Hue?"], "rationale": "The model looked for a location column."}


class Topics:
    """Fresh topic names for one test."""

    def __init__(self, suffix: str) -> None:
        self.feedback = f"feedback-{suffix}"
        self.decisions = f"decisions-{suffix}"
        self.reviews = f"reviews-{suffix}"

    def all(self) -> list[str]:
        """Every topic with its dead-letter topic."""
        return all_topics([self.feedback, self.decisions, self.reviews])


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: str) -> Topics:
    names = Topics(unique_name)
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, names.all(), partitions=3)
    return names


@pytest.fixture
def one_partition(kafka_bootstrap: str, unique_name: str) -> Topics:
    """Topics of one partition: records published before a worker starts reach it as one batch, and the order of
    its decisions is the order of the topic."""
    names = Topics(f"one-{unique_name}")
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, names.all(), partitions=1)
    return names


class RunningGenerator:
    """A feed and a worker in this process, as the service's lifespan would run them."""

    def __init__(self, bootstrap: str, topics: Topics, group: str, provider: PolicyProvider | None = None,
                 transactional_id: str | None = None, **worker_options) -> None:
        kafka = {"bootstrap.servers": bootstrap}
        self.index = PolicyIndex()
        self.feed = PolicyFeed(kafka, [topics.decisions, topics.reviews], self.index)
        self.feed.start()
        assert self.feed.wait_caught_up(60)
        decider = DecisionMaker(index=self.index, provider=provider or OfflineProvider())
        options = {"batch_size": 20, "poll_timeout": 0.2, **worker_options}
        self.worker = GeneratorWorker(kafka, group_id=group, transactional_id=transactional_id or f"tx-{group}",
                                      feedback_topic=topics.feedback, decisions_topic=topics.decisions,
                                      decision_maker=decider, **options)
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self.feed.stop()


@pytest.fixture
def generator_factory(kafka_bootstrap: str, topics: Topics, unique_name: str) -> Iterator:
    started: list[RunningGenerator] = []

    def start() -> RunningGenerator:
        generator = RunningGenerator(kafka_bootstrap, topics, group=f"gen-{unique_name}")
        started.append(generator)
        return generator

    yield start
    for generator in started:
        if generator.worker.alive:
            generator.stop()


def feedback(comment: str, question: str, sql: str = "", rating: Rating = Rating.NEGATIVE,
             feedback_id: str | None = None) -> FeedbackSubmitted:
    return FeedbackSubmitted(
        feedback_id=feedback_id or str(uuid.uuid4()), user_id="u1", conversation_id="c", message_id="m",
        rating=rating, comment=comment,
        context=FeedbackContext(question=question, sql_queries=[sql] if sql else []),
        submitted_at=datetime.now(UTC))


def publish(bootstrap: str, topic: str, *events: FeedbackSubmitted | FeedbackReanalysisRequested,
            raw: list[bytes] | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for event in events:
        outgoing = encode(event, source="/test", topic=topic)
        producer.produce(topic, key=outgoing.key, value=outgoing.value, headers=outgoing.headers)
    for value in raw or []:
        producer.produce(topic, key=b"poison", value=value, headers=[("ce_specversion", b"1.0")])
    assert producer.flush(30) == 0


def decisions_for(bootstrap: str, topic: str, count: int) -> list:
    # An empty list is a value to ``eventually``: the probe answers False until there are enough.
    return eventually(lambda: len(events := read_events(bootstrap, topic, settle_seconds=0.5)) >= count and events,
                      timeout=60, what=f"{count} decisions")


def test_each_feedback_gets_exactly_one_decision(kafka_bootstrap: str, topics: Topics, generator_factory) -> None:
    generator_factory()
    first = feedback("Wrong column: the table has total_users, not users",
                     "How many systems have more than 500 users?", "SELECT count(*) FROM systems WHERE users > 500")
    twin = feedback("Again it used users. The user count column is total_users.",
                    "List systems with over 2000 users", "SELECT name FROM systems WHERE users > 2000")
    positive = feedback("", "How many agencies?", rating=Rating.POSITIVE)
    publish(kafka_bootstrap, topics.feedback, first)
    decisions_for(kafka_bootstrap, topics.decisions, 1)
    # A redelivered copy of the first feedback (same feedback id) must not be decided again.
    publish(kafka_bootstrap, topics.feedback, twin, positive, first)
    events = decisions_for(kafka_bootstrap, topics.decisions, 3)
    by_feedback = {}
    for event in events:
        by_feedback.setdefault(event.payload.feedback_id, []).append(event.payload)
    assert {k: len(v) for k, v in by_feedback.items()} == {first.feedback_id: 1, twin.feedback_id: 1,
                                                           positive.feedback_id: 1}
    generated = by_feedback[first.feedback_id][0]
    assert isinstance(generated, PolicyGenerated)
    assert "total_users" in generated.policy.rule
    skipped = by_feedback[twin.feedback_id][0]
    assert isinstance(skipped, PolicySkipped) and skipped.reason == "duplicate_policy"
    assert skipped.duplicate_of == generated.policy.policy_id
    assert by_feedback[positive.feedback_id][0].reason == "positive_feedback"


def test_poison_records_go_to_the_dead_letter_topic(kafka_bootstrap: str, topics: Topics,
                                                     generator_factory) -> None:
    generator_factory()
    good = feedback("The budget_vnd column is in million VND", "Total budget of the ministry?")
    publish(kafka_bootstrap, topics.feedback, raw=[b"not json at all"])
    publish(kafka_bootstrap, topics.feedback, good)
    decisions_for(kafka_bootstrap, topics.decisions, 1)
    dead = eventually(lambda: read_topic(kafka_bootstrap, f"{topics.feedback}.dlq", settle_seconds=0.5),
                      what="dead letter")
    assert len(dead) == 1
    assert dead[0].value() == b"not json at all"
    assert headers_of(dead[0])[REASON_HEADER] == "not_cloudevent"
    assert headers_of(dead[0])[OFFSET_HEADER].isdigit()


def test_the_feed_passes_over_the_decisions_this_process_applied_at_their_commit(kafka_bootstrap: str,
                                                                                   topics: Topics) -> None:
    # The generator applied its decision when its transaction committed; a reviewer approved the policy and the
    # feed read the review (another topic) before it read the decision back. Applied again, the decision would
    # put the policy back to pending review.
    index = PolicyIndex()
    now = datetime.now(UTC)
    policy = Policy(**PROVINCE_POLICY, policy_id="p-province", version=1, status=PolicyStatus.PENDING_REVIEW,
                    source_feedback_ids=["f-1"], support_count=1, created_at=now, updated_at=now,
                    generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))
    details = DecisionDetails(kind=DecisionKind.NEW, provider="offline", model="offline-rules-v1")
    decision = PolicyGenerated(feedback_id="f-1", policy=policy, decision=details)
    ours = encode(decision, source="/test", topic=topics.decisions)
    index.stage(decision, ours.event_id)
    index.commit_staged()
    index.apply(PolicyReviewed(policy_id="p-province", action=ReviewAction.APPROVE, reviewer="admin",
                               reviewed_at=now))
    # Another instance's decision for a second policy: read and applied as always.
    other_policy = policy.model_copy(update={"policy_id": "p-other", "source_feedback_ids": ["f-2"]})
    theirs = encode(PolicyGenerated(feedback_id="f-2", policy=other_policy, decision=details), source="/test",
                    topic=topics.decisions)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for event in (ours, theirs):
        producer.produce(event.topic, key=event.key, value=event.value, headers=event.headers, partition=0)
    assert producer.flush(10) == 0

    feed = PolicyFeed({"bootstrap.servers": kafka_bootstrap}, [topics.decisions, topics.reviews], index)
    feed.start()
    try:
        assert feed.wait_caught_up(60)
    finally:
        feed.stop()
    assert feed.events_applied == 2
    assert index.get("p-province").status is PolicyStatus.ACTIVE
    assert index.get("p-other").status is PolicyStatus.PENDING_REVIEW
    # Passed over once only: the same event read again (a replay, a restarted feed) is applied.
    assert not index.applied_at_commit(ours.event_id)


def test_a_restarted_generator_remembers_policies_from_the_topic(kafka_bootstrap: str, topics: Topics,
                                                                 generator_factory) -> None:
    first = generator_factory()
    original = feedback("Active systems are the ones with status 'operating'; there is no status 'active'.",
                        "How many active systems are there?", "SELECT count(*) FROM systems WHERE status = 'active'")
    publish(kafka_bootstrap, topics.feedback, original)
    decisions_for(kafka_bootstrap, topics.decisions, 1)
    first.stop()
    restarted = generator_factory()
    assert len(restarted.index) == 1
    repeat = feedback("There is no 'active' status: active systems have status 'operating'.",
                      "Count the active systems", "SELECT count(*) FROM systems WHERE status = 'active'")
    publish(kafka_bootstrap, topics.feedback, repeat)
    events = decisions_for(kafka_bootstrap, topics.decisions, 2)
    decision = next(e.payload for e in events if e.payload.feedback_id == repeat.feedback_id)
    assert isinstance(decision, PolicySkipped)
    assert decision.reason == "duplicate_policy"


def test_a_model_that_keeps_failing_gives_generation_failed_and_a_replayable_dead_letter(
        kafka_bootstrap: str, topics: Topics, unique_name: str) -> None:
    from policy_generator.providers.openai_provider import OpenAIProvider
    from tests.support.fake_openai import FakeOpenAI, Reply

    with FakeOpenAI() as model:
        model.script(*[Reply.error(503, **{"Retry-After": "0"}) for _ in range(3)])
        kafka = {"bootstrap.servers": kafka_bootstrap}
        provider = OpenAIProvider(api_key="k", base_url=model.base_url, max_attempts=3, sleep=lambda _: None)
        worker = GeneratorWorker(kafka, group_id=f"gen-{unique_name}", transactional_id=f"tx-fail-{unique_name}",
                                 feedback_topic=topics.feedback, decisions_topic=topics.decisions,
                                 decision_maker=DecisionMaker(index=PolicyIndex(), provider=provider),
                                 batch_size=10, poll_timeout=0.2)
        worker.start()
        try:
            lost = feedback("Use agencies.province for the location of a system", "Systems in Hue?")
            publish(kafka_bootstrap, topics.feedback, lost)
            failed = decisions_for(kafka_bootstrap, topics.decisions, 1)[0].payload
            assert failed.ce_type == "PolicyGenerationFailed"
            assert failed.feedback_id == lost.feedback_id and failed.attempts == 3
            assert len(model.requests) == 3
            dead = read_topic(kafka_bootstrap, f"{topics.feedback}.dlq")
            assert len(dead) == 1 and headers_of(dead[0])[REASON_HEADER] == "generation_failed"
            assert headers_of(dead[0])["ce_type"] == "FeedbackSubmitted"  # the original event, ready to replay

            # The model is back: replaying the dead letter gives the feedback the decision it never got.
            model.script(Reply.decision(verdict="NEW", policy=PROVINCE_POLICY))
            dlq = f"{topics.feedback}.dlq"
            preview = replay_dead_letters(kafka, dlq, reason="generation_failed", dry_run=True)
            assert preview.replayed == {topics.feedback: 1}
            report = replay_dead_letters(kafka, dlq, reason="generation_failed")
            assert report.replayed == {topics.feedback: 1}
            second = decisions_for(kafka_bootstrap, topics.decisions, 2)[1].payload
        finally:
            worker.stop()
    assert second.ce_type == "PolicyGenerated" and second.feedback_id == lost.feedback_id
    assert second.policy.correct_mapping == PROVINCE_POLICY["correct_mapping"]
    # Same key, same partition: the replayed record follows the original, without the dead-letter headers.
    delivered = read_topic(kafka_bootstrap, topics.feedback)
    assert [m.key() for m in delivered] == [lost.feedback_id.encode()] * 2
    assert not set(headers_of(delivered[-1])) & DLQ_HEADERS
    # The group remembers the replay: running it again sends nothing twice.
    assert replay_dead_letters(kafka, dlq, reason="generation_failed").replayed == {}


def test_replay_refuses_a_topic_that_is_not_a_dead_letter_topic(kafka_bootstrap: str, topics: Topics) -> None:
    with pytest.raises(ValueError, match="not a dead-letter topic"):
        replay_dead_letters({"bootstrap.servers": kafka_bootstrap}, topics.feedback)
    with pytest.raises(ValueError, match="does not exist"):
        replay_dead_letters({"bootstrap.servers": kafka_bootstrap}, f"missing-{uuid.uuid4().hex}.dlq", timeout=5)


def test_replay_leaves_other_reasons_and_stops_at_the_end_it_saw(kafka_bootstrap: str, topics: Topics) -> None:
    kafka = {"bootstrap.servers": kafka_bootstrap}
    publish(kafka_bootstrap, topics.feedback, raw=[b"not json", b"[]"])
    poison = read_topic(kafka_bootstrap, topics.feedback)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for message, reason in zip(poison, ("invalid_json", "generation_failed"), strict=True):
        letter = dead_letter_for(message, reason=reason, error="test")
        producer.produce(letter.topic, key=letter.key, value=letter.value, headers=letter.headers)
    assert producer.flush(30) == 0
    report = replay_dead_letters(kafka, f"{topics.feedback}.dlq", reason="generation_failed")
    assert report.replayed == {topics.feedback: 1} and report.skipped == {"invalid_json": 1}
    assert len(read_topic(kafka_bootstrap, topics.feedback)) == 3


def openai_provider(model) -> PolicyProvider:
    from policy_generator.providers.openai_provider import OpenAIProvider

    return OpenAIProvider(api_key="k", base_url=model.base_url, timeout_seconds=30, max_attempts=1)


def answer(reasoning: str, delay: float = 0.0):
    """A scripted NOT_ACTIONABLE answer: it makes no policy, so no decision waits on another."""
    from tests.support.fake_openai import Reply

    return replace(Reply.decision(verdict="NOT_ACTIONABLE", reasoning=reasoning), delay=delay)


def committed_offsets(bootstrap: str, group: str, topic: str) -> list[int]:
    """The offsets ``group`` has committed on each partition of ``topic`` (negative where none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return [tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)]
    finally:
        consumer.close()


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_two_tellings_of_one_lesson_in_one_batch_give_one_policy(kafka_bootstrap: str, one_partition: Topics,
                                                                 unique_name: str) -> None:
    english = feedback("Wrong column name. The systems table has total_users, there is no users column.",
                       "How many systems have more than 500 users?", "SELECT count(*) FROM systems WHERE users > 500")
    vietnamese = feedback("Sai tên cột: số người dùng nằm ở cột total_users chứ không phải users.",
                          "Hệ thống nào có nhiều người dùng nhất?", "SELECT name FROM systems ORDER BY users DESC")
    # Both are in the topic before the worker starts, so its first batch holds both and decides them at once.
    publish(kafka_bootstrap, one_partition.feedback, english, vietnamese)
    rechecked = REGISTRY.get_sample_value("policyloop_generator_in_batch_rechecks_total", {"kind": "duplicate"}) or 0
    generator = RunningGenerator(kafka_bootstrap, one_partition, group=f"gen-{unique_name}", poll_timeout=2.0)
    try:
        first, second = [event.payload for event in decisions_for(kafka_bootstrap, one_partition.decisions, 2)]
    finally:
        generator.stop()
    assert isinstance(first, PolicyGenerated) and first.feedback_id == english.feedback_id
    assert isinstance(second, PolicySkipped) and second.feedback_id == vietnamese.feedback_id
    assert second.reason == "duplicate_policy" and second.duplicate_of == first.policy.policy_id
    # The twin was caught by the second look within the batch, not by a later batch's index.
    assert REGISTRY.get_sample_value("policyloop_generator_in_batch_rechecks_total",
                                     {"kind": "duplicate"}) == rechecked + 1


def test_a_feedback_delivered_twice_in_one_batch_is_decided_once(kafka_bootstrap: str, one_partition: Topics,
                                                                 unique_name: str) -> None:
    lesson = feedback("The budget_vnd column is in million VND", "Total budget of the ministry?")
    later = feedback("", "How many agencies?", rating=Rating.POSITIVE)
    # A producer retry can write the same feedback twice; both copies arrive in one batch, decided concurrently.
    publish(kafka_bootstrap, one_partition.feedback, lesson, lesson, later)
    generator = RunningGenerator(kafka_bootstrap, one_partition, group=f"gen-{unique_name}", poll_timeout=2.0)
    try:
        events = decisions_for(kafka_bootstrap, one_partition.decisions, 2)
        assert committed_offsets(kafka_bootstrap, f"gen-{unique_name}", one_partition.feedback) == [3]
    finally:
        generator.stop()
    assert [event.payload.feedback_id for event in read_events(kafka_bootstrap, one_partition.decisions)] == [
        lesson.feedback_id, later.feedback_id]
    assert isinstance(events[0].payload, PolicyGenerated)


def test_decisions_of_a_batch_overlap_and_are_produced_in_record_order(kafka_bootstrap: str,
                                                                       one_partition: Topics,
                                                                       unique_name: str) -> None:
    from tests.support.fake_openai import FakeOpenAI

    count, in_flight = 12, 4
    lessons = [feedback(f"Wrong answer number {n}", f"Question {n}?") for n in range(count)]
    publish(kafka_bootstrap, one_partition.feedback, *lessons)
    with FakeOpenAI() as model:
        # The earlier a request, the later its answer: decisions finish out of record order.
        model.script(*[answer(f"answer {n}", delay=0.6 - 0.04 * n) for n in range(count)])
        generator = RunningGenerator(kafka_bootstrap, one_partition, group=f"gen-{unique_name}",
                                     provider=openai_provider(model), max_in_flight=in_flight, poll_timeout=2.0)
        try:
            events = decisions_for(kafka_bootstrap, one_partition.decisions, count)
        finally:
            generator.stop()
        assert len(model.requests) == count
        assert 1 < model.most_in_flight <= in_flight
    assert [event.payload.feedback_id for event in events] == [item.feedback_id for item in lessons]
    assert all(isinstance(event.payload, PolicySkipped) for event in events)


def test_the_next_batch_is_fetched_while_the_calls_of_the_one_before_are_out(kafka_bootstrap: str,
                                                                            one_partition: Topics,
                                                                            unique_name: str) -> None:
    from tests.support.fake_openai import FakeOpenAI

    count, batch_size, in_flight = 12, 2, 6
    group = f"gen-{unique_name}"
    lessons = [feedback(f"Wrong answer number {n}", f"Question {n}?") for n in range(count)]
    publish(kafka_bootstrap, one_partition.feedback, *lessons)
    with FakeOpenAI() as model:
        # Answers out of record order, so later batches are decided before earlier ones.
        model.script(*[answer(f"answer {n}", delay=0.6 - 0.04 * n) for n in range(count)])
        generator = RunningGenerator(kafka_bootstrap, one_partition, group=group, provider=openai_provider(model),
                                     batch_size=batch_size, max_in_flight=in_flight, poll_timeout=2.0)
        try:
            events = decisions_for(kafka_bootstrap, one_partition.decisions, count)
            assert eventually(lambda: committed_offsets(kafka_bootstrap, group, one_partition.feedback) == [count],
                              what="the offsets committed")
        finally:
            generator.stop()
        assert len(model.requests) == count
        # More calls were out at once than one batch holds: the batches overlapped.
        assert batch_size < model.most_in_flight <= in_flight
    assert [event.payload.feedback_id for event in events] == [item.feedback_id for item in lessons]


def test_batches_decided_within_the_commit_interval_share_a_transaction(kafka_bootstrap: str,
                                                                         one_partition: Topics,
                                                                         unique_name: str) -> None:
    from tests.support.fake_openai import FakeOpenAI

    group = f"gen-{unique_name}"
    lessons = [feedback(f"Wrong answer number {n}", f"Question {n}?") for n in range(10)]
    publish(kafka_bootstrap, one_partition.feedback, *lessons)
    committed = REGISTRY.get_sample_value("policyloop_generator_transactions_total", {"outcome": "committed"}) or 0
    with FakeOpenAI() as model:
        # One record per batch, all out at once, decided one after the other 0.2 s apart; transactions at least
        # 5 s apart.
        model.script(*[answer(f"answer {n}", delay=0.2 * (n + 1)) for n in range(len(lessons))])
        generator = RunningGenerator(kafka_bootstrap, one_partition, group=group, provider=openai_provider(model),
                                     batch_size=1, max_in_flight=len(lessons), commit_interval=5.0)
        try:
            events = decisions_for(kafka_bootstrap, one_partition.decisions, len(lessons))
            assert eventually(lambda: committed_offsets(kafka_bootstrap, group, one_partition.feedback) == [10],
                              what="the offsets committed")
        finally:
            generator.stop()
    assert [event.payload.feedback_id for event in events] == [item.feedback_id for item in lessons]
    transactions = REGISTRY.get_sample_value("policyloop_generator_transactions_total",
                                             {"outcome": "committed"}) - committed
    # The first decided batch went at once, the others together once the interval had passed: without the
    # interval each batch, decided 0.2 s after the one before, would be a transaction of its own.
    assert 1 <= transactions <= 3


def test_a_twin_in_the_next_batch_fetched_while_the_first_is_out_gives_one_policy(kafka_bootstrap: str,
                                                                                  one_partition: Topics,
                                                                                  unique_name: str) -> None:
    from tests.support.fake_openai import FakeOpenAI, Reply

    comment = "Wrong column: the table has total_users, not users"
    first, second = feedback(comment, "How many systems have more than 500 users?"), feedback(
        comment, "List systems with over 2000 users")
    publish(kafka_bootstrap, one_partition.feedback, first, second)
    policy = {**PROVINCE_POLICY, "rule": "Use systems.total_users for the number of users; there is no users.",
              "correct_mapping": "users -> systems.total_users"}
    rechecked = REGISTRY.get_sample_value("policyloop_generator_in_batch_rechecks_total", {"kind": "duplicate"}) or 0
    with FakeOpenAI() as model:
        model.script(replace(Reply.decision(verdict="NEW", policy=policy), delay=0.8),
                     Reply.decision(verdict="NEW", policy=policy),
                     Reply.decision(verdict="DUPLICATE", candidate=0, reasoning="same lesson"))
        # One record per batch: the second is its own batch, decided while the first one's call is out.
        generator = RunningGenerator(kafka_bootstrap, one_partition, group=f"gen-{unique_name}",
                                     provider=openai_provider(model), batch_size=1, max_in_flight=4)
        try:
            made, folded = [event.payload for event in decisions_for(kafka_bootstrap, one_partition.decisions, 2)]
        finally:
            generator.stop()
        assert model.most_in_flight == 2
    assert isinstance(made, PolicyGenerated) and made.feedback_id == first.feedback_id
    assert isinstance(folded, PolicySkipped) and folded.duplicate_of == made.policy.policy_id
    assert REGISTRY.get_sample_value("policyloop_generator_in_batch_rechecks_total",
                                     {"kind": "duplicate"}) == rechecked + 1


def test_batches_in_hand_when_partitions_move_are_decided_once(kafka_bootstrap: str, topics: Topics,
                                                               unique_name: str, caplog) -> None:
    from tests.support.fake_openai import FakeOpenAI

    caplog.set_level(logging.INFO, logger="policy_generator.worker")
    group = f"gen-{unique_name}"
    lessons = [feedback(f"Wrong answer number {n}", f"Question {n}?") for n in range(24)]
    publish(kafka_bootstrap, topics.feedback, *lessons)
    with FakeOpenAI() as model:
        # More answers than lessons: a feedback decided twice would show twice in the topic, not fail a call.
        model.script(*[answer("decided", delay=6.0) for _ in range(2 * len(lessons))])
        first = RunningGenerator(kafka_bootstrap, topics, group=group, transactional_id=f"tx-a-{unique_name}",
                                 provider=openai_provider(model), batch_size=4, max_in_flight=len(lessons))
        second = None
        try:
            # Every record of every partition is in the first worker's hands, its calls out, when a second member
            # joins and partitions move: what it holds of them must be committed before they go.
            eventually(lambda: len(model.requests) == len(lessons), what="every call out")
            second = RunningGenerator(kafka_bootstrap, topics, group=group, transactional_id=f"tx-b-{unique_name}",
                                      provider=openai_provider(model), batch_size=4, max_in_flight=len(lessons))
            decisions_for(kafka_bootstrap, topics.decisions, len(lessons))
            eventually(lambda: sum(committed_offsets(kafka_bootstrap, group, topics.feedback)) == len(lessons),
                       what="every offset committed")
            events = read_events(kafka_bootstrap, topics.decisions, settle_seconds=1.0)
        finally:
            for generator in (first, second):
                if generator is not None:
                    generator.stop()
    decided = sorted(event.payload.feedback_id for event in events)
    assert decided == sorted(item.feedback_id for item in lessons)
    assert len(model.requests) == len(lessons)
    # The partitions moved while the first worker held batches (the case this test is about).
    assert any(record.getMessage().startswith("partitions revoked: committing the batches in hand")
               for record in caplog.records)


def test_a_worker_stopped_mid_batch_leaves_the_batch_to_the_next_owner_once(kafka_bootstrap: str, topics: Topics,
                                                                          unique_name: str) -> None:
    from tests.support.fake_openai import FakeOpenAI

    group = f"gen-{unique_name}"
    lessons = [feedback(f"Wrong answer number {n}", f"Question {n}?") for n in range(6)]
    publish(kafka_bootstrap, topics.feedback, *lessons)
    abandoned = metric("policyloop_generator_batches_abandoned_total")
    with FakeOpenAI() as slow, FakeOpenAI() as fast:
        # The slow model answers long after the first worker's shutdown bound.
        slow.script(*[answer("slow model", delay=3.0) for _ in lessons])
        fast.script(*[answer("fast model") for _ in lessons])
        first = RunningGenerator(kafka_bootstrap, topics, group=group, transactional_id=f"tx-a-{unique_name}",
                                 provider=openai_provider(slow), shutdown_seconds=0.5)
        eventually(lambda: len(slow.requests) >= 1, what="the first worker asking its model")
        first.stop()
        assert not first.worker.alive
        # Every batch in hand was given up (the six records may have come in more than one batch).
        assert metric("policyloop_generator_batches_abandoned_total") > abandoned
        assert read_topic(kafka_bootstrap, topics.decisions, settle_seconds=0.5) == []
        second = RunningGenerator(kafka_bootstrap, topics, group=group, transactional_id=f"tx-b-{unique_name}",
                                  provider=openai_provider(fast))
        try:
            events = decisions_for(kafka_bootstrap, topics.decisions, len(lessons))
        finally:
            second.stop()
    decided = sorted(event.payload.feedback_id for event in events)
    assert decided == sorted(item.feedback_id for item in lessons)
    assert {event.payload.explanation for event in events} == {"fast model"}


def test_a_worker_stopped_mid_batch_finishes_it_within_its_bound(kafka_bootstrap: str, one_partition: Topics,
                                                                 unique_name: str) -> None:
    from tests.support.fake_openai import FakeOpenAI

    group = f"gen-{unique_name}"
    lessons = [feedback(f"Wrong answer number {n}", f"Question {n}?") for n in range(5)]
    publish(kafka_bootstrap, one_partition.feedback, *lessons)
    with FakeOpenAI() as model:
        model.script(*[answer("finished at shutdown", delay=1.0) for _ in lessons])
        generator = RunningGenerator(kafka_bootstrap, one_partition, group=group,
                                     provider=openai_provider(model), shutdown_seconds=30, poll_timeout=2.0)
        eventually(lambda: len(model.requests) >= 1, what="the worker asking its model")
        generator.stop()
        assert not generator.worker.alive
    events = read_events(kafka_bootstrap, one_partition.decisions, settle_seconds=0.5)
    assert [event.payload.feedback_id for event in events] == [item.feedback_id for item in lessons]
    assert {event.payload.explanation for event in events} == {"finished at shutdown"}
    # The offsets went with the decisions: the group's next member starts after the batch.
    assert committed_offsets(kafka_bootstrap, group, one_partition.feedback) == [len(lessons)]


def reanalysis(of: FeedbackSubmitted, run_id: str) -> FeedbackReanalysisRequested:
    return FeedbackReanalysisRequested(feedback_id=of.feedback_id, run_id=run_id, requested_by="root",
                                       requested_at=datetime.now(UTC), feedback=of)


def test_re_analysis_decides_a_feedback_again_once_per_run(kafka_bootstrap: str, topics: Topics,
                                                          generator_factory) -> None:
    generator_factory()
    lesson = feedback("Wrong column: the table has total_users, not users",
                      "How many systems have more than 500 users?", "SELECT count(*) FROM systems WHERE users > 500")
    publish(kafka_bootstrap, topics.feedback, lesson)
    [first] = decisions_for(kafka_bootstrap, topics.decisions, 1)
    assert isinstance(first.payload, PolicyGenerated)
    # The same run asked twice (two records, two event ids), then a second run.
    publish(kafka_bootstrap, topics.feedback, reanalysis(lesson, "run-1"), reanalysis(lesson, "run-1"))
    decisions_for(kafka_bootstrap, topics.decisions, 2)
    publish(kafka_bootstrap, topics.feedback, reanalysis(lesson, "run-2"))
    events = decisions_for(kafka_bootstrap, topics.decisions, 3)
    runs = [event.payload.reanalysis_run_id for event in events]
    assert sorted(runs, key=str) == sorted([None, "run-1", "run-2"], key=str), runs
    for event in events[1:]:
        # The lesson is already learnt: each run finds the first policy, no second one.
        assert isinstance(event.payload, PolicySkipped)
        assert event.payload.duplicate_of == first.payload.policy.policy_id
