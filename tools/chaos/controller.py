"""Carrying out the schedule: each fault done to the real processes and servers, and when it ended."""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field

from tools.chaos.cluster import GENERATOR_GROUP, STORE_GROUP, ChaosCluster, ServiceProcess
from tools.chaos.driver import FeedbackDriver
from tools.chaos.poison import Poison, inject_poison, wait_consumed
from tools.chaos.schedule import (
    INJECT_POISON,
    KILL_GENERATOR,
    KILL_STORE,
    RESTART_KAFKA,
    SCALE_DOWN,
    SCALE_UP,
    STOP_POSTGRES,
    THROUGHPUT_PROBE,
    Fault,
)

log = logging.getLogger(__name__)

# Below the consumers' session timeout (15 s): a frozen generator keeps its partitions, nothing rebalances.
FREEZE_SECONDS = 10.0
POISON_SETTLE_SECONDS = 90.0


@dataclass
class FaultRecord:
    """A fault as it happened: from when the damage started to when the component was back."""

    kind: str
    target: str
    started: float  # monotonic
    ended: float  # monotonic: restarted process ready, broker or database back, generators thawed
    started_wall: float
    ended_wall: float
    details: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """How long the fault lasted."""
        return self.ended - self.started


class FaultController:
    """Does what a fault says to the cluster; the driver is needed for the bursts of the throughput probes."""

    def __init__(self, cluster: ChaosCluster, driver: FeedbackDriver, *, poison_copies: int,
                 poison_kinds: tuple[str, ...], burst: int) -> None:
        self.cluster = cluster
        self.driver = driver
        self.poison_copies = poison_copies
        self.poison_kinds = poison_kinds
        self.burst = burst
        self.records: list[FaultRecord] = []
        self.poison: list[Poison] = []

    def run(self, faults: list[Fault], started: float) -> None:
        """Each fault at its moment (``started`` + ``at``), or as soon as the previous one is done."""
        for fault in faults:
            delay = started + fault.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.apply(fault)

    def apply(self, fault: Fault) -> FaultRecord:
        """Carry out one fault and record it."""
        action = {KILL_GENERATOR: self._kill_generator, KILL_STORE: self._kill_store, RESTART_KAFKA: self._kafka,
                  STOP_POSTGRES: self._postgres, INJECT_POISON: self._poison, SCALE_UP: self._scale_up,
                  SCALE_DOWN: self._scale_down, THROUGHPUT_PROBE: self._probe}[fault.kind]
        started, started_wall = time.monotonic(), time.time()
        target, details = action(fault)
        record = FaultRecord(fault.kind, target, started, time.monotonic(), started_wall, time.time(), details)
        self.records.append(record)
        print(f"  [{started - self.driver.report.started_at:7.1f}s] {fault.kind:22} {target:24} "
              f"{record.seconds:6.1f}s {_brief(details)}", flush=True)
        return record

    def _kill_and_restart(self, process: ServiceProcess, fault: Fault) -> tuple[str, dict]:
        pid = process.kill()
        time.sleep(fault.restart_delay)
        process.start()
        ready = process.wait_ready()
        return process.name, {"pid": pid, "down_seconds": round(fault.restart_delay, 1),
                              "ready_seconds": round(ready, 1)}

    def _kill_generator(self, fault: Fault) -> tuple[str, dict]:
        running = self.cluster.running_generators()
        return self._kill_and_restart(running[int(fault.pick * len(running))], fault)

    def _kill_store(self, fault: Fault) -> tuple[str, dict]:
        stores = self.cluster.store_processes
        return self._kill_and_restart(stores[int(fault.pick * len(stores))], fault)

    def _kafka(self, fault: Fault) -> tuple[str, dict]:
        self.cluster.restart_kafka()
        return "kafka", {}

    def _postgres(self, fault: Fault) -> tuple[str, dict]:
        self.cluster.postgres.stop()
        time.sleep(fault.outage)
        self.cluster.postgres.start()
        return "postgresql", {"outage_seconds": round(fault.outage, 1)}

    def _poison(self, fault: Fault) -> tuple[str, dict]:
        records = inject_poison(self.cluster.bootstrap, copies=self.poison_copies, kinds=self.poison_kinds)
        self.poison += records
        # Until both groups committed past the poison, a crash would dead-letter it again; wait for that, so the
        # dead-letter topic can be checked exactly. A group that never gets past it shows up in the checks.
        settled = wait_consumed(self.cluster.bootstrap, [GENERATOR_GROUP, STORE_GROUP], records,
                                timeout=POISON_SETTLE_SECONDS)
        return "feedback.submitted.v1", {"records": len(records),
                                         "consumed_seconds": None if settled is None else round(settled, 1)}

    def _scale_up(self, fault: Fault) -> tuple[str, dict]:
        added = [process for process in self.cluster.generators if process.pid() is None]
        for process in added:
            process.start()
        for process in added:
            process.wait_ready()
        return "+" + ",".join(p.name for p in added), {"generators": len(self.cluster.running_generators())}

    def _scale_down(self, fault: Fault) -> tuple[str, dict]:
        removed = [process for process in self.cluster.generators[1:] if process.pid() is not None]
        for process in removed:
            process.terminate()
        return "-" + ",".join(p.name for p in removed), {"generators": len(self.cluster.running_generators())}

    def _probe(self, fault: Fault) -> tuple[str, dict]:
        """Freeze the generators, let a burst of feedback queue up in Kafka, thaw them: they drain it flat out."""
        generators = self.cluster.running_generators()
        for process in generators:
            _signal(process, signal.SIGSTOP)
        try:
            numbers = self.driver.burst(self.burst)
            deadline = time.monotonic() + FREEZE_SECONDS
            while time.monotonic() < deadline and self.driver.accepted_numbers(numbers) < len(numbers):
                time.sleep(0.2)
        finally:
            for process in generators:
                _signal(process, signal.SIGCONT)
        return f"{len(generators)} generator(s)", {"generators": len(generators), "burst": len(numbers),
                                                  "resumed_wall": time.time()}


def _signal(process: ServiceProcess, sig: signal.Signals) -> None:
    pid = process.pid()
    if pid is not None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            log.warning("process gone before %s", sig.name)


def _brief(details: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in details.items() if key != "resumed_wall")
