"""Ingest: accepted-and-acknowledged feedback per second through feedback-api, against its two ceilings.

- feedback-api as it runs in production (rate limits off), each 202 sent after Kafka's acks=all acknowledgement;
- the HTTP ceiling: the same application with a publisher that acknowledges at once (``bench.ack_publisher``);
- the broker ceiling: the raw confluent-kafka producer publishing the same events with the same durable settings
  and as many in flight as wrk has connections, with no HTTP in front.

wrk drives both HTTP servers with the same Lua script (valid, authenticated feedback; a distinct message id per
request), alternately, so that both see the same machine. wrk against ``bench.trivial_server`` with that script
shows how far the load tool itself reaches.
"""

from __future__ import annotations

import json
import statistics
import time

from confluent_kafka import Producer

from bench.harness import Context, cpu_seconds, wait_listening
from bench.profiling import profiled
from bench.results import Comparison, Latency, Outcome, RatioStyle, Target
from bench.workload import Lesson, feedback_body, feedback_event
from bench.wrk import WrkResult, feedback_script, run_wrk
from policyloop_common.cloudevents import encode
from policyloop_common.kafka.producer import durable_producer_config
from tools.local_stack.processes import read_pid

NAME = "ingest"
CONNECTIONS = 64
_ID_MARK = "@@MESSAGE@@"


def run(ctx: Context) -> Outcome:
    """Measure feedback-api, its HTTP ceiling, its broker ceiling and the load tool's reach."""
    outcome = Outcome(NAME)
    bench = ctx.run
    topics = bench.topics(NAME, partitions=12)
    env = bench.environment(**topics.environment(), RATE_LIMIT_PER_MINUTE="0", RATE_LIMIT_PER_ADDRESS_PER_MINUTE="0")
    api = bench.start("feedback-api", "feedback_api.main", port_variable="FEEDBACK_API_PORT", env=env)
    ceiling = bench.start("http-ceiling", "bench.ack_publisher", port_variable="FEEDBACK_API_PORT", env=env)
    trivial = bench.start("trivial-http", "bench.trivial_server", env=env)
    api.wait_ready()
    ceiling.wait_ready()
    wait_listening(trivial.port, what="trivial server")

    body = json.dumps(feedback_body(Lesson.number(0), message_id=_ID_MARK), ensure_ascii=False)
    prefix, suffix = body.split(_ID_MARK)
    script = feedback_script(method="POST", body_prefix=prefix, body_suffix=suffix, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {bench.token('bench-user', 'user')}"})
    duration = ctx.scale(10, 3)
    rounds = int(ctx.scale(2, 1))

    def load(url: str) -> WrkResult:
        return run_wrk(f"{url}/v1/feedback", script, duration=duration, connections=CONNECTIONS)

    load(api.url)  # warm-up: connections, the producer's first metadata, caches
    load(ceiling.url)
    broker_pid = read_pid(bench.kafka.home / "kafka.pid")
    api_runs: list[WrkResult] = []
    ceiling_runs: list[WrkResult] = []
    api_cpu: list[float] = []
    broker_cpu: list[float] = []
    for number in range(rounds):
        # Alternating the order keeps a slow minute of the machine from favouring one side.
        order = [("api", api), ("ceiling", ceiling)] if number % 2 == 0 else [("ceiling", ceiling), ("api", api)]
        for label, server in order:
            server_before, broker_before = server.cpu(), cpu_seconds(broker_pid) if broker_pid else None
            with profiled(ctx, server, f"{NAME}-{label}"):
                result = load(server.url)
            if label == "api":
                api_runs.append(result)
                api_cpu.append((server.cpu() - server_before) / result.duration)
                if broker_before is not None:
                    broker_cpu.append(((cpu_seconds(broker_pid) or 0.0) - broker_before) / result.duration)
            else:
                ceiling_runs.append(result)
    trivial_run = load(trivial.url)
    broker = _raw_producer(bench.bootstrap, topics.feedback, seconds=duration)

    api_rate = statistics.median(r.rate_of(202) for r in api_runs)
    ceiling_rate = statistics.median(r.rate_of(202) for r in ceiling_runs)
    api_best = _median_run(api_runs)
    ceiling_best = _median_run(ceiling_runs)
    outcome.add("feedback-api accepted (202 after Kafka ack)", api_rate, "req/s", reference=ceiling_rate,
                reference_name="HTTP ceiling", target=Target(Comparison.AT_LEAST, 0.70))
    outcome.add("feedback-api p50 latency", api_best.p50, "s", reference=ceiling_best.p50,
                reference_name="HTTP ceiling p50", style=RatioStyle.TIMES)
    outcome.add("feedback-api p99 latency", api_best.p99, "s", reference=ceiling_best.p99,
                reference_name="HTTP ceiling p99", style=RatioStyle.TIMES)
    outcome.add("feedback-api vs broker ceiling", api_rate, "req/s", reference=broker.rate,
                reference_name="raw producer, ev/s", reference_unit="ev/s")
    outcome.add("broker ceiling ack latency p50", broker.latency.p50, "s", reference=api_best.p50,
                reference_name="feedback-api p50", style=RatioStyle.PERCENT)
    outcome.add("broker ceiling ack latency p99", broker.latency.p99, "s", reference=api_best.p99,
                reference_name="feedback-api p99", style=RatioStyle.PERCENT)
    outcome.add("load tool reach (wrk → trivial server)", trivial_run.rate_of(202), "req/s",
                reference=ceiling_rate, reference_name="HTTP ceiling", style=RatioStyle.TIMES)

    failures = sum(r.requests - r.statuses.get(202, 0) for r in api_runs)
    outcome.note(f"wrk: 1 thread, {CONNECTIONS} connections, {duration:.0f} s per run, {rounds} alternating "
                 f"round(s) per server after a warm-up; medians shown; requests not answered 202 by "
                 f"feedback-api: {failures}")
    for label, runs in (("feedback-api", api_runs), ("HTTP ceiling", ceiling_runs)):
        outcome.note(f"{label}: " + "; ".join(f"{r.rate_of(202):,.0f} req/s, p50 {_ms(r.p50)}, p99 {_ms(r.p99)}"
                                              for r in runs))
    outcome.note(f"CPU while loaded: feedback-api {statistics.mean(api_cpu):.2f} cores, Kafka broker "
                 f"{statistics.mean(broker_cpu) if broker_cpu else float('nan'):.2f} cores, wrk "
                 f"{api_best.cpu_seconds / api_best.duration if api_best.cpu_seconds else float('nan'):.2f} "
                 f"cores (2 cores in all)")
    outcome.note(f"wrk against the trivial server: {trivial_run.rate_of(202):,.0f} req/s using "
                 f"{(trivial_run.cpu_seconds or 0) / trivial_run.duration:.2f} cores — "
                 f"{trivial_run.rate_of(202) / ceiling_rate:.1f}× the HTTP ceiling, so wrk is not the limit")
    outcome.note(f"raw producer: {broker.count:,} events in {broker.seconds:.1f} s with {CONNECTIONS} in flight "
                 f"(acks=all, idempotent, linger 2 ms, as feedback-api's producer)")
    return outcome


def _median_run(runs: list[WrkResult]) -> WrkResult:
    return sorted(runs, key=lambda r: r.rate_of(202))[len(runs) // 2]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


class _ProducerRun:
    def __init__(self, count: int, seconds: float, latencies: list[float]) -> None:
        self.count, self.seconds = count, seconds
        self.rate = count / seconds
        self.latency = Latency.of(latencies)


def _raw_producer(bootstrap: str, topic: str, *, seconds: float) -> _ProducerRun:
    """Publish the same events as fast as acknowledgements allow, ``CONNECTIONS`` in flight, for ``seconds``."""
    producer = Producer(durable_producer_config({"bootstrap.servers": bootstrap}, delivery_timeout_ms=5000))
    lesson = Lesson.number(0)
    events = [encode(feedback_event(lesson), source="/policyloop/feedback-api", topic=topic) for _ in range(2000)]
    latencies: list[float] = []
    in_flight = 0

    def delivered(error, _message, sent=0.0) -> None:
        nonlocal in_flight
        in_flight -= 1
        if error is None:
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    produced = 0
    while time.perf_counter() - started < seconds:
        while in_flight < CONNECTIONS:
            event = events[produced % len(events)]
            sent = time.perf_counter()
            producer.produce(event.topic, key=event.key, value=event.value, headers=event.headers,
                             on_delivery=lambda error, message, sent=sent: delivered(error, message, sent))
            in_flight += 1
            produced += 1
        producer.poll(0.0005)
    producer.flush(10)
    elapsed = time.perf_counter() - started
    return _ProducerRun(len(latencies), elapsed, latencies)
