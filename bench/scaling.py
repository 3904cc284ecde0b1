"""Scaling: decisions per second with 1, 2 and 4 generator processes on a 12-partition topic, latency-bound.

Each process has ``IN_FLIGHT`` model calls in flight against a model answering in 500 ms, and its model finds
nothing actionable with no policies known, so a decision costs little CPU besides waiting: the question is
whether partitions and processes add up, not how fast one decision is computed (see the generator benchmark
for that). Eight processes go past the point where the two cores run out; the CPU per decision of every process
involved (generators, model server, broker) says where that point is.
"""

from __future__ import annotations

from bench.generator import LATENCY_SECONDS, measure
from bench.harness import Context
from bench.results import Comparison, Outcome, RatioStyle, Target

NAME = "scaling"
IN_FLIGHT = 32
PARTITIONS = 12
CORES = 2


def run(ctx: Context) -> Outcome:
    """Throughput with 1, 2, 4 (and 8) processes; the ratio per doubling; the core-bound point."""
    outcome = Outcome(NAME)
    waves = int(ctx.scale(10, 3))
    counts = (1, 2, 4, 8) if not ctx.quick else (1, 2)
    rates: dict[int, float] = {}
    for processes in counts:
        result, other = measure(ctx, label=f"x{processes}", processes=processes, in_flight=IN_FLIGHT,
                                batch_size=IN_FLIGHT, partitions=PARTITIONS,
                                feedbacks=processes * IN_FLIGHT * waves, seed_policies=0, verdict="NOT_ACTIONABLE",
                                max_seconds=ctx.scale(120, 40), offset=processes * 100_000,
                                extra_pids=("llm", "kafka"))
        rates[processes] = result.rate
        whole = (result.cpu_seconds + sum(other.values())) / result.decisions if result.decisions else float("nan")
        outcome.note(f"{processes} process(es): {result.decisions:,} decisions in {result.seconds:.1f} s = "
                     f"{result.rate:,.0f}/s (ideal {processes * IN_FLIGHT / LATENCY_SECONDS:,.0f}/s); generators "
                     f"{result.cpu_seconds / result.seconds:.2f} cores, model server "
                     f"{other.get('llm', 0) / result.seconds:.2f}, broker {other.get('kafka', 0) / result.seconds:.2f};"
                     f" {whole * 1000:.2f} ms CPU per decision in all → the 2 cores saturate near "
                     f"{CORES / whole:,.0f} decisions/s")
        ideal = processes * IN_FLIGHT / LATENCY_SECONDS
        if processes == 1:
            outcome.add(f"1 process × {IN_FLIGHT} in flight", result.rate, "dec/s", reference=ideal,
                        reference_name="ideal")
        else:
            target = Target(Comparison.AT_LEAST, 1.8) if processes <= 4 else None
            outcome.add(f"{processes} processes vs {processes // 2}", result.rate, "dec/s",
                        reference=rates[processes // 2], reference_name=f"{processes // 2} process(es)",
                        style=RatioStyle.TIMES, target=target)
    outcome.note(f"each process: GENERATOR_MAX_IN_FLIGHT={IN_FLIGHT}, GENERATOR_BATCH_SIZE={IN_FLIGHT}; model "
                 f"latency {LATENCY_SECONDS * 1000:.0f} ms; {PARTITIONS} partitions; 8 processes is past the "
                 f"2-core machine's point and has no target")
    return outcome
