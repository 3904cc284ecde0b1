"""Gauges read from the database at scrape time: policies by status, feedback still waiting for a decision, and
policies suggested for retirement.

Counting at scrape time keeps the gauges true across replicas and restarts, which per-process counters are not;
the queries use the status indexes and run once per scrape, not per event. The retirement gauge counts the
feedback-after-use rule only, one aggregate over usage joined to feedback: the similar-question comparison scores
text per policy and is computed when a policy's effectiveness is asked for, not at every scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from policy_store.core.config import StoreSettings
from policy_store.effectiveness import harmful_after_use_count
from policy_store.models import FeedbackRecord, PolicyRecord
from policyloop_common.policy import PolicyStatus

log = logging.getLogger(__name__)

PENDING = "pending"


class StoreStateCollector(Collector):
    """``policyloop_store_policies{status}``, ``policyloop_store_feedback_pending``, the oldest one's age, and
    ``policyloop_store_policies_retirement_suggested``."""

    def __init__(self, session_factory: sessionmaker[Session], settings: StoreSettings | None = None) -> None:
        self._sessions = session_factory
        # Without settings (thresholds) the retirement gauge is left out.
        self._settings = settings

    def describe(self) -> list:
        # Declared empty so that registering the collector does not query the database.
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readable = GaugeMetricFamily("policyloop_store_state_readable",
                                     "1 when the gauges below could be read from the database")
        try:
            with self._sessions() as session:
                by_status = dict(session.execute(
                    select(PolicyRecord.status, func.count()).group_by(PolicyRecord.status)).all())
                pending, oldest = session.execute(
                    select(func.count(), func.min(func.coalesce(FeedbackRecord.submitted_at,
                                                                FeedbackRecord.recorded_at)))
                    .where(FeedbackRecord.status == PENDING)).one()
                harmful = harmful_after_use_count(session, self._settings) if self._settings else None
        except SQLAlchemyError as error:
            log.warning("store gauges not readable", extra={"error": str(error)[:300]})
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        policies = GaugeMetricFamily("policyloop_store_policies", "Policies in the store, by status", labels=["status"])
        for status in PolicyStatus:
            policies.add_metric([status.value], by_status.get(status.value, 0))
        yield policies
        yield GaugeMetricFamily("policyloop_store_feedback_pending", "Feedback stored but not decided yet",
                                value=pending)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily("policyloop_store_feedback_pending_oldest_seconds",
                                "Age of the oldest feedback still waiting for a decision (0 when none waits)",
                                value=max(age, 0.0))
        if harmful is not None:
            yield GaugeMetricFamily("policyloop_store_policies_retirement_suggested",
                                    "Active or pending policies whose feedback after use crosses the harmful rule "
                                    "(EFFECTIVENESS_HARMFUL_NEGATIVE_RATE over EFFECTIVENESS_MIN_FEEDBACK)",
                                    value=harmful)
