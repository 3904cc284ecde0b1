"""A shortened chaos run: kills, a broker restart, a PostgreSQL stop and poison under load, on servers of its own.

The full run is ``make chaos`` (docs/chaos.md). Only correctness is asserted; the run's times are printed.
"""

from __future__ import annotations

import pytest

from tools.chaos.report import text_table
from tools.chaos.run import ChaosParameters, ChaosResult, run_chaos
from tools.chaos.schedule import INJECT_POISON, KILL_GENERATOR, KILL_STORE, RESTART_KAFKA, STOP_POSTGRES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SHORT = ChaosParameters(feedbacks=400, kills=3, seed=11, rate=4.0, poison_copies=1, scaling=False, probes=False,
                        quiescence_timeout=240.0)


@pytest.fixture(scope="module")
def chaos() -> ChaosResult:
    """One shortened run for every test of this module."""
    result = run_chaos(SHORT)
    print(text_table(result))
    return result


def test_every_fault_of_the_schedule_happened(chaos: ChaosResult) -> None:
    kinds = [record.kind for record in chaos.faults]
    assert kinds.count(KILL_GENERATOR) + kinds.count(KILL_STORE) >= 3
    assert KILL_GENERATOR in kinds and KILL_STORE in kinds
    assert kinds.count(RESTART_KAFKA) == 1
    assert kinds.count(STOP_POSTGRES) == 1
    assert kinds.count(INJECT_POISON) == 1


def test_every_feedback_was_accepted_in_the_end(chaos: ChaosResult) -> None:
    assert chaos.verdict.accepted == SHORT.feedbacks
    assert not chaos.driver.abandoned
    assert not chaos.driver.refused
    assert not chaos.verdict.not_in_kafka


def test_nothing_lost_and_nothing_doubled(chaos: ChaosResult) -> None:
    assert chaos.verdict.lost == []
    assert chaos.verdict.duplicates == []
    assert chaos.verdict.unexpected == []
    assert chaos.verdict.policies_twice == []
    assert chaos.verdict.unreadable_decisions == 0


def test_store_rows_match_the_decisions(chaos: ChaosResult) -> None:
    assert chaos.verdict.store_missing == []
    assert chaos.verdict.store_mismatch == []
    assert chaos.verdict.policy_rows_mismatch == []
    assert chaos.verdict.processed_mismatch == []


def test_dead_letter_topic_holds_exactly_the_poison(chaos: ChaosResult) -> None:
    assert chaos.verdict.poison_injected == len(SHORT.poison_kinds) * SHORT.poison_copies
    assert chaos.verdict.dead_letter_problems == []
    assert chaos.verdict.dead_letters == 2 * chaos.verdict.poison_injected


def test_the_run_passed_as_a_whole(chaos: ChaosResult) -> None:
    assert chaos.error is None
    assert chaos.passed, "\n".join(chaos.verdict.failures())
