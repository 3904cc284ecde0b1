"""The in-process active policies follow the database: every committed change shows in the next ranking."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from policy_store.active_policies import ActivePolicies
from policy_store.materializer import Materializer
from policyloop_common.cloudevents import IncomingEvent, decode, encode
from policyloop_common.events import (
    DecisionDetails,
    DecisionKind,
    PolicyGenerated,
    PolicyReviewed,
    PolicySkipped,
    ReviewAction,
    SkipReason,
)
from policyloop_common.policy import GeneratorInfo, Policy

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 1, tzinfo=UTC)
DETAILS = DecisionDetails(kind=DecisionKind.NEW, provider="offline", model="offline-rules-v1")
QUESTION = "How many systems have more than 500 users?"


def incoming(payload) -> IncomingEvent:
    out = encode(payload, source="/test")
    return decode(value=out.value, key=out.key, headers=out.headers, topic=out.topic, partition=0, offset=1)


def generated(policy_id: str, rule: str, *, version: int = 1, examples: tuple[str, ...] = ()) -> IncomingEvent:
    feedback_id = str(uuid.uuid4())
    policy = Policy(policy_id=policy_id, version=version, status="pending_review", category="schema_mapping",
                    priority="high", rule=rule, correct_mapping=None, missing_knowledge="", examples=list(examples),
                    rationale="", source_feedback_ids=[feedback_id], support_count=1, created_at=NOW,
                    updated_at=NOW + timedelta(minutes=version),
                    generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))
    return incoming(PolicyGenerated(feedback_id=feedback_id, policy=policy, decision=DETAILS))


USERS = ("users", "Use the column systems.total_users for the number of users; there is no column users.")
BUDGET = ("budget", "budget_vnd is in millions of VND: 45,200 means 45.2 billion VND.")


def apply(sessions: sessionmaker[Session], *events: IncomingEvent) -> None:
    with sessions() as session, session.begin():
        for event in events:
            Materializer(auto_activate=True).apply(session, event)


def ranked(cache: ActivePolicies, sessions: sessionmaker[Session], question: str = QUESTION) -> dict[str, dict]:
    with sessions() as session:
        return {item.record.policy_id: {"score": item.parts.score, "support": item.parts.support,
                                        "rule": item.record.rule}
                for item in cache.rank(session, question, limit=5, floor=0.05)}


def test_created_updated_supported_and_retired_policies_show_in_the_next_ranking(sessions) -> None:
    cache = ActivePolicies()
    assert ranked(cache, sessions) == {}
    apply(sessions, generated(*USERS), generated(*BUDGET))
    assert list(ranked(cache, sessions)) == ["users"]

    apply(sessions, incoming(PolicySkipped(feedback_id="again", reason=SkipReason.DUPLICATE_POLICY,
                                           duplicate_of="users", decision=DETAILS)))
    assert ranked(cache, sessions)["users"]["support"] > 0

    apply(sessions, generated("users", "Count registered accounts with systems.total_users; users is not a column.",
                              version=2))
    assert ranked(cache, sessions)["users"]["rule"].startswith("Count registered accounts")

    apply(sessions, incoming(PolicyReviewed(policy_id="users", action=ReviewAction.RETIRE, reviewer="admin",
                                            reviewed_at=NOW + timedelta(hours=1))))
    assert ranked(cache, sessions) == {}
    assert list(ranked(cache, sessions, "What is the total budget in billion VND?")) == ["budget"]


def test_a_change_committed_under_an_id_already_passed_is_still_seen(sessions) -> None:
    cache = ActivePolicies()
    apply(sessions, generated(*BUDGET))
    assert ranked(cache, sessions) == {}
    # The slow transaction takes its history id first, the quick one a later id and commits first.
    slow = sessions()
    slow.begin()
    Materializer(auto_activate=True).apply(slow, generated(*USERS))
    slow.flush()
    apply(sessions, generated("other", "Use agencies.province for the location of a system."))
    assert list(ranked(cache, sessions, "Which systems are in Hue province?")) == ["other"]
    assert ranked(cache, sessions) == {}  # not committed yet
    slow.commit()
    slow.close()
    assert list(ranked(cache, sessions)) == ["users"]


def test_an_emptied_history_makes_the_cache_read_everything_again(sessions) -> None:
    cache = ActivePolicies()
    apply(sessions, generated(*USERS))
    assert list(ranked(cache, sessions)) == ["users"]
    with sessions() as session, session.begin():
        session.execute(text("TRUNCATE policies, policy_history, processed_events RESTART IDENTITY"))
    apply(sessions, generated(*BUDGET))
    assert ranked(cache, sessions) == {}
    assert list(ranked(cache, sessions, "What is the total budget in billion VND?")) == ["budget"]
