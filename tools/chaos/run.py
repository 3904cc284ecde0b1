"""One chaos run from start to verdict: servers up, load and faults, rest, checks, servers down."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from policyloop_common.events import FEEDBACK_SUBMITTED_TOPIC, POLICY_DECISIONS_TOPIC, dead_letter_topic
from tools.chaos.cluster import DATABASE, GENERATOR_GROUP, STORE_GROUP, ChaosCluster
from tools.chaos.controller import FaultController, FaultRecord
from tools.chaos.driver import DriverReport, FeedbackDriver
from tools.chaos.feedback_mix import FeedbackMix
from tools.chaos.measures import Recovery, Throughput, latency_seconds, recoveries, throughputs
from tools.chaos.observer import StoreObserver
from tools.chaos.poison import KINDS as POISON_KINDS
from tools.chaos.quiescence import wait_quiescent
from tools.chaos.schedule import ScheduleSpec, build_schedule
from tools.chaos.topic_reader import read_committed
from tools.chaos.verification import Verdict, parse_decisions, verify

# Both consume feedback.submitted.v1 and dead-letter what they cannot read, each in its own group.
POISON_READERS = 2


@dataclass(frozen=True)
class ChaosParameters:
    """What a run does; the defaults are those of ``make chaos``."""

    feedbacks: int = 5000
    kills: int = 12
    seed: int = 1
    rate: float = 5.0  # steady feedbacks per second
    concurrency: int = 32
    poison_copies: int = 2  # of each kind of poison
    poison_kinds: tuple[str, ...] = POISON_KINDS
    burst: int = 300  # feedbacks per throughput probe
    scaling: bool = True  # generators 1 -> 3 -> 1
    probes: bool = True
    broker_restarts: int = 1
    postgres_outages: int = 1
    postgres_outage_seconds: tuple[float, float] = (10.0, 20.0)
    stores: int = 1
    partitions: int = 12
    quiescence_timeout: float = 600.0
    keep_files: bool = False

    @property
    def burst_total(self) -> int:
        """Feedbacks sent in bursts (one per scaling phase)."""
        return min(self.burst, self.feedbacks // 10) * (3 if self.scaling else 1) if self.probes else 0

    @property
    def load_seconds(self) -> float:
        """How long the steady load lasts."""
        return (self.feedbacks - self.burst_total) / self.rate


@dataclass
class ChaosResult:
    """Everything a run measured and found."""

    parameters: ChaosParameters
    verdict: Verdict = field(default_factory=Verdict)
    driver: DriverReport = field(default_factory=DriverReport)
    faults: list[FaultRecord] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    throughputs: list[Throughput] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    quiescent: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # setup, load, quiescence, checks, total
    failed_store_polls: int = 0
    files: Path | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        """Nothing lost, nothing doubled, the dead-letter topic exact, the store in agreement, no crash."""
        return self.error is None and self.verdict.passed and not self.driver.abandoned


def run_chaos(parameters: ChaosParameters) -> ChaosResult:
    """Run the whole thing; servers and processes are gone afterwards whatever happened."""
    result = ChaosResult(parameters)
    began = time.monotonic()
    cluster = ChaosCluster(partitions=parameters.partitions, stores=parameters.stores,
                           max_generators=3 if parameters.scaling else 1, keep_files=parameters.keep_files)
    print(f"chaos: servers and services under {cluster.home}", flush=True)
    try:
        cluster.start()
        result.seconds["setup"] = time.monotonic() - began
        _load_and_faults(cluster, parameters, result)
    except BaseException as error:
        # Interrupted or crashed: the run counts as failed, so its files are kept.
        result.error = f"{type(error).__name__}: {error}"
        raise
    finally:
        # A failed run keeps its logs and data: they are the evidence.
        cluster.keep_files = parameters.keep_files or not result.passed
        result.files = cluster.home if cluster.keep_files else None
        try:
            cluster.stop()
        finally:
            cluster.kill_everything()
        result.seconds["total"] = time.monotonic() - began
    return result


def _load_and_faults(cluster: ChaosCluster, parameters: ChaosParameters, result: ChaosResult) -> None:
    assert cluster.api is not None
    mix = FeedbackMix(parameters.feedbacks, parameters.seed)
    driver = FeedbackDriver(api_url=cluster.api.url, body=mix.body,
                            steady=parameters.feedbacks - parameters.burst_total, bursts=parameters.burst_total,
                            rate=parameters.rate, concurrency=parameters.concurrency, token=cluster.token,
                            key_prefix=f"chaos-{parameters.seed}")
    faults = build_schedule(ScheduleSpec(
        duration=parameters.load_seconds, kills=parameters.kills, seed=parameters.seed,
        broker_restarts=parameters.broker_restarts, postgres_outages=parameters.postgres_outages,
        postgres_outage_seconds=parameters.postgres_outage_seconds,
        poison=parameters.poison_copies > 0 and bool(parameters.poison_kinds),
        scaling=parameters.scaling, probes=parameters.probes))
    controller = FaultController(cluster, driver, poison_copies=parameters.poison_copies,
                                 poison_kinds=parameters.poison_kinds,
                                 burst=parameters.burst_total // (3 if parameters.scaling else 1))
    observer = StoreObserver(cluster.postgres.port, DATABASE)
    observer.start()
    print(f"chaos: {parameters.feedbacks} feedbacks over {parameters.load_seconds:.0f}s, {len(faults)} faults",
          flush=True)
    loaded = time.monotonic()
    driver.start()
    try:
        try:
            controller.run(faults, driver.report.started_at)
        finally:
            driver.finish()
        driver.join()
        result.seconds["load"] = time.monotonic() - loaded
        print(f"chaos: load done, {len(driver.report.accepted)} accepted; waiting for quiescence", flush=True)
        rested = time.monotonic()
        accepted_ids = {a.feedback_id for a in driver.report.accepted.values()}
        result.quiescent = wait_quiescent(
            undecided=lambda: len(accepted_ids - observer.decided().keys()), bootstrap=cluster.bootstrap,
            groups=[GENERATOR_GROUP, STORE_GROUP], timeout=parameters.quiescence_timeout)
        result.seconds["quiescence"] = time.monotonic() - rested
    finally:
        driver.abort()
        observer.stop()
    checked = time.monotonic()
    decisions, unreadable = parse_decisions(read_committed(cluster.bootstrap, POLICY_DECISIONS_TOPIC))
    result.verdict = verify(
        accepted=accepted_ids, decisions=decisions, unreadable_decisions=unreadable,
        submitted=read_committed(cluster.bootstrap, FEEDBACK_SUBMITTED_TOPIC),
        dead_letters=read_committed(cluster.bootstrap, dead_letter_topic(FEEDBACK_SUBMITTED_TOPIC)),
        poison=controller.poison, poison_readers=POISON_READERS,
        database_dsn=f"host=127.0.0.1 port={cluster.postgres.port} user=postgres dbname={DATABASE}")
    result.seconds["checks"] = time.monotonic() - checked
    accepted = list(driver.report.accepted.values())
    decided_at = observer.decided()
    result.driver = driver.report
    result.faults = controller.records
    result.recoveries = recoveries(controller.records, accepted, decided_at)
    result.throughputs = throughputs(controller.records, accepted, decisions)
    result.latency = latency_seconds(accepted, decided_at)
    result.failed_store_polls = observer.failed_polls
