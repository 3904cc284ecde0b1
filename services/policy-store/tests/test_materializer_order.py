"""The state a store reaches does not depend on the order in which its topics deliver the same events.

The live store reads topics and partitions in parallel, and a rebuild from the beginning reads them in yet
another order; both must end in the same rows.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from policy_store.core.db import make_engine, make_session_factory
from policy_store.materializer import Materializer
from policy_store.migrate import upgrade
from policy_store.models import PolicyHistory, PolicyRecord
from policyloop_common.cloudevents import IncomingEvent, decode, encode
from policyloop_common.events import DecisionKind, PolicyEdit, PolicyEdited, PolicyReviewed, ReviewAction
from tests.support.infrastructure import ServerSet
from tests.support.store_state import table_contents

from .test_materializer import NOW, duplicate, generated, submitted

pytestmark = pytest.mark.integration


def at(payload, seconds: int) -> IncomingEvent:
    """The event as the store reads it, sent ``seconds`` after NOW."""
    out = encode(payload, source="/test")
    headers = [(k, v if k != "ce_time" else (NOW + timedelta(seconds=seconds)).isoformat().encode())
               for k, v in out.headers]
    return decode(value=out.value, key=out.key, headers=headers, topic=out.topic, partition=0, offset=seconds)


def review(action: ReviewAction, seconds: int, reviewer: str = "rita", **extra: str) -> IncomingEvent:
    return at(PolicyReviewed(policy_id="p1", action=action, reviewer=reviewer, reason=f"{action.value} it",
                             reviewed_at=NOW + timedelta(seconds=seconds), **extra), seconds)


def edit(seconds: int) -> IncomingEvent:
    return at(PolicyEdited(policy_id="p1", version=2, changes=PolicyEdit(rule="Use systems.total_users, never users."),
                           editor="rita", reason="clearer", edited_at=NOW + timedelta(seconds=seconds)), seconds)


def life_of_a_policy() -> list[IncomingEvent]:
    """Submitted, generated, repeated twice, approved, edited, then superseded by another policy — in the order
    they happened."""
    return [
        at(submitted("f1"), 1), at(generated("f1", "p1"), 2),
        at(submitted("f2"), 3), at(duplicate("f2", "p1"), 4),
        at(submitted("f3"), 5), at(duplicate("f3", "p1"), 6),
        review(ReviewAction.APPROVE, 7), edit(8),
        at(submitted("f4"), 9), at(generated("f4", "p2", rule="Count users with systems.monthly_active_users."), 10),
        review(ReviewAction.SUPERSEDE, 11, superseded_by="p2"),
    ]


def materialized(infrastructure: ServerSet, events: list[IncomingEvent], batch: int = 1) -> str:
    """A new database with ``events`` applied in the given order, ``batch`` events per transaction (as the
    consumer applies them)."""
    url = infrastructure.new_database("order")
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    materializer = Materializer(auto_activate=False)
    for start in range(0, len(events), batch):
        with sessions() as session, session.begin():
            prepared = materializer.prepare_batch(session, events[start:start + batch])
            for event in events[start:start + batch]:
                prepared.apply(event)
    engine.dispose()
    return url


def keeping_reviews_in_order(order: list[IncomingEvent]) -> list[IncomingEvent]:
    """``order`` with reviews and edits put back in the order they were made: they share the policy's partition."""
    def on_policy_partition(event: IncomingEvent) -> bool:
        return isinstance(event.payload, PolicyReviewed | PolicyEdited)

    reviews = iter(sorted((e for e in order if on_policy_partition(e)), key=lambda e: e.time))
    return [next(reviews) if on_policy_partition(e) else e for e in order]


def test_any_order_ends_in_the_same_state(infrastructure: ServerSet) -> None:
    events = life_of_a_policy()
    in_order = table_contents(materialized(infrastructure, events))
    shuffles = [random.Random(seed).sample(events, len(events)) for seed in (7, 11, 23)]
    for order in (list(reversed(events)), events[2:] + events[:2], *shuffles):
        assert table_contents(materialized(infrastructure, keeping_reviews_in_order(order))) == in_order


def test_reviews_before_their_policy_set_status_validity_and_history(infrastructure: ServerSet) -> None:
    events = life_of_a_policy()
    reviews_first = [events[6], events[7], events[10], *events[:6], events[8], events[9]]
    engine = make_engine(materialized(infrastructure, reviews_first))
    try:
        with Session(engine) as session:
            policy = session.get(PolicyRecord, "p1")
            assert policy.status == "superseded" and policy.superseded_by == "p2"
            assert session.get(PolicyRecord, "p2").supersedes == ["p1"]
            assert (policy.version, policy.rule) == (2, "Use systems.total_users, never users.")
            assert policy.valid_from == NOW + timedelta(seconds=7)
            assert policy.valid_to == policy.updated_at == NOW + timedelta(seconds=11)
            assert policy.source_feedback_ids == ["f1", "f2", "f3"] and policy.support_count == 3
            history = session.query(PolicyHistory).filter_by(policy_id="p1").order_by(PolicyHistory.at).all()
            assert [(h.action, h.version) for h in history] == [
                ("created", 1), ("evidence", 1), ("evidence", 1), ("approve", 1), ("edited", 2), ("supersede", 2)]
    finally:
        engine.dispose()


def contradicted() -> list[IncomingEvent]:
    """p1 generated, then p2 written by the generator because p1 is contradicted (decision kind supersede)."""
    successor = generated("f4", "p2", rule="Count users with systems.accounts_total; total_users is gone.")
    successor.decision.kind, successor.decision.supersedes = DecisionKind.SUPERSEDE, ["p1"]
    successor.decision.explanation = "total_users was renamed"
    return [at(submitted("f1"), 1), at(generated("f1", "p1"), 2), at(submitted("f4"), 3), at(successor, 4)]


def test_a_policy_the_generator_supersedes_is_kept_linked_in_either_order(infrastructure: ServerSet) -> None:
    events = contradicted()
    in_order = materialized(infrastructure, events)
    assert table_contents(materialized(infrastructure, [events[3], events[2], events[1], events[0]])) == \
        table_contents(in_order)
    engine = make_engine(in_order)
    try:
        with Session(engine) as session:
            old, new = session.get(PolicyRecord, "p1"), session.get(PolicyRecord, "p2")
            assert (old.status, old.superseded_by, old.valid_to) == ("superseded", "p2", NOW + timedelta(seconds=4))
            assert new.supersedes == ["p1"] and new.status == "pending_review"
            last = session.query(PolicyHistory).filter_by(policy_id="p1").order_by(PolicyHistory.at.desc()).first()
            assert (last.action, last.actor) == ("supersede", "policy-generator")
            assert "total_users was renamed" in last.reason
    finally:
        engine.dispose()


def twins() -> list[IncomingEvent]:
    """p1 and p5 are one lesson written at once; the store merged p5 into p1."""
    merge = PolicyReviewed(policy_id="p5", action=ReviewAction.SUPERSEDE, reviewer="policy-store/twins",
                           reason="twin", reviewed_at=NOW + timedelta(seconds=5), superseded_by="p1", merge=True)
    return [at(submitted("f1"), 1), at(generated("f1", "p1"), 2), at(submitted("f5"), 3),
            at(generated("f5", "p5"), 4), at(merge, 5)]


def test_a_merged_twin_gives_its_feedback_to_the_older_policy_in_any_order(infrastructure: ServerSet) -> None:
    events = twins()
    in_order = materialized(infrastructure, events)
    for order in ([events[4], *events[:4]], [events[3], events[4], events[2], events[1], events[0]]):
        assert table_contents(materialized(infrastructure, order)) == table_contents(in_order)
    engine = make_engine(in_order)
    try:
        with Session(engine) as session:
            older, younger = session.get(PolicyRecord, "p1"), session.get(PolicyRecord, "p5")
            assert (younger.status, younger.superseded_by) == ("superseded", "p1")
            assert older.source_feedback_ids == ["f1", "f5"] and older.support_count == 2
            assert older.supersedes == ["p5"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("scenario", [life_of_a_policy, contradicted, twins])
def test_a_batch_ends_in_the_state_of_its_events_applied_one_by_one(infrastructure: ServerSet, scenario) -> None:
    """The batch's set-based statements (claims, submissions, locks, look-ups read once) change no outcome: a
    policy created, repeated, reviewed and superseded within one batch, or across batches, in any order."""
    events = scenario()
    one_by_one = table_contents(materialized(infrastructure, events))
    orders = [events, list(reversed(events)), random.Random(5).sample(events, len(events))]
    for order in map(keeping_reviews_in_order, orders):
        for batch in (len(order), 3):
            assert table_contents(materialized(infrastructure, order, batch)) == one_by_one, (order, batch)


def test_an_event_twice_in_a_batch_or_in_a_later_batch_is_applied_once(infrastructure: ServerSet) -> None:
    events = life_of_a_policy()[:4]
    url = infrastructure.new_database("order")
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    materializer = Materializer(auto_activate=False)
    try:
        with sessions() as session, session.begin():
            prepared = materializer.prepare_batch(session, [*events, events[3]])
            assert [prepared.apply(event) for event in [*events, events[3]]] == [True, True, True, True, False]
        with sessions() as session, session.begin():
            prepared = materializer.prepare_batch(session, events)
            assert [prepared.apply(event) for event in events] == [False] * 4
        with Session(engine) as session:
            assert session.get(PolicyRecord, "p1").source_feedback_ids == ["f1", "f2"]
    finally:
        engine.dispose()
    assert table_contents(url) == table_contents(materialized(infrastructure, events))
