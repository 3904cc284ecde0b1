"""The fault schedule: which fault happens when, drawn from a seed so that a run can be repeated."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

KILL_GENERATOR = "kill policy-generator"
KILL_STORE = "kill policy-store"
RESTART_KAFKA = "restart Kafka"
STOP_POSTGRES = "stop PostgreSQL"
INJECT_POISON = "inject poison"
SCALE_UP = "scale generators up"
SCALE_DOWN = "scale generators down"
THROUGHPUT_PROBE = "throughput probe"

# Seconds each fault is given before the next one starts: its own length and a recovery that can be measured.
# When the run is too short for all of them they are squeezed proportionally and overlap.
BUDGET_SECONDS = {KILL_GENERATOR: 20.0, KILL_STORE: 20.0, RESTART_KAFKA: 40.0, STOP_POSTGRES: 20.0,
                  INJECT_POISON: 20.0, SCALE_UP: 25.0, SCALE_DOWN: 20.0, THROUGHPUT_PROBE: 30.0}
WARMUP_SECONDS = 10.0


@dataclass
class Fault:
    """One planned fault: when (seconds after the load starts), what, and the random draws it acts on."""

    at: float
    kind: str
    restart_delay: float = 0.0  # kills: how long the process stays dead
    outage: float = 0.0  # PostgreSQL: how long it stays down
    pick: float = 0.0  # kills: which of the running processes, as a fraction of their number
    phase: int = 0  # which scaling phase (0: one generator, 1: three, 2: one again) it falls in
    notes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleSpec:
    """What to put into the schedule."""

    duration: float
    kills: int
    seed: int
    broker_restarts: int = 1
    postgres_outages: int = 1
    postgres_outage_seconds: tuple[float, float] = (10.0, 20.0)
    poison: bool = True
    scaling: bool = True
    probes: bool = True


def build_schedule(spec: ScheduleSpec) -> list[Fault]:
    """Faults in time order; kills split between the generator and the store, placed at random moments."""
    rng = random.Random(spec.seed)
    generator_kills = math.ceil(spec.kills / 2)
    others = ([KILL_GENERATOR] * generator_kills + [KILL_STORE] * (spec.kills - generator_kills)
              + [RESTART_KAFKA] * spec.broker_restarts + [STOP_POSTGRES] * spec.postgres_outages)
    if spec.poison:
        others.append(INJECT_POISON)
    phases: list[list[str]] = [[], [], []] if spec.scaling else [[]]
    for kind in others:
        rng.choice(phases).append(kind)
    if spec.probes:
        for phase in phases:
            phase.append(THROUGHPUT_PROBE)
    order: list[tuple[str, int]] = []
    for number, phase in enumerate(phases):
        rng.shuffle(phase)
        order += [(kind, number) for kind in phase]
        if spec.scaling and number < 2:
            order.append((SCALE_UP if number == 0 else SCALE_DOWN, number))
    faults = [Fault(at=0.0, kind=kind, phase=phase, pick=rng.random(), restart_delay=rng.uniform(0.5, 5.0),
                    outage=rng.uniform(*spec.postgres_outage_seconds) if kind == STOP_POSTGRES else 0.0)
              for kind, phase in order]
    budgets = [BUDGET_SECONDS[f.kind] + f.outage for f in faults]
    room = max(0.0, spec.duration - WARMUP_SECONDS)
    squeeze = min(1.0, room / sum(budgets)) if budgets else 1.0
    spare = room - squeeze * sum(budgets)
    cuts = sorted(rng.uniform(0, spare) for _ in faults)
    gaps = [b - a for a, b in zip([0.0, *cuts], cuts, strict=False)]
    moment = WARMUP_SECONDS
    for fault, budget, gap in zip(faults, budgets, gaps, strict=True):
        moment += gap
        fault.at = round(moment, 1)
        moment += budget * squeeze
    return faults
