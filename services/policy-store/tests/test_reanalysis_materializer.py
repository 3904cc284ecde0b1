"""Re-analysis events in the store: requests and their decisions in either order, later decisions shown, none counted
twice."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from policy_store.core.db import make_engine
from policy_store.models import FeedbackRecord, PolicyEvidence, PolicyHistory, PolicyRecord, ReanalysisRequest
from policyloop_common.cloudevents import IncomingEvent
from policyloop_common.events import (
    DecisionKind,
    FeedbackReanalysisRequested,
    PolicyGenerated,
    PolicyGenerationFailed,
    PolicyImported,
    PolicySkipped,
    SkipReason,
)
from policyloop_common.policy import PolicyStatus
from tests.support.infrastructure import ServerSet
from tests.support.store_state import table_contents

from .test_materializer import NOW, apply, details, duplicate, generated, submitted
from .test_materializer_order import at, materialized

pytestmark = pytest.mark.integration


def request(feedback_id: str, run_id: str, seconds: int, reason: str | None = "new model") -> IncomingEvent:
    """The store's request of ``run_id`` for ``feedback_id``, made ``seconds`` after NOW."""
    return at(FeedbackReanalysisRequested(feedback_id=feedback_id, run_id=run_id, requested_by="operator:ana",
                                          requested_at=NOW + timedelta(seconds=seconds), reason=reason,
                                          feedback=submitted(feedback_id)), seconds)


def in_run(event: PolicyGenerated | PolicySkipped | PolicyGenerationFailed, run_id: str):
    """``event`` as the generator's answer to a request of ``run_id``."""
    return event.model_copy(update={"reanalysis_run_id": run_id})


def not_actionable(feedback_id: str) -> PolicySkipped:
    return PolicySkipped(feedback_id=feedback_id, reason=SkipReason.NOT_ACTIONABLE, explanation="nothing to learn",
                         decision=details(DecisionKind.NOT_ACTIONABLE))


def failure(feedback_id: str) -> PolicyGenerationFailed:
    return PolicyGenerationFailed(feedback_id=feedback_id, error_class="ProviderError", error_message="503 x3",
                                  attempts=3)


def feedback_row(sessions: sessionmaker[Session], feedback_id: str) -> tuple:
    with sessions() as session:
        row = session.get(FeedbackRecord, feedback_id)
        return row.status, row.policy_id, row.reason, row.duplicate_of, row.reanalysis_run_id, row.decided_at


def request_row(sessions: sessionmaker[Session], run_id: str, feedback_id: str) -> ReanalysisRequest | None:
    with sessions() as session:
        return session.get(ReanalysisRequest, (run_id, feedback_id))


def test_request_then_decision_fill_one_row_and_the_feedback_shows_the_run(sessions) -> None:
    apply(sessions, at(submitted("f1"), 1), at(not_actionable("f1"), 2))
    asked = request("f1", "run-a", 10)
    apply(sessions, asked)
    # The request alone changes nothing the feedback shows: the generator has not answered yet.
    assert feedback_row(sessions, "f1")[:5] == ("skipped", None, "not_actionable", None, None)
    answer = at(in_run(generated("f1", "p2"), "run-a"), 20)
    apply(sessions, answer)

    row = request_row(sessions, "run-a", "f1")
    assert (row.requested_by, row.requested_at, row.reason, row.event_id) == (
        "operator:ana", NOW + timedelta(seconds=10), "new model", asked.event_id)
    assert (row.outcome, row.policy_id, row.decided_at, row.decision_event_id) == (
        "generated", "p2", NOW + timedelta(seconds=20), answer.event_id)
    assert feedback_row(sessions, "f1") == ("generated", "p2", None, None, "run-a", NOW + timedelta(seconds=20))
    with sessions() as session:
        assert session.get(PolicyRecord, "p2").source_feedback_ids == ["f1"]


def test_decision_before_its_request_ends_in_the_same_row(sessions) -> None:
    asked, answer = request("f1", "run-a", 10), at(in_run(duplicate("f1", "p1"), "run-a"), 20)
    apply(sessions, at(submitted("f1"), 1), answer)
    early = request_row(sessions, "run-a", "f1")
    assert (early.outcome, early.policy_id, early.event_id, early.requested_at) == ("skipped", "p1", None, None)
    apply(sessions, asked)

    row = request_row(sessions, "run-a", "f1")
    # The request fills its own columns; the decision's stay as they were.
    assert (row.requested_by, row.event_id, row.outcome, row.policy_id, row.decision_event_id) == (
        "operator:ana", asked.event_id, "skipped", "p1", answer.event_id)
    assert feedback_row(sessions, "f1")[:5] == ("skipped", "p1", "duplicate_policy", "p1", "run-a")


def test_requests_and_decisions_end_in_the_same_state_in_any_order_of_their_topics(infrastructure: ServerSet) -> None:
    # f1: first decided not actionable, then two runs; f2: decided once, requested by the second run only.
    decisions = [at(not_actionable("f1"), 2), at(generated("f2", "p1"), 3),
                 at(in_run(generated("f1", "p2"), "run-a"), 11), at(in_run(duplicate("f1", "p2"), "run-b"), 21),
                 at(in_run(duplicate("f2", "p2"), "run-b"), 22)]
    others = [at(submitted("f1"), 1), at(submitted("f2"), 1), request("f1", "run-a", 10), request("f1", "run-b", 20),
              request("f2", "run-b", 20)]
    in_order = table_contents(materialized(infrastructure, sorted(decisions + others, key=lambda e: e.time)))
    for seed in (3, 5, 8):
        shuffled = random.Random(seed).sample(decisions + others, len(decisions) + len(others))
        # Decisions share their feedback's partition of the decisions topic: they keep their order.
        kept = iter(decisions)
        order = [next(kept) if event in decisions else event for event in shuffled]
        assert table_contents(materialized(infrastructure, order)) == in_order


def test_a_later_run_replaces_what_the_feedback_shows_an_older_runs_late_decision_does_not(sessions) -> None:
    apply(sessions, at(submitted("f1"), 1), at(not_actionable("f1"), 2), at(submitted("f9"), 3),
          at(generated("f9", "p9"), 4))
    apply(sessions, at(in_run(generated("f1", "p2"), "run-new"), 30))
    shown = ("generated", "p2", None, None, "run-new", NOW + timedelta(seconds=30))
    assert feedback_row(sessions, "f1") == shown

    # An older run, decided before the one shown, is answered late.
    apply(sessions, at(in_run(duplicate("f1", "p9"), "run-old"), 20))
    assert feedback_row(sessions, "f1") == shown
    late = request_row(sessions, "run-old", "f1")
    assert (late.outcome, late.policy_id, late.decided_at) == ("skipped", "p9", NOW + timedelta(seconds=20))
    with sessions() as session:
        # Its policy effects are applied all the same: the lesson is repeated, whichever decision is shown.
        assert session.get(PolicyRecord, "p9").source_feedback_ids == ["f9", "f1"]

    # A later decision of a later run wins again, and clears what the previous one set.
    apply(sessions, at(in_run(failure("f1"), "run-newest"), 40))
    assert feedback_row(sessions, "f1") == ("failed", None, "ProviderError", None, "run-newest",
                                            NOW + timedelta(seconds=40))


def test_a_feedback_decided_twice_in_one_run_keeps_the_later_decision(sessions) -> None:
    apply(sessions, at(submitted("f1"), 1), at(not_actionable("f1"), 2), request("f1", "run-a", 10))
    # The request failed, went to the dead-letter topic and was replayed once the model worked again.
    retried = at(in_run(generated("f1", "p2"), "run-a"), 60)
    apply(sessions, at(in_run(failure("f1"), "run-a"), 30), retried)
    row = request_row(sessions, "run-a", "f1")
    assert (row.outcome, row.policy_id, row.decision_event_id) == ("generated", "p2", retried.event_id)
    apply(sessions, at(in_run(failure("f1"), "run-a"), 45))  # the failure report, delivered late
    assert request_row(sessions, "run-a", "f1").outcome == "generated"
    assert feedback_row(sessions, "f1")[:2] == ("generated", "p2")


def test_a_rerun_that_finds_the_lesson_already_counted_changes_nothing(sessions) -> None:
    apply(sessions, at(submitted("f1"), 1), at(generated("f1", "p1"), 2), at(submitted("f2"), 3),
          at(duplicate("f2", "p1"), 4))

    def policy_state() -> tuple:
        with sessions() as session:
            policy = session.get(PolicyRecord, "p1")
            evidence = session.execute(select(PolicyEvidence.feedback_id).where(PolicyEvidence.policy_id == "p1")
                                       ).scalars().all()
            history = session.scalar(select(func.count()).select_from(PolicyHistory)
                                     .where(PolicyHistory.policy_id == "p1"))
            return policy.source_feedback_ids, policy.support_count, policy.priority, sorted(evidence), history

    before = policy_state()
    assert before[:2] == (["f1", "f2"], 2)
    # f1 made p1 and f2 was counted as its evidence; re-analysed, both are duplicates of p1.
    apply(sessions, at(in_run(duplicate("f1", "p1"), "run-a"), 10), at(in_run(duplicate("f2", "p1"), "run-a"), 11))
    assert policy_state() == before
    assert feedback_row(sessions, "f1")[:5] == ("skipped", "p1", "duplicate_policy", "p1", "run-a")
    assert {request_row(sessions, "run-a", f).outcome for f in ("f1", "f2")} == {"skipped"}


def test_the_same_request_applied_twice_is_one_row(sessions) -> None:
    asked = request("f1", "run-a", 10)
    assert apply(sessions, at(submitted("f1"), 1), asked, asked) == [True, True, False]
    # Published again with another event id (a second publisher of the same run): still one row per run and feedback.
    again = FeedbackReanalysisRequested.model_validate({**asked.payload.model_dump(), "reason": "second try"})
    apply(sessions, at(again, 12))
    apply(sessions, request("f1", "run-b", 20))
    with sessions() as session:
        rows = session.execute(select(ReanalysisRequest.run_id, ReanalysisRequest.reason)
                               .order_by(ReanalysisRequest.run_id)).all()
    assert rows == [("run-a", "second try"), ("run-b", "new model")]


def test_a_decision_without_run_id_for_a_decided_feedback_is_still_ignored(sessions) -> None:
    apply(sessions, at(submitted("f1"), 1), at(generated("f1", "p1"), 2), at(generated("f0", "p0"), 3))
    apply(sessions, at(duplicate("f1", "p0"), 4))
    assert feedback_row(sessions, "f1")[:5] == ("generated", "p1", None, None, None)
    with sessions() as session:
        assert session.get(PolicyRecord, "p0").source_feedback_ids == ["f0"]
        assert session.scalar(select(func.count()).select_from(ReanalysisRequest)) == 0


def test_a_first_decision_overtaken_by_a_rerun_of_pending_feedback_still_brings_its_policy(sessions) -> None:
    # f1 was still pending when a run asked for it, and the run's answer was applied first.
    apply(sessions, at(submitted("f1"), 1), request("f1", "run-a", 5), at(in_run(not_actionable("f1"), "run-a"), 9))
    apply(sessions, at(generated("f1", "p1"), 7))
    assert feedback_row(sessions, "f1")[:5] == ("skipped", None, "not_actionable", None, "run-a")
    with sessions() as session:
        assert session.get(PolicyRecord, "p1").source_feedback_ids == ["f1"]



def test_a_rerun_finding_an_imported_copy_of_its_lesson_ends_alike_whether_the_copy_comes_first_or_last(
        infrastructure: ServerSet) -> None:
    """The copy lists the feedback among its own sources: the rerun's duplicate counts already, and a rebuild
    that reads the decision before the import (another topic) must end where the live store did."""
    copy = generated("f1", "p1").policy.model_copy(update={"policy_id": "copy", "status": PolicyStatus.ACTIVE})
    imported = at(PolicyImported(policy=copy, importer="root", imported_at=NOW + timedelta(seconds=5)), 5)
    asked, rerun = request("f1", "run-a", 10), at(in_run(duplicate("f1", "copy"), "run-a"), 11)
    first = [at(submitted("f1"), 1), at(generated("f1", "p1"), 2)]
    live = materialized(infrastructure, [*first, imported, asked, rerun])
    engine = make_engine(live)
    try:
        with Session(engine) as session:
            assert session.scalars(select(PolicyEvidence.feedback_id)).all() == []
            assert session.get(PolicyRecord, "copy").support_count == 1
    finally:
        engine.dispose()
    for order in ([*first, asked, rerun, imported], [rerun, imported, asked, *first]):
        for batch in (1, len(order)):
            assert table_contents(materialized(infrastructure, order, batch)) == table_contents(live), (order, batch)
