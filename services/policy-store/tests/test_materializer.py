"""Materializing events: idempotent by event id, correct in any order of arrival."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from policy_store.materializer import Materializer
from policy_store.models import FeedbackRecord, PolicyHistory, PolicyRecord
from policyloop_common.cloudevents import IncomingEvent, decode, encode
from policyloop_common.events import (
    DecisionDetails,
    DecisionKind,
    FeedbackContext,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyGenerationFailed,
    PolicyReviewed,
    PolicySkipped,
    ReviewAction,
    SkipReason,
)
from policyloop_common.policy import GeneratorInfo, Policy, PolicyPriority

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def as_incoming(payload) -> IncomingEvent:
    out = encode(payload, source="/test")
    return decode(value=out.value, key=out.key, headers=out.headers, topic=out.topic, partition=0, offset=1)


def submitted(feedback_id: str, user: str = "u1") -> FeedbackSubmitted:
    return FeedbackSubmitted(feedback_id=feedback_id, user_id=user, conversation_id="c", message_id="m",
                             rating="negative", comment="use total_users",
                             context=FeedbackContext(question="How many users?"), submitted_at=NOW)


def details(kind: DecisionKind) -> DecisionDetails:
    return DecisionDetails(kind=kind, provider="offline", model="offline-rules-v1")


def generated(feedback_id: str, policy_id: str, version: int = 1,
              rule: str = "Use systems.total_users.") -> PolicyGenerated:
    policy = Policy(policy_id=policy_id, version=version, status="pending_review", category="schema_mapping",
                    priority="high", rule=rule, correct_mapping="users -> systems.total_users",
                    missing_knowledge="", examples=["How many users?"], rationale="",
                    source_feedback_ids=[feedback_id], support_count=1, created_at=NOW,
                    updated_at=NOW + timedelta(minutes=version),
                    generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))
    return PolicyGenerated(feedback_id=feedback_id, policy=policy, decision=details(DecisionKind.NEW))


def duplicate(feedback_id: str, policy_id: str) -> PolicySkipped:
    return PolicySkipped(feedback_id=feedback_id, reason=SkipReason.DUPLICATE_POLICY, duplicate_of=policy_id,
                         decision=details(DecisionKind.DUPLICATE))


def apply(sessions: sessionmaker[Session], *events: IncomingEvent, auto_activate: bool = True) -> list[bool]:
    materializer = Materializer(auto_activate=auto_activate)
    with sessions() as session, session.begin():
        return [materializer.apply(session, event) for event in events]


def test_same_event_twice_changes_nothing_the_second_time(sessions) -> None:
    event = as_incoming(submitted("f1"))
    assert apply(sessions, event) == [True]
    assert apply(sessions, event) == [False]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(FeedbackRecord)) == 1


def test_decision_before_submission_keeps_the_decision(sessions) -> None:
    apply(sessions, as_incoming(generated("f1", "p1")), as_incoming(submitted("f1")))
    with sessions() as session:
        row = session.get(FeedbackRecord, "f1")
        assert (row.status, row.policy_id, row.user_id) == ("generated", "p1", "u1")


def test_second_decision_for_a_feedback_is_ignored(sessions) -> None:
    apply(sessions, as_incoming(submitted("f1")), as_incoming(generated("f1", "p1")),
          as_incoming(duplicate("f1", "p1")))
    with sessions() as session:
        assert session.get(FeedbackRecord, "f1").status == "generated"
        assert session.get(PolicyRecord, "p1").support_count == 1


def test_duplicate_is_evidence_counted_once_even_before_the_policy_exists(sessions) -> None:
    early = as_incoming(duplicate("f2", "p1"))
    apply(sessions, as_incoming(submitted("f2")), early)
    apply(sessions, as_incoming(submitted("f1")), as_incoming(generated("f1", "p1")), early)
    apply(sessions, as_incoming(duplicate("f3", "p1")))
    with sessions() as session:
        policy = session.get(PolicyRecord, "p1")
        assert policy.source_feedback_ids == ["f1", "f2", "f3"]
        assert policy.support_count == 3
        assert session.get(FeedbackRecord, "f2").duplicate_of == "p1"
        actions = session.scalars(select(PolicyHistory.action).where(PolicyHistory.policy_id == "p1")).all()
        # One row per piece of evidence, the early one too, as if it had arrived after its policy.
        assert actions.count("evidence") == 2 and actions[0] == "created"


def test_activation_follows_configuration(sessions) -> None:
    apply(sessions, as_incoming(generated("f1", "p-auto")))
    apply(sessions, as_incoming(generated("f2", "p-review")), auto_activate=False)
    with sessions() as session:
        assert session.get(PolicyRecord, "p-auto").status == "active"
        assert session.get(PolicyRecord, "p-review").status == "pending_review"


def test_newer_version_replaces_content_older_does_not(sessions) -> None:
    apply(sessions, as_incoming(generated("f1", "p1", version=2, rule="second")))
    apply(sessions, as_incoming(generated("f9", "p1", version=1, rule="first")))
    with sessions() as session:
        assert session.get(PolicyRecord, "p1").rule == "second"


def test_review_replayed_before_its_policy_takes_effect(sessions) -> None:
    review = PolicyReviewed(policy_id="p1", action=ReviewAction.RETIRE, reviewer="admin-1", reason="obsolete",
                            reviewed_at=NOW + timedelta(hours=1))
    apply(sessions, as_incoming(review), as_incoming(generated("f1", "p1")))
    with sessions() as session:
        assert session.get(PolicyRecord, "p1").status == "retired"


def test_generated_policy_has_history_with_a_snapshot(sessions) -> None:
    apply(sessions, as_incoming(generated(str(uuid.uuid4()), "p1")))
    with sessions() as session:
        row = session.scalars(select(PolicyHistory).where(PolicyHistory.policy_id == "p1")).one()
        assert row.action == "created" and row.actor == "policy-generator"
        assert row.snapshot["rule"] == "Use systems.total_users."


def test_a_failed_generation_is_replaced_by_the_decision_of_its_replay(sessions) -> None:
    failed = PolicyGenerationFailed(feedback_id="f1", error_class="ProviderError", error_message="503 x3",
                                    attempts=3)
    apply(sessions, as_incoming(submitted("f1")), as_incoming(failed))
    with sessions() as session:
        assert (session.get(FeedbackRecord, "f1").status, session.get(FeedbackRecord, "f1").reason) == \
            ("failed", "ProviderError")
    apply(sessions, as_incoming(generated("f1", "p1")))
    with sessions() as session:
        row = session.get(FeedbackRecord, "f1")
        assert (row.status, row.policy_id, row.reason) == ("generated", "p1", None)
    # Once decided, a late failure report changes nothing.
    apply(sessions, as_incoming(PolicyGenerationFailed(feedback_id="f1", error_class="ProviderError",
                                                       error_message="late", attempts=3)))
    with sessions() as session:
        assert session.get(FeedbackRecord, "f1").status == "generated"


def test_a_policy_from_screened_feedback_waits_for_review_even_with_auto_activation(sessions) -> None:
    suspicious = generated("f1", "p1")
    suspicious = suspicious.model_copy(update={"decision": details(DecisionKind.NEW).model_copy(
        update={"review_reasons": ["url in comment"]})})
    apply(sessions, as_incoming(suspicious), as_incoming(generated("f2", "p2")), auto_activate=True)
    with sessions() as session:
        assert session.get(PolicyRecord, "p1").status == "pending_review"
        assert session.get(PolicyRecord, "p2").status == "active"


def low_priority(event: PolicyGenerated) -> PolicyGenerated:
    return event.model_copy(update={"policy": event.policy.model_copy(update={"priority": PolicyPriority.LOW})})


def test_repeated_evidence_raises_the_priority_never_lowers_it(sessions) -> None:
    low = low_priority(generated("f1", "p1"))
    apply(sessions, as_incoming(low))
    seen = []
    for n in range(2, 7):
        apply(sessions, as_incoming(duplicate(f"f{n}", "p1")))
        with sessions() as session:
            seen.append((session.get(PolicyRecord, "p1").support_count, session.get(PolicyRecord, "p1").priority))
    assert seen == [(2, "low"), (3, "medium"), (4, "medium"), (5, "high"), (6, "high")]
    # Evidence that arrived before its policy counts the same way.
    early = low_priority(generated("g1", "p2"))
    apply(sessions, *[as_incoming(duplicate(f"g{n}", "p2")) for n in range(2, 5)])
    apply(sessions, as_incoming(early))
    with sessions() as session:
        policy = session.get(PolicyRecord, "p2")
        assert (policy.support_count, policy.priority) == (4, "medium")


def test_a_batch_writes_its_new_policies_together_whatever_duplicates_come_between(sessions, statements_sent) -> None:
    """A duplicate's evidence statements do not flush what the batch added before them: its new policies and
    their history go to the database together, at commit, not a few at a time between the duplicates."""
    apply(sessions, as_incoming(generated("f0", "known")))
    events = []
    for n in range(1, 4):
        events += [as_incoming(generated(f"f{n}", f"new-{n}")), as_incoming(duplicate(f"d{n}", "known"))]
    with sessions() as session, statements_sent(session) as statements, session.begin():
        batch = Materializer().prepare_batch(session, events)
        assert [batch.apply(incoming) for incoming in events] == [True] * len(events)

    assert len([s for s in statements if s.startswith("INSERT INTO policies ")]) == 1
    assert len([s for s in statements if s.startswith("INSERT INTO policy_history ")]) == 1
    with sessions() as session:
        assert session.get(PolicyRecord, "known").support_count == 4
        assert session.scalar(select(func.count()).select_from(PolicyRecord)) == 4
        assert session.scalar(select(func.count()).where(PolicyHistory.action == "evidence")) == 3


def test_preparing_a_batch_sends_the_same_statements_whatever_its_size(sessions, statements_sent) -> None:
    """The batch's claims, submissions and locks go as arrays, not as a parameter per value: a statement whose
    text grew with the batch would be built, bound and parsed anew for every size of batch."""
    def prepared(prefix: str, feedbacks: int) -> list[str]:
        events = [as_incoming(payload) for n in range(feedbacks)
                  for payload in (submitted(f"{prefix}{n}"), generated(f"{prefix}{n}", f"{prefix}-p{n}"))]
        with sessions() as session, session.begin():
            with statements_sent(session) as statements:
                batch = Materializer().prepare_batch(session, events)
            assert [batch.apply(incoming) for incoming in events] == [True] * len(events)
        return statements

    small, large = prepared("a", 3), prepared("b", 40)
    assert small == large
    with sessions() as session:
        assert session.scalar(select(func.count()).where(FeedbackRecord.status == "generated")) == 43
        assert session.scalar(select(func.count()).select_from(PolicyRecord)) == 43


def test_a_batch_sends_its_history_rows_in_one_insert_without_returning_ids(sessions, statements_sent) -> None:
    events = [as_incoming(generated("f1", "p1")), as_incoming(duplicate("f2", "p1")),
              as_incoming(generated("f3", "p3"))]
    with sessions() as session, statements_sent(session) as statements, session.begin():
        batch = Materializer().prepare_batch(session, events)
        assert [batch.apply(incoming) for incoming in events] == [True, True, True]

    inserts = [statement for statement in statements if statement.startswith("INSERT INTO policy_history")]
    assert len(inserts) == 1 and "RETURNING" not in inserts[0]
    with sessions() as session:
        rows = session.execute(select(PolicyHistory.policy_id, PolicyHistory.action).order_by(PolicyHistory.id))
        assert rows.all() == [("p1", "created"), ("p1", "evidence"), ("p3", "created")]


def test_a_read_of_the_history_in_the_same_transaction_sees_the_rows_kept(sessions) -> None:
    with sessions() as session, session.begin():
        Materializer().apply(session, as_incoming(generated("f1", "p1")))
        actions = session.execute(select(PolicyHistory.action).where(PolicyHistory.policy_id == "p1")).scalars()
        assert actions.all() == ["created"]


def test_rows_kept_by_a_transaction_rolled_back_are_never_sent(sessions) -> None:
    with sessions() as session:
        with session.begin():
            Materializer().apply(session, as_incoming(generated("f1", "p1")))
            session.rollback()
        with session.begin():
            Materializer().apply(session, as_incoming(generated("f2", "p2")))
    with sessions() as session:
        assert session.execute(select(PolicyHistory.policy_id)).scalars().all() == ["p2"]
        assert session.scalar(select(func.count()).select_from(PolicyHistory)) == 1


def test_a_review_kept_for_its_policy_stays_before_the_rows_written_after_it(sessions) -> None:
    """A review that came before its policy is written first, as the rows of the policy that came after it."""
    review = PolicyReviewed(policy_id="p1", action=ReviewAction.RETIRE, reviewer="admin-1", reason="obsolete",
                            reviewed_at=NOW)
    events = [as_incoming(review), as_incoming(generated("f1", "p1"))]
    with sessions() as session, session.begin():
        batch = Materializer().prepare_batch(session, events)
        assert [batch.apply(incoming) for incoming in events] == [True, True]
    with sessions() as session:
        actions = session.execute(select(PolicyHistory.action).order_by(PolicyHistory.id)).scalars()
        assert actions.all() == ["retire", "created"]


def test_a_batch_reads_the_evidence_of_its_policies_once(sessions, statements_sent) -> None:
    """Duplicates of a policy, and a new policy that evidence arrived before, read the evidence the batch began
    with and what it added since, not the table again each time."""
    apply(sessions, as_incoming(generated("f0", "known")), as_incoming(duplicate("d0", "known")))
    events = [as_incoming(duplicate(f"d{n}", "known")) for n in range(1, 4)]
    events += [as_incoming(duplicate("e1", "later")), as_incoming(generated("f1", "later"))]
    with sessions() as session, statements_sent(session) as statements, session.begin():
        batch = Materializer().prepare_batch(session, events)
        assert [batch.apply(incoming) for incoming in events] == [True] * len(events)

    assert len([s for s in statements if s.startswith("SELECT") and "FROM policy_evidence" in s]) == 1
    with sessions() as session:
        known, later = session.get(PolicyRecord, "known"), session.get(PolicyRecord, "later")
        assert known.source_feedback_ids == ["f0", "d0", "d1", "d2", "d3"] and known.support_count == 5
        assert later.source_feedback_ids == ["f1", "e1"] and later.support_count == 2
        evidence_rows = session.execute(select(PolicyHistory.policy_id).where(PolicyHistory.action == "evidence"))
        assert sorted(evidence_rows.scalars()) == ["known"] * 4 + ["later"]


def test_a_batch_writes_its_decisions_in_one_update(sessions, statements_sent) -> None:
    """Every feedback the batch decides on gets its decision from one statement, each row its own decision."""
    apply(sessions, as_incoming(generated("f0", "known")))
    failed = PolicyGenerationFailed(feedback_id="f3", error_class="ProviderTimeout", error_message="slow",
                                    attempts=3)
    events = [as_incoming(submitted("f1")), as_incoming(generated("f1", "p1")), as_incoming(duplicate("f2", "known")),
              as_incoming(failed)]
    with sessions() as session, statements_sent(session) as statements, session.begin():
        batch = Materializer().prepare_batch(session, events)
        assert [batch.apply(incoming) for incoming in events] == [True] * len(events)

    assert len([s for s in statements if s.startswith("UPDATE feedback ")]) == 1
    with sessions() as session:
        rows = {row.feedback_id: row for row in session.scalars(select(FeedbackRecord))}
        assert (rows["f1"].status, rows["f1"].policy_id, rows["f1"].user_id) == ("generated", "p1", "u1")
        assert rows["f1"].decision["kind"] == "new" and rows["f1"].decided_at is not None
        assert (rows["f2"].status, rows["f2"].reason, rows["f2"].duplicate_of) == ("skipped", "duplicate_policy",
                                                                                    "known")
        assert (rows["f3"].status, rows["f3"].reason, rows["f3"].policy_id) == ("failed", "ProviderTimeout", None)
        assert rows["f3"].decision == {"error_class": "ProviderTimeout", "error_message": "slow", "attempts": 3}


def test_a_read_of_the_feedback_in_the_same_transaction_sees_its_decision(sessions) -> None:
    with sessions() as session, session.begin():
        Materializer().apply(session, as_incoming(generated("f1", "p1")))
        status = session.execute(select(FeedbackRecord.status).where(FeedbackRecord.feedback_id == "f1"))
        assert status.scalar_one() == "generated"


def test_decisions_kept_by_a_transaction_rolled_back_are_never_sent(sessions) -> None:
    with sessions() as session:
        with session.begin():
            Materializer().apply(session, as_incoming(generated("f1", "p1")))
            session.rollback()
        with session.begin():
            Materializer().apply(session, as_incoming(submitted("f1")))
    with sessions() as session:
        assert session.get(FeedbackRecord, "f1").status == "pending"
