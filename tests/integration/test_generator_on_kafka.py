"""The generator's transactional loop on a real broker: one decision per feedback, poison to the DLQ, restarts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from policy_generator.decision import DecisionMaker
from policy_generator.policy_feed import PolicyFeed
from policy_generator.policy_index import PolicyIndex
from policy_generator.providers.offline import OfflineProvider
from policy_generator.worker import GeneratorWorker
from policyloop_common.cloudevents import encode
from policyloop_common.events import FeedbackContext, FeedbackSubmitted, PolicyGenerated, PolicySkipped, Rating
from policyloop_common.kafka.dead_letters import DLQ_HEADERS, OFFSET_HEADER, REASON_HEADER, dead_letter_for
from policyloop_common.kafka.replay import replay_dead_letters
from policyloop_common.kafka.topics import all_topics, ensure_topics
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


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: str) -> Topics:
    names = Topics(unique_name)
    ensure_topics({"bootstrap.servers": kafka_bootstrap},
                  all_topics([names.feedback, names.decisions, names.reviews]), partitions=3)
    return names


class RunningGenerator:
    """A feed and a worker in this process, as the service's lifespan would run them."""

    def __init__(self, bootstrap: str, topics: Topics, group: str) -> None:
        kafka = {"bootstrap.servers": bootstrap}
        self.index = PolicyIndex()
        self.feed = PolicyFeed(kafka, [topics.decisions, topics.reviews], self.index)
        self.feed.start()
        assert self.feed.wait_caught_up(60)
        decider = DecisionMaker(index=self.index, provider=OfflineProvider())
        self.worker = GeneratorWorker(kafka, group_id=group, transactional_id=f"tx-{group}",
                                      feedback_topic=topics.feedback, decisions_topic=topics.decisions,
                                      decision_maker=decider, batch_size=20, poll_timeout=0.2)
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


def publish(bootstrap: str, topic: str, *events: FeedbackSubmitted, raw: list[bytes] | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for event in events:
        outgoing = encode(event, source="/test", topic=topic)
        producer.produce(topic, key=outgoing.key, value=outgoing.value, headers=outgoing.headers)
    for value in raw or []:
        producer.produce(topic, key=b"poison", value=value, headers=[("ce_specversion", b"1.0")])
    assert producer.flush(30) == 0


def decisions_for(bootstrap: str, topic: str, count: int) -> list:
    return eventually(lambda: (events := read_events(bootstrap, topic, settle_seconds=0.5)) and
                      len(events) >= count and events, timeout=60, what=f"{count} decisions")


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
