"""Deciding the feedback of batches concurrently, handed back in batch order, with in-batch twins kept as one.

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

The worker submits the next batch while the calls of the one before are still out. The policies made by the
batches finished after a batch was submitted were unseen by its first decisions in the same way, so they are
compared as well, before those of the batch itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

from opentelemetry.trace import SpanKind

from policy_generator.candidate_index import CandidateIndex
from policy_generator.context import build_context
from policy_generator.decision import DecisionMaker, decision_kind
from policy_generator.decision_threads import DecisionThreads
from policy_generator.dedup import IN_BATCH_RECHECK_THRESHOLD, feedback_document
from policy_generator.metrics import DECISION_SECONDS, IN_BATCH_RECHECKS
from policyloop_common.events import (
    DecisionEvent,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyGenerationFailed,
)
from policyloop_common.policy import Policy
from policyloop_common.text_matching import Document
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


@dataclass(eq=False)
class SubmittedBatch:
    """A batch whose decisions are under way: one future per feedback, how many of them are not made yet, and the
    policies made by the batches finished since it was submitted (which its decisions did not see)."""

    items: Sequence[Pending]
    futures: list[Future[Decided]] = field(default_factory=list)
    remaining: int = 0  # lowered by each future's callback, on a decision thread
    unseen: list[Policy] = field(default_factory=list)


class BatchDecider:
    """Decides batches on the decision threads and returns each one's decisions in batch order.

    Several batches may be under way at once (the worker fetches the next while the calls of the one before are
    out), and they are finished in the order they were submitted. A batch's first decisions did not see the
    policies made by the batches finished after it was submitted, so those join its in-batch recheck, as the
    policies made earlier in the batch itself do.
    """

    def __init__(self, maker: DecisionMaker, threads: DecisionThreads,
                 recheck_threshold: float = IN_BATCH_RECHECK_THRESHOLD) -> None:
        self.maker = maker
        self._threads = threads
        self._recheck_threshold = recheck_threshold
        self._open: list[SubmittedBatch] = []
        self._count_lock = threading.Lock()
        self._undecided = 0
        self._decision_made = threading.Event()

    def decide(self, batch: Sequence[Pending], abandon: threading.Event) -> list[Decided]:
        """One decision per feedback, in the order of ``batch``; raises BatchAbandoned once ``abandon`` is set
        while a decision is still missing."""
        return self.finish(self.submit(batch), abandon)

    def submit(self, batch: Sequence[Pending]) -> SubmittedBatch:
        """Start deciding ``batch`` (its calls queue for the decision threads) and return at once."""
        submitted = SubmittedBatch(items=tuple(batch), remaining=len(batch))
        with self._count_lock:
            self._undecided += len(batch)
        for item in batch:
            future = self._threads.submit(self._decide, item, (), "feedback.decide", SpanKind.CONSUMER)
            future.add_done_callback(partial(self._one_decided, submitted))
            submitted.futures.append(future)
        self._open.append(submitted)
        return submitted

    @property
    def undecided(self) -> int:
        """First decisions submitted and not made yet (queued or running), given-up batches' included."""
        return self._undecided

    def wait_for_a_decision(self, timeout: float) -> None:
        """Return once a first decision was made since the last call, or after ``timeout`` seconds."""
        self._decision_made.wait(timeout)
        self._decision_made.clear()

    def _one_decided(self, submitted: SubmittedBatch, _future: Future[Decided]) -> None:
        # Counted here rather than by looking at every future: the worker asks after each decision.
        with self._count_lock:
            submitted.remaining -= 1
            self._undecided -= 1
        self._decision_made.set()

    def finish(self, submitted: SubmittedBatch, abandon: threading.Event) -> list[Decided]:
        """The decisions of the oldest open batch, in batch order, each NEW one rechecked against the policies
        made before it that it did not see; raises BatchAbandoned once ``abandon`` is set while one is missing."""
        if not self._open or self._open[0] is not submitted:
            raise ValueError("batches are finished in the order they were submitted")
        # Policies created by batches finished since this one was submitted, then by earlier feedback of this one.
        earlier = submitted.unseen
        own: list[Policy] = []
        decided: list[Decided] = []
        try:
            first = [_wait(future, abandon) for future in submitted.futures]
            unseen = _UnseenPolicies(earlier, {position: result.event.policy for position, result in enumerate(first)
                                               if isinstance(result.event, PolicyGenerated)})
            for position, (item, result) in enumerate(zip(submitted.items, first, strict=True)):
                if isinstance(result.event, PolicyGenerated) and self._may_repeat(item.feedback, unseen):
                    result = self._look_again(item, result, (*earlier, *own), abandon)
                if isinstance(result.event, PolicyGenerated):
                    own.append(result.event.policy)
                    unseen.made(position, result.event.policy)
                decided.append(result)
        except BaseException:
            self.give_up()
            raise
        self._open.pop(0)
        for later in self._open:
            later.unseen.extend(own)
        for result in decided:
            DECISION_SECONDS.observe(result.seconds)
        return decided

    def give_up(self) -> None:
        """Drop every open batch: calls not started yet are cancelled, running ones end on their own and nobody
        reads them."""
        for submitted in self._open:
            for future in submitted.futures:
                future.cancel()
        self._open.clear()

    def _may_repeat(self, feedback: FeedbackSubmitted, unseen: _UnseenPolicies) -> bool:
        """Whether a policy this feedback's first decision did not see may be its lesson."""
        # Only those are compared here: the known ones were candidates of the first decision.
        return bool(unseen) and unseen.reaches(feedback_document(build_context(feedback)), self._recheck_threshold)

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


class _UnseenPolicies:
    """The policies the first decisions of a batch did not see, as its walk in batch order reaches each feedback:
    those made by the batches finished since it was submitted, then those made by its own earlier feedback, each
    version replacing the one before of its id.

    The policies the batch's first decisions drafted are indexed from the start, under their position, and each
    joins the comparison as the walk passes its feedback. Putting each in as it was made instead changed posting
    lists between two rechecks, and every recheck rebuilt the arrays of those it read: 0.54–0.91 ms per feedback
    of a batch of 128 new lessons with 128 unseen policies, against 0.20–0.47 ms indexed once (docs/benchmarks.md).
    """

    def __init__(self, earlier: Sequence[Policy], drafts: dict[int, Policy]) -> None:
        self._index = CandidateIndex()
        self._compared: dict[str, str] = {}  # policy id → the key its compared version is indexed under
        self._compared_keys: set[str] = set()
        if not drafts:
            return  # no first decision made a policy: none is looked at again, nothing is compared
        for policy in earlier:
            self._index.put(policy)
            self._compare(policy.policy_id, policy.policy_id)
        for position, policy in drafts.items():
            self._index.put(policy, key=_draft_key(position))

    def __bool__(self) -> bool:
        return bool(self._compared_keys)

    def made(self, position: int, policy: Policy) -> None:
        """The feedback at ``position`` made ``policy`` (its first draft, or what a second look wrote instead):
        the feedback after it are compared with it, instead of any version of its id before."""
        key = _draft_key(position)
        self._index.put(policy, key=key)
        self._compare(policy.policy_id, key)

    def reaches(self, probe: Document, threshold: float) -> bool:
        """Whether one of the policies compared so far scores at least ``threshold`` against ``probe``."""
        return self._index.reaches(probe, threshold, self._compared_keys)

    def _compare(self, policy_id: str, key: str) -> None:
        self._compared_keys.discard(self._compared.get(policy_id, key))
        self._compared[policy_id] = key
        self._compared_keys.add(key)


def _draft_key(position: int) -> str:
    # Not a policy id (those are UUIDs): a draft never takes the place of an earlier batch's policy in the index.
    return f"draft {position}"


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
