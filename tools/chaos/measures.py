"""The figures of a run: recovery after each fault, latency, and decisions per second at each generator count.

Recovery of a fault is its *catch-up time*: from the moment the fault started until every feedback accepted
before the fault ended is decided in the store, as seen by polling the database. It covers the outage itself, the
rebalances and fencing it causes, and draining what queued up meanwhile; compare it with the normal latency.

Throughput at k generators comes from the probes: the running generators are frozen while a burst of feedback
is accepted, then thawed, and the rate is the number of decisions made (their ``ce_time``) from the thaw until
the last feedback accepted before the thaw was decided.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from tools.chaos.controller import FaultRecord
from tools.chaos.driver import Accepted
from tools.chaos.schedule import THROUGHPUT_PROBE
from tools.chaos.verification import Decision


@dataclass(frozen=True)
class Recovery:
    """One fault's catch-up time (None when some feedback of before its end was never decided)."""

    fault: FaultRecord
    catch_up_seconds: float | None


@dataclass(frozen=True)
class Throughput:
    """Decisions per second while a backlog was drained by ``generators`` generators."""

    generators: int
    backlog: int
    seconds: float
    decisions_per_second: float


def latency_seconds(accepted: list[Accepted], decided_at: dict[str, float]) -> dict[str, float]:
    """From 202 to seen decided in the store: median, 99th percentile and worst."""
    delays = sorted(decided_at[a.feedback_id] - a.accepted_at for a in accepted if a.feedback_id in decided_at)
    if not delays:
        return {}
    return {"p50": statistics.median(delays), "p99": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
            "max": delays[-1]}


def recoveries(faults: list[FaultRecord], accepted: list[Accepted], decided_at: dict[str, float]) -> list[Recovery]:
    """Catch-up time of every fault but the probes (which are measurements, not faults)."""
    ordered = sorted(accepted, key=lambda a: a.accepted_at)
    result = []
    for fault in faults:
        if fault.kind == THROUGHPUT_PROBE:
            continue
        before = [a for a in ordered if a.accepted_at <= fault.ended]
        moments = [decided_at.get(a.feedback_id) for a in before]
        if any(moment is None for moment in moments):
            result.append(Recovery(fault, None))
            continue
        caught_up = max([fault.started, *moments])  # type: ignore[list-item]
        result.append(Recovery(fault, caught_up - fault.started))
    return result


def throughputs(faults: list[FaultRecord], accepted: list[Accepted], decisions: list[Decision]) -> list[Throughput]:
    """Drain rate after each probe."""
    by_feedback = {d.feedback_id: d.time for d in decisions}
    times = sorted(d.time for d in decisions)
    result = []
    for fault in faults:
        if fault.kind != THROUGHPUT_PROBE:
            continue
        resumed = fault.details["resumed_wall"]
        # Accepted before the thaw and decided after it: the backlog the thawed generators found.
        backlog = [by_feedback[a.feedback_id] for a in accepted
                   if a.accepted_at <= fault.ended and by_feedback.get(a.feedback_id, 0) >= resumed]
        if not backlog:
            continue
        drained = max(backlog)
        made = sum(1 for moment in times if resumed <= moment <= drained)
        seconds = max(drained - resumed, 1e-3)
        result.append(Throughput(fault.details["generators"], len(backlog), seconds, made / seconds))
    return result
