"""Duplicate fast path: time to decide a near-verbatim repeat of a known lesson, with no model call.

The generator's own decision code (``DecisionMaker`` over a ``PolicyIndex``) decides, in this process, feedback
that repeats the lesson of a known policy almost word for word ("Again: " + the original comment). Its provider
is the real openai provider pointed at ``bench.llm_server`` holding every answer 500 ms: a decision that asked
the model would show in the timings, and the server's request count must stay at zero. The index holds the
policies of many other lessons too, since the candidates are ranked against all of them.
"""

from __future__ import annotations

import time
import uuid

from bench.harness import Context
from bench.pipeline import llm_requests, start_llm
from bench.results import Comparison, Latency, Outcome, RatioStyle, Target
from bench.workload import Lesson, feedback_event, policy_for
from policy_generator.decision import DecisionMaker
from policy_generator.policy_index import PolicyIndex
from policy_generator.providers.openai_provider import OpenAIProvider
from policyloop_common.events import DecisionDetails, DecisionKind, PolicyGenerated, PolicySkipped, SkipReason

NAME = "fast-path"
BUDGET_SECONDS = 0.020
REPORT_SECONDS = 2.3
# Lessons told in the two comment templates whose repeats score above the fast-path bar against their policy.
_FAST_TEMPLATES = (1, 2)


def run(ctx: Context) -> Outcome:
    """Decide repeats against indexes of two sizes; p50/p99 of the decision time."""
    outcome = Outcome(NAME)
    llm = start_llm(ctx.run, latency=0.5)
    provider = OpenAIProvider(api_key="sk-bench", base_url=f"{llm.url}/v1", max_attempts=1)
    repeats = int(ctx.scale(300, 50))
    for size in (1_000, 10_000) if not ctx.quick else (1_000,):
        index = _index_of(size)
        maker = DecisionMaker(index=index, provider=provider)
        lessons = [Lesson.number(number) for number in range(size) if number % 4 in _FAST_TEMPLATES][:repeats]
        # A running generator prepares each known policy for matching once (cached); the first decision after
        # loading pays for all of them, so it is made before the clock runs.
        maker.decide(feedback_event(Lesson.number(size + 1)).model_copy(update={"comment": lessons[0].comment}))
        calls_before = llm_requests(llm)
        durations: list[float] = []
        folded = 0
        for lesson in lessons:
            original = feedback_event(lesson)
            repeat = original.model_copy(update={"feedback_id": str(uuid.uuid4()),
                                                 "comment": f"Again: {original.comment}"})
            began = time.perf_counter()
            decision = maker.decide(repeat)
            durations.append(time.perf_counter() - began)
            folded += isinstance(decision, PolicySkipped) and decision.reason is SkipReason.DUPLICATE_POLICY
        calls = llm_requests(llm) - calls_before
        latency = Latency.of(durations)
        outcome.add(f"decide a repeat, {size:,} policies known, p50", latency.p50, "s", reference=REPORT_SECONDS,
                    reference_name="the report", style=RatioStyle.TIMES, explicit_ratio=REPORT_SECONDS / latency.p50)
        outcome.add(f"decide a repeat, {size:,} policies known, p99", latency.p99, "s", reference=REPORT_SECONDS,
                    reference_name="the report", style=RatioStyle.TIMES, explicit_ratio=REPORT_SECONDS / latency.p99,
                    target=Target(Comparison.BELOW, BUDGET_SECONDS, on="value"))
        outcome.note(f"{size:,} policies: {len(durations)} repeats decided, {folded} folded into their policy as "
                     f"duplicates, {calls} model calls")
    outcome.note("ratio = the report's 2.3 s per duplicate check ÷ our time (how many times faster)")
    return outcome


def _index_of(size: int) -> PolicyIndex:
    index = PolicyIndex()
    details = DecisionDetails(kind=DecisionKind.NEW, provider="openai", model="gpt-4o-mini", llm_calls=1)
    for number in range(size):
        lesson = Lesson.number(number)
        feedback = feedback_event(lesson)
        index.apply(PolicyGenerated(feedback_id=feedback.feedback_id, decision=details,
                                    policy=policy_for(lesson, feedback_id=feedback.feedback_id)))
    return index
