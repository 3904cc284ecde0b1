"""AUTO_RETIRE_HARMFUL on a real broker and database: the store's consumer retires a harmful policy once, by event."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from policy_store.auto_retirement import AUTO_RETIRE_REVIEWER, AutoRetirement, retirement_event_id
from policy_store.consumer import StoreConsumer
from policy_store.core.config import StoreSettings
from policy_store.materializer import Materializer
from policy_store.models import PolicyHistory, PolicyRecord, PolicyUsage
from policyloop_common.cloudevents import IncomingEvent, decode, encode
from policyloop_common.events import (
    DecisionDetails,
    DecisionKind,
    FeedbackContext,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyReviewed,
    PolicyUsed,
    Rating,
)
from policyloop_common.kafka.producer import DurableProducer, durable_producer_config
from policyloop_common.kafka.topics import all_topics, ensure_topics
from policyloop_common.policy import GeneratorInfo, Policy
from tests.support.kafka_reader import read_events
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

QUESTION = "What is the total budget of agencies in Hanoi?"


@pytest.fixture
def settings(migrated_url: str, kafka_bootstrap: str, unique_name: str) -> StoreSettings:
    configured = StoreSettings(
        database_url=migrated_url, kafka_bootstrap_servers=kafka_bootstrap, store_group_id=f"store-{unique_name}",
        feedback_topic=f"feedback-{unique_name}", decisions_topic=f"decisions-{unique_name}",
        reviews_topic=f"reviews-{unique_name}", usage_topic=f"usage-{unique_name}",
        store_poll_timeout_seconds=0.2, auto_retire_harmful=True, effectiveness_min_feedback=5,
        effectiveness_harmful_negative_rate=0.6)
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, all_topics(configured.consumed_topics), partitions=3)
    return configured


@pytest.fixture
def producer(settings: StoreSettings) -> Iterator[DurableProducer]:
    durable = DurableProducer(durable_producer_config(settings.kafka_config(), delivery_timeout_ms=10_000))
    yield durable
    durable.close()


@pytest.fixture
def running_store(settings: StoreSettings, sessions: sessionmaker[Session],
                  producer: DurableProducer) -> Iterator[AutoRetirement]:
    """The store's consumer with automatic retirement after each batch, as main.py wires it."""
    materializer = Materializer(auto_activate=True)
    retirement = AutoRetirement(settings, sessions, materializer, producer)
    consumer = StoreConsumer(settings.kafka_config(), group_id=settings.store_group_id,
                             topics=settings.consumed_topics, session_factory=sessions, materializer=materializer,
                             dead_letters=producer, batch_size=50, poll_timeout=0.2,
                             after_batch=retirement.after_batch)
    consumer.start()
    yield retirement
    consumer.stop()


def policy_generated(policy_id: str, rule: str) -> PolicyGenerated:
    now = datetime.now(UTC)
    policy = Policy(policy_id=policy_id, version=1, status="pending_review", category="business_logic",
                    priority="medium", rule=rule, correct_mapping=None, missing_knowledge="", examples=[],
                    rationale="", source_feedback_ids=[f"source-{policy_id}"], support_count=1, created_at=now,
                    updated_at=now, generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))
    decision = DecisionDetails(kind=DecisionKind.NEW, provider="offline", model="offline-rules-v1")
    return PolicyGenerated(feedback_id=f"source-{policy_id}", policy=policy, decision=decision)


def answer_events(policy_id: str, message: str, rating: Rating) -> list:
    """A usage report and a feedback for one answer that used ``policy_id``."""
    return [PolicyUsed(conversation_id="c-auto", message_id=message, policy_ids=[policy_id], question=QUESTION,
                       used_by="assistant-1", used_at=datetime.now(UTC)),
            FeedbackSubmitted(feedback_id=str(uuid.uuid4()), user_id="u1", conversation_id="c-auto",
                              message_id=message, rating=rating,
                              comment="wrong figure" if rating is Rating.NEGATIVE else None,
                              context=FeedbackContext(question=QUESTION), submitted_at=datetime.now(UTC))]


def publish(producer: DurableProducer, settings: StoreSettings, *events) -> None:
    topic_of = {PolicyGenerated: settings.decisions_topic, PolicyUsed: settings.usage_topic,
                FeedbackSubmitted: settings.feedback_topic}
    for event in events:
        producer.publish_sync(encode(event, source="/test", topic=topic_of[type(event)]))


def status_of(sessions: sessionmaker[Session], policy_id: str) -> str | None:
    with sessions() as session:
        record = session.get(PolicyRecord, policy_id)
        return record.status if record else None


def test_harmful_active_policy_is_retired_once_by_a_review_event(
        settings: StoreSettings, sessions: sessionmaker[Session], producer: DurableProducer,
        running_store: AutoRetirement) -> None:
    retired_before = REGISTRY.get_sample_value("policyloop_store_auto_retirements_total") or 0.0
    publish(producer, settings, policy_generated("p-harmful", "Budgets are in thousands of VND."),
            policy_generated("p-helpful", "Budgets are in millions of VND."))
    eventually(lambda: status_of(sessions, "p-harmful") == "active" and status_of(sessions, "p-helpful") == "active",
               what="both policies active")
    for i in range(5):
        publish(producer, settings, *answer_events("p-harmful", f"bad-{i}", Rating.NEGATIVE),
                *answer_events("p-helpful", f"good-{i}", Rating.POSITIVE))
    eventually(lambda: status_of(sessions, "p-harmful") == "retired", what="harmful policy retired")

    reviews = [event for event in read_events(settings.kafka_bootstrap_servers, settings.reviews_topic)
               if isinstance(event.payload, PolicyReviewed)]
    assert [(event.payload.policy_id, event.payload.reviewer, event.event_id) for event in reviews] == [
        ("p-harmful", AUTO_RETIRE_REVIEWER, retirement_event_id("p-harmful"))]
    assert "5 of 5 feedbacks" in reviews[0].payload.reason
    with sessions() as session:
        history = session.execute(select(PolicyHistory).where(PolicyHistory.policy_id == "p-harmful",
                                                                PolicyHistory.action == "retire")).scalars().all()
        assert [(row.actor, row.event_id) for row in history] == [(AUTO_RETIRE_REVIEWER,
                                                                     retirement_event_id("p-harmful"))]
    assert status_of(sessions, "p-helpful") == "active"
    assert (REGISTRY.get_sample_value("policyloop_store_auto_retirements_total") or 0.0) - retired_before == 1

    # More bad feedback on the retired policy: it is no longer active, so nothing is published again.
    publish(producer, settings, *answer_events("p-harmful", "bad-late", Rating.NEGATIVE))

    def usage_rows() -> int:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(PolicyUsage)
                                  .where(PolicyUsage.policy_id == "p-harmful"))
    eventually(lambda: usage_rows() == 6, what="the late usage materialized")
    again = [event for event in read_events(settings.kafka_bootstrap_servers, settings.reviews_topic)
             if isinstance(event.payload, PolicyReviewed)]
    assert len(again) == 1


def test_the_same_batch_checked_twice_retires_once(
        settings: StoreSettings, sessions: sessionmaker[Session], producer: DurableProducer) -> None:
    """A batch redelivered after a failed offset commit runs the check again: the policy is no longer active."""
    materializer = Materializer(auto_activate=True)
    events = [as_incoming(policy_generated("p-replayed", "Budgets are in thousands of VND."))]
    for i in range(5):
        events += [as_incoming(event) for event in answer_events("p-replayed", f"m-{i}", Rating.NEGATIVE)]
    usage_only = [as_incoming(answer_events("p-replayed", "m-9", Rating.NEGATIVE)[0])]
    with sessions() as session, session.begin():
        for event in events:
            materializer.apply(session, event)
    retirement = AutoRetirement(settings, sessions, materializer, producer)
    assert retirement.after_batch(usage_only) == []  # an answer without feedback moves no figure
    assert retirement.after_batch(events) == ["p-replayed"]
    assert retirement.after_batch(events) == []
    assert status_of(sessions, "p-replayed") == "retired"
    reviews = read_events(settings.kafka_bootstrap_servers, settings.reviews_topic)
    assert [event.event_id for event in reviews] == [retirement_event_id("p-replayed")]


def as_incoming(payload) -> IncomingEvent:
    out = encode(payload, source="/test")
    return decode(value=out.value, key=out.key, headers=out.headers, topic=out.topic, partition=0, offset=1)
