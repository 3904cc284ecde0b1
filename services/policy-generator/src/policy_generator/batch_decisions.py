"""Deciding the feedback of one batch concurrently, handed back in batch order, with in-batch twins kept as one.

Every feedback of a batch is decided on a decision thread against the policies the index knows (ranked through
its candidate index). Decided one after the other, feedback k would also have seen the policies made by feedback
0..k-1 of its batch, so two tellings of one lesson in one batch gave one policy and one duplicate. To keep that,
the decisions are walked in batch order and each NEW one is compared with the policies made before it in the
batch: where one of them scores at least ``IN_BATCH_RECHECK_THRESHOLD`` against the feedback, the feedback is
decided again with those policies among its candidates (each replacing the index's version of its id, where an
earlier feedback of the batch updated a known policy). The fast path folds it without any provider call when it
reaches ``FAST_PATH_THRESHOLD``; otherwise the provider is asked again. A second look waits for the one before it,
since each may add a policy the next must see; it is rare (two feedbacks of one lesson in one batch), so it runs
one at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from opentelemetry.trace import SpanKind

from policy_generator.candidate_index import CandidateIndex
from policy_generator.context import build_context
from policy_generator.decision import DecisionMaker, decision_kind
from policy_generator.decision_threads import DecisionThreads
from policy_generator.dedup import IN_BATCH_RECHECK_THRESHOLD, as_candidates, feedback_document
from policy_generator.metrics import DECISION_SECONDS, IN_BATCH_RECHECKS
from policyloop_common.events import (
    DecisionEvent,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyGenerationFailed,
)
from policyloop_common.policy import Policy
from policyloop_common.tracing import traced

log = logging.getLogger(__name__)
# How often a wait for a decision looks whether the batch is being given up.
_WAKE_SECONDS = 0.1


@dataclass(frozen=True)
class Pending:
    """A feedback of the batch to decide, with the traceparent it arrived with, and the re-analysis run that
    asked for it (None for a feedback as submitted)."""

    feedback: FeedbackSubmitted
    traceparent: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class Decided:
    """The final decision for a feedback, the traceparent to send it on with, and the time spent deciding it."""

    event: DecisionEvent
    traceparent: str
    seconds: float


class BatchAbandoned(Exception):
    """The batch was given up before all its decisions were made; nothing of it may be produced."""


class BatchDecider:
    """Decides a batch on the decision threads and returns the decisions in batch order."""

    def __init__(self, maker: DecisionMaker, threads: DecisionThreads,
                 recheck_threshold: float = IN_BATCH_RECHECK_THRESHOLD) -> None:
        self.maker = maker
        self._threads = threads
        self._recheck_threshold = recheck_threshold

    def decide(self, batch: Sequence[Pending], abandon: threading.Event) -> list[Decided]:
        """One decision per feedback, in the order of ``batch``; raises BatchAbandoned once ``abandon`` is set
        while a decision is still missing."""
        futures = [self._threads.submit(self._decide, item, (), "feedback.decide", SpanKind.CONSUMER)
                   for item in batch]
        made: list[Policy] = []  # policies created by earlier feedback of this batch
        # The same, indexed: each decision is rechecked against them without scoring every one (a batch of new
        # lessons would otherwise cost a number of scorings that grows with the square of its size).
        made_index = CandidateIndex()
        decided: list[Decided] = []
        try:
            for item, future in zip(batch, futures, strict=True):
                result = _wait(future, abandon)
                if isinstance(result.event, PolicyGenerated) and self._may_repeat(item.feedback, made_index):
                    result = self._look_again(item, result, tuple(made), abandon)
                if isinstance(result.event, PolicyGenerated):
                    made.append(result.event.policy)
                    made_index.put(result.event.policy)
                decided.append(result)
        except BaseException:
            # Calls not started yet are dropped; running ones end on their own and nobody reads them.
            for future in futures:
                future.cancel()
            raise
        for result in decided:
            DECISION_SECONDS.observe(result.seconds)
        return decided

    def _may_repeat(self, feedback: FeedbackSubmitted, made: CandidateIndex) -> bool:
        """Whether a policy made earlier in the batch may be this feedback's lesson."""
        if not len(made):
            return False
        # Only the batch's own policies are ranked here: the known ones were candidates of the first decision.
        best = as_candidates(made.rank(feedback_document(build_context(feedback)), 1))
        return bool(best) and best[0].similarity >= self._recheck_threshold

    def _look_again(self, item: Pending, first: Decided, made: Sequence[Policy],
                    abandon: threading.Event) -> Decided:
        again = _wait(self._threads.submit(self._decide, item, made, "feedback.recheck", SpanKind.INTERNAL),
                      abandon)
        event = _with_both_calls(again.event, first.event)
        IN_BATCH_RECHECKS.labels(decision_kind(event)).inc()
        return Decided(event=event, traceparent=again.traceparent, seconds=first.seconds + again.seconds)

    def _decide(self, item: Pending, made: Sequence[Policy], span: str, kind: SpanKind) -> Decided:
        """Decide against the index's policies and those ``made`` earlier in the batch."""
        started = time.perf_counter()
        with traced(span, item.traceparent, kind=kind, feedback_id=item.feedback.feedback_id) as traceparent:
            event = self.maker.decide(item.feedback, run_id=item.run_id, made=made)
            log.info("decision made", extra={"decision": type(event).ce_type, "kind": decision_kind(event),
                                             "span": span})
        return Decided(event=event, traceparent=traceparent, seconds=time.perf_counter() - started)


def _with_both_calls(event: DecisionEvent, first: PolicyGenerated) -> DecisionEvent:
    """The decision with the model calls and tokens of the first look added: the feedback cost both."""
    if isinstance(event, PolicyGenerationFailed):
        return event  # it counts its own attempts; the feedback goes to the dead-letter topic to be tried again
    spent, extra = event.decision, first.decision
    details = spent.model_copy(update={"llm_calls": spent.llm_calls + extra.llm_calls,
                                       "usage": spent.usage.plus(extra.usage)})
    return event.model_copy(update={"decision": details})


def _wait(future: Future[Decided], abandon: threading.Event) -> Decided:
    while True:
        try:
            return future.result(timeout=_WAKE_SECONDS)
        except TimeoutError:
            if abandon.is_set():
                raise BatchAbandoned from None
