"""Which policies written at the same moment are one lesson: ``find_twins`` on a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from policy_store.materializer import Materializer
from policy_store.models import PolicyRecord
from policy_store.twins import NEAREST, PreparedTexts, find_twins
from policyloop_common.cloudevents import decode, encode
from policyloop_common.events import DecisionDetails, DecisionKind, PolicyGenerated, PolicyImported
from policyloop_common.policy import GeneratorInfo, Policy, PolicyStatus

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = timedelta(seconds=120)


def _policy(policy_id: str, seconds: int, *, category: str, rule: str, mapping: str | None) -> Policy:
    return Policy(policy_id=policy_id, version=1, status="pending_review", category=category, priority="medium",
                  rule=rule, correct_mapping=mapping, missing_knowledge="", rationale="",
                  examples=["How many decommissioned systems are there?"], source_feedback_ids=[f"f-{policy_id}"],
                  support_count=1, created_at=NOW + timedelta(seconds=seconds),
                  updated_at=NOW + timedelta(seconds=seconds),
                  generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))


def _stored(sessions: sessionmaker[Session], *policies: Policy) -> None:
    materializer = Materializer()
    with sessions() as session, session.begin():
        for policy in policies:
            decision = DecisionDetails(kind=DecisionKind.NEW, provider="offline", model="offline-rules-v1")
            out = encode(PolicyGenerated(feedback_id=f"f-{policy.policy_id}", policy=policy, decision=decision),
                         source="/test")
            materializer.apply(session, decode(value=out.value, key=out.key, headers=out.headers,
                                               topic=out.topic, partition=0, offset=1))


def _twin_of(sessions: sessionmaker[Session], policy_id: str, prepared: PreparedTexts | None = None) -> str | None:
    with sessions() as session:
        twins = find_twins(session, [session.get(PolicyRecord, policy_id)], threshold=0.6, window=WINDOW,
                           prepared=prepared)
        return twins[policy_id].policy_id if policy_id in twins else None


def _value_lesson(policy_id: str, seconds: int, value: str) -> Policy:
    return _policy(policy_id, seconds, category="business_logic",
                   rule=f"Use systems.lifecycle_stage = '{value}', not 'old': 'old' is not a value of "
                        f"systems.lifecycle_stage.",
                   mapping=f"'old' -> systems.lifecycle_stage = '{value}'")


def test_the_same_lesson_written_twice_at_once_is_a_twin_of_the_older(sessions) -> None:
    _stored(sessions, _value_lesson("older", 0, "retired"), _value_lesson("younger", 3, "retired"))
    assert _twin_of(sessions, "younger") == "older"
    assert _twin_of(sessions, "older") == "younger"  # found from either side; the resolver keeps the older


def test_lessons_of_two_values_of_one_column_are_not_twins_however_alike_they_read(sessions) -> None:
    _stored(sessions, _value_lesson("retired", 0, "retired_3f9a"), _value_lesson("archived", 2, "retired_77c1"))
    assert _twin_of(sessions, "archived") is None


def test_contradicting_mappings_and_other_categories_are_not_twins(sessions) -> None:
    column = _policy("column", 0, category="schema_mapping", rule="Use the column systems.total_users for the "
                     "number of users; there is no column users in systems.", mapping="users -> systems.total_users")
    other_column = _policy("other-column", 1, category="schema_mapping", rule="Use the column "
                           "systems.monthly_users for the number of users; there is no column users in systems.",
                           mapping="users -> systems.monthly_users")
    unit = _policy("unit", 2, category="data_interpretation", rule="The number of users of systems is in "
                   "thousands: there is no column users in systems.", mapping=None)
    _stored(sessions, column, other_column, unit)
    assert _twin_of(sessions, "other-column") is None
    assert _twin_of(sessions, "unit") is None


def test_a_twin_is_looked_for_only_within_the_window(sessions) -> None:
    _stored(sessions, _value_lesson("long-ago", 0, "retired"), _value_lesson("now", 600, "retired"))
    assert _twin_of(sessions, "now") is None


def test_an_imported_policy_of_the_same_lesson_is_no_twin(sessions) -> None:
    """An operator brought it in on purpose; the generated one is for a reviewer to weigh against it."""
    materializer = Materializer()
    imported = _value_lesson("imported", 0, "retired").model_copy(update={"status": PolicyStatus.ACTIVE})
    out = encode(PolicyImported(policy=imported, importer="root", imported_at=NOW), source="/test")
    with sessions() as session, session.begin():
        materializer.apply(session, decode(value=out.value, key=out.key, headers=out.headers, topic=out.topic,
                                           partition=0, offset=1))
    _stored(sessions, _value_lesson("generated", 3, "retired"))
    assert _twin_of(sessions, "generated") is None



def test_a_batch_of_policies_finds_the_twins_each_would_find_alone(sessions) -> None:
    """One statement for a whole consumer batch, among more policies than each may be compared with."""
    lessons = [_value_lesson(f"p{n:02d}", n, f"stage_{n % 7}") for n in range(NEAREST + 15)]
    _stored(sessions, *lessons, _value_lesson("far", 600, "stage_1"))
    with sessions() as session:
        records = [session.get(PolicyRecord, policy.policy_id) for policy in [*lessons, _value_lesson("far", 0, "")]]
        together = {probe: twin.policy_id for probe, twin in
                    find_twins(session, records, threshold=0.6, window=WINDOW).items()}
    alone = {policy.policy_id: _twin_of(sessions, policy.policy_id) for policy in [*lessons]}
    assert together == {probe: twin for probe, twin in alone.items() if twin is not None}
    assert together["p07"] == "p00" and together["p00"] == "p07" and "far" not in together


def test_a_policy_is_compared_by_the_text_of_its_current_version(sessions) -> None:
    """Prepared texts are kept between batches: a new version of a policy must not be compared by its old one."""
    prepared = PreparedTexts()
    running = _policy("rewritten", 0, category="business_logic", rule="Count only systems with systems.is_active = "
                      "true when asked how many systems are running.", mapping="running -> systems.is_active")
    _stored(sessions, running, _value_lesson("repeated", 3, "retired"))
    assert _twin_of(sessions, "repeated", prepared) is None

    rewritten = _value_lesson("rewritten", 0, "retired").model_copy(update={"version": 2})
    decision = DecisionDetails(kind=DecisionKind.UPDATE, provider="offline", model="offline-rules-v1")
    out = encode(PolicyGenerated(feedback_id="f-rewritten-again", policy=rewritten, decision=decision), source="/test")
    with sessions() as session, session.begin():
        Materializer().apply(session, decode(value=out.value, key=out.key, headers=out.headers, topic=out.topic,
                                             partition=0, offset=2))
    with sessions() as session:
        assert session.get(PolicyRecord, "rewritten").version == 2
    assert _twin_of(sessions, "repeated", prepared) == "rewritten"


def _text_reads(statements: list[str]) -> list[str]:
    """The statements that read policies' texts alone (not whole rows)."""
    return [text for text in statements if "policies.rule" in text and "policies.status" not in text]


def test_a_neighbour_compared_before_is_not_read_again(sessions, statements_sent) -> None:
    """The text of a policy compared in an earlier batch is kept: only neighbours never compared are read."""
    prepared = PreparedTexts()
    _stored(sessions, _value_lesson("first", 0, "retired"), _value_lesson("second", 2, "retired"))
    with sessions() as session, statements_sent(session) as statements:
        find_twins(session, [session.get(PolicyRecord, "second")], threshold=0.6, window=WINDOW, prepared=prepared)
    assert len(_text_reads(statements)) == 1

    _stored(sessions, _value_lesson("third", 4, "decommissioned"))
    with sessions() as session, statements_sent(session) as statements:
        twins = find_twins(session, [session.get(PolicyRecord, "third")], threshold=0.6, window=WINDOW,
                           prepared=prepared)
    assert _text_reads(statements) == []
    assert twins == {}  # "decommissioned" is another value: compared with both, a twin of neither
