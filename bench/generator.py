"""Generator: decisions per second of one policy-generator process whose model answers in 500 ms.

The ideal for one process is its in-flight limit ÷ the model's latency: every slot always waiting on the model,
nothing else taking time. The report's design (Celery workers, one feedback each at a time) is simulated in the
same harness and on the same code: eight generator processes with ``GENERATOR_MAX_IN_FLIGHT=1`` and
``GENERATOR_BATCH_SIZE=1`` on an eight-partition topic, so that each worker has a backlog of its own and none
idles. It is the design without its worst cost: the report sent every existing policy to the model for the
duplicate check, a second long call per feedback; here both sides make one model call per feedback.

The model is ``bench.llm_server``: each feedback becomes a NEW policy, and the generator's index already holds
``SEED_POLICIES`` policies when the backlog arrives (a deployment that has been running a while), since every
decision ranks the known policies. A second run with no known policies, whose model finds nothing actionable,
shows the pipeline's own limit once the ranking costs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.harness import Context, cpu_seconds
from bench.pipeline import (
    DecisionTail,
    generator_environment,
    llm_requests,
    publish,
    publish_policies,
    start_generator,
    start_llm,
    wait_group_assigned,
)
from bench.profiling import profiled
from bench.results import Comparison, Outcome, RatioStyle, Target
from bench.workload import Lesson, feedback_event
from tools.local_stack.processes import read_pid

NAME = "generator"
LATENCY_SECONDS = 0.5
# The default of GENERATOR_MAX_IN_FLIGHT is 64: at most 8× the eight workers' ideal (8 ÷ 0.5 s), below the
# target of 10×. The benchmark runs one process at 128 in flight, the batch size raised with it (it caps the
# calls of one transaction).
IN_FLIGHT = 128
SEED_POLICIES = 1_000
# Feedbacks of the 8 workers' designs, offset so that their lessons differ from the single process's.
_WORKER_OFFSET = 500_000


@dataclass(frozen=True)
class Throughput:
    """What a generator run achieved."""

    decisions: int
    seconds: float
    cpu_seconds: float
    model_calls: int

    @property
    def rate(self) -> float:
        """Decisions per second."""
        return self.decisions / self.seconds

    @property
    def cpu_per_decision(self) -> float:
        """Generator CPU seconds per decision."""
        return self.cpu_seconds / self.decisions if self.decisions else float("nan")


def measure(ctx: Context, *, label: str, processes: int, in_flight: int, batch_size: int, partitions: int,
            feedbacks: int, seed_policies: int, verdict: str = "NEW", max_seconds: float = 120.0,
            offset: int = 0, extra_pids: tuple[str, ...] = ()) -> tuple[Throughput, dict[str, float]]:
    """Start ``processes`` generators on a fresh topic, publish ``feedbacks`` at once, time their decisions.

    Time runs from the first feedback published to the last decision seen committed (or ``max_seconds``).
    Returns the throughput and the CPU seconds of the other processes named in ``extra_pids`` (``llm``, ``kafka``).
    """
    bench = ctx.run
    topics = bench.topics(f"{NAME}-{label}", partitions=partitions)
    if seed_policies:
        publish_policies(bench.bootstrap, topics.decisions, seed_policies)
    llm = start_llm(bench, latency=LATENCY_SECONDS, verdict=verdict)
    group = f"{topics.prefix}-gen"
    env = generator_environment(bench, topics, llm, group=group, GENERATOR_MAX_IN_FLIGHT=str(in_flight),
                                GENERATOR_BATCH_SIZE=str(batch_size))
    generators = [start_generator(bench, env, number) for number in range(processes)]
    for generator in generators:
        generator.wait_ready(timeout=300)
    wait_group_assigned(bench.bootstrap, group, processes, partitions)
    # One feedback per partition first, so that every process has made a decision before the clock runs: its
    # model client connected, its known policies prepared for matching (a one-time cost per process).
    warm_up = [feedback_event(Lesson.number(seed_policies + offset + feedbacks + number))
               for number in range(partitions)]
    warm_tail = DecisionTail(bench.bootstrap, topics.decisions, {event.feedback_id for event in warm_up})
    publish(bench.bootstrap, topics.feedback, warm_up, spread=partitions)
    warmed, _ = warm_tail.wait_for(partitions, until=time.monotonic() + 120)
    warm_tail.close()
    if warmed < partitions:
        raise RuntimeError(f"only {warmed} of {partitions} warm-up feedbacks were decided in 120 s")
    # Seed lessons are 0..seed-1; the backlog's lessons come after them, so each is a new lesson.
    events = [feedback_event(Lesson.number(seed_policies + offset + number)) for number in range(feedbacks)]
    tail = DecisionTail(bench.bootstrap, topics.decisions, {event.feedback_id for event in events})
    kafka_pid = _kafka_pid(ctx)
    others = {"llm": llm.pid, "kafka": kafka_pid}
    try:
        cpu_before = sum(generator.cpu() for generator in generators)
        other_before = {name: cpu_seconds(others[name]) or 0.0 for name in extra_pids if others.get(name)}
        calls_before = llm_requests(llm)
        with profiled(ctx, generators[0], f"{NAME}-{label}"):
            # Spread evenly: by key, the busiest of eight partitions would hold ~14 of 80 feedbacks while others
            # held 6, and the run would time that one worker while the rest sat idle — a queue no Celery worker
            # idles beside.
            started = publish(bench.bootstrap, topics.feedback, events, spread=partitions)
            decided, finished = tail.wait_for(feedbacks, until=started + max_seconds)
        cpu = sum(generator.cpu() for generator in generators) - cpu_before
        other = {name: (cpu_seconds(others[name]) or 0.0) - before for name, before in other_before.items()}
        calls = llm_requests(llm) - calls_before
    finally:
        tail.close()
        bench.stop_services()
    return Throughput(decisions=decided, seconds=max(finished - started, 1e-9), cpu_seconds=cpu,
                      model_calls=calls), other


def _kafka_pid(ctx: Context) -> int | None:
    return read_pid(ctx.run.kafka.home / "kafka.pid")


def run(ctx: Context) -> Outcome:
    """One process against its ideal and against the eight-worker design; CPU per decision."""
    outcome = Outcome(NAME)
    waves = int(ctx.scale(12, 3))
    seed = int(ctx.scale(SEED_POLICIES, 200))
    ideal = IN_FLIGHT / LATENCY_SECONDS
    one, _ = measure(ctx, label="one", processes=1, in_flight=IN_FLIGHT, batch_size=IN_FLIGHT, partitions=12,
                     feedbacks=IN_FLIGHT * waves, seed_policies=seed, max_seconds=ctx.scale(90, 30))
    bare, _ = measure(ctx, label="bare", processes=1, in_flight=IN_FLIGHT, batch_size=IN_FLIGHT, partitions=12,
                      feedbacks=IN_FLIGHT * waves, seed_policies=0, verdict="NOT_ACTIONABLE",
                      max_seconds=ctx.scale(90, 30))
    workers, _ = measure(ctx, label="eight-workers", processes=8, in_flight=1, batch_size=1, partitions=8,
                         feedbacks=8 * int(ctx.scale(10, 3)), seed_policies=seed, offset=_WORKER_OFFSET,
                         max_seconds=ctx.scale(90, 30))

    outcome.add(f"one process, {IN_FLIGHT} in flight, {seed:,} policies known", one.rate, "dec/s",
                reference=ideal, reference_name=f"ideal {IN_FLIGHT} ÷ {LATENCY_SECONDS:g} s",
                target=Target(Comparison.AT_LEAST, 0.90))
    outcome.add("one process vs the report's design (8 workers × 1)", one.rate, "dec/s", reference=workers.rate,
                reference_name="8 workers", style=RatioStyle.TIMES, target=Target(Comparison.AT_LEAST, 10.0))
    outcome.add("generator CPU per decision", one.cpu_per_decision * 1000, "ms CPU",
                reference=bare.cpu_per_decision * 1000, reference_name="no policies known",
                style=RatioStyle.TIMES)
    outcome.add(f"one process, {IN_FLIGHT} in flight, no policies known, nothing actionable", bare.rate, "dec/s",
                reference=ideal, reference_name=f"ideal {IN_FLIGHT} ÷ {LATENCY_SECONDS:g} s")
    outcome.add("report's design: 8 workers × 1 in flight", workers.rate, "dec/s", reference=8 / LATENCY_SECONDS,
                reference_name="its ideal 8 ÷ 0.5 s")
    for label, result in (("one process", one), ("no policies known", bare), ("8 workers", workers)):
        outcome.note(f"{label}: {result.decisions:,} decisions in {result.seconds:.1f} s "
                     f"({result.model_calls:,} model calls), {result.cpu_seconds / result.seconds:.2f} cores, "
                     f"{result.cpu_per_decision * 1000:.1f} ms CPU per decision")
    outcome.note(f"model latency {LATENCY_SECONDS * 1000:.0f} ms (bench.llm_server); one process: "
                 f"GENERATOR_MAX_IN_FLIGHT={IN_FLIGHT}, GENERATOR_BATCH_SIZE={IN_FLIGHT}, 12 partitions; "
                 f"8 workers: GENERATOR_MAX_IN_FLIGHT=1, GENERATOR_BATCH_SIZE=1, 8 partitions")
    return outcome
