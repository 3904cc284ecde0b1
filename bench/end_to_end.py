"""End to end: from ``POST /v1/feedback`` to the decision visible in the store, at a fixed arrival rate.

The whole pipeline runs: feedback-api, policy-generator (openai provider against ``bench.llm_server`` answering
at once: LLM latency 0), policy-store on PostgreSQL, with ``SEED_POLICIES`` policies known. An open-loop sender
posts a steady mix at a fixed rate — repeats of known lessons, new lessons, comments naming nothing — each
request at its scheduled time whether or not earlier ones have been answered (``bench.http_client``; its lag
behind the schedule is reported), each with an ``Idempotency-Key`` so that its feedback id is known before it
is sent. A watcher queries the store's database
every ``POLL_SECONDS`` for those feedbacks whose status is no longer ``pending`` — what ``GET /v1/feedback/{id}``
would show; a feedback's latency is from the start of its POST to the first query that sees it decided, so it
is at most ``POLL_SECONDS`` late.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import uvloop

from bench.harness import Context, wait_for
from bench.http_client import HttpPool
from bench.pipeline import (
    DecisionTail,
    generator_environment,
    publish_policies,
    start_api,
    start_generator,
    start_llm,
    start_store,
)
from bench.profiling import profiled
from bench.results import Comparison, Latency, Outcome, RatioStyle, Target
from bench.workload import mixed_feedback
from feedback_api.idempotency import feedback_id_for

NAME = "end-to-end"
POLL_SECONDS = 0.01
SEED_POLICIES = 1_000
# Lessons of the warm-up feedback: far from those of the measured stream (lesson numbers repeat every 27,000).
WARM_UP_OFFSET = 20_000
BUDGET_SECONDS = 0.300
USER = "bench-e2e"
# How long after the last POST the decisions may take to show before the rest count as not decided.
DRAIN_SECONDS = 60.0


# The target's rate with the default settings; then a rate low enough for the generator's CPU to keep up on
# this machine, with the default settings and with the consumers' poll timeouts cut to 20 ms. consume() waits
# for a full batch or the timeout, so below a batch per timeout every hop waits its whole timeout (1 s in the
# generator, 0.5 s in the store); the last scenario shows what taking the records already fetched, without
# waiting, would give.
SHORT_POLLS = {"GENERATOR_POLL_TIMEOUT_SECONDS": "0.02", "STORE_POLL_TIMEOUT_SECONDS": "0.02"}
SCENARIOS = (
    ("default settings", 200, 30, {}),
    ("default settings", 5, 60, {}),
    ("poll timeouts 20 ms", 5, 60, SHORT_POLLS),
)


def run(ctx: Context) -> Outcome:
    """p50/p99 from POST to visible in the store: at 200/s, then at 5/s with default and short poll timeouts."""
    outcome = Outcome(NAME)
    for number, (label, rate, seconds, settings) in enumerate(SCENARIOS):
        _scenario(ctx, outcome, label, rate if not ctx.quick else rate / 4, ctx.scale(seconds, 6), settings,
                  with_target=number == 0)
        ctx.run.stop_services()
    return outcome


def _scenario(ctx: Context, outcome: Outcome, label: str, rate: float, seconds: float, settings: dict[str, str], *,
              with_target: bool) -> None:
    bench = ctx.run
    known = int(ctx.scale(SEED_POLICIES, 200))
    topics = bench.topics(NAME, partitions=12)
    database = bench.database(NAME)
    publish_policies(bench.bootstrap, topics.decisions, known)
    llm = start_llm(bench, latency=0.0)
    api = start_api(bench, topics)
    generator_settings = {key: value for key, value in settings.items() if key.startswith("GENERATOR_")}
    store_settings = {key: value for key, value in settings.items() if key.startswith("STORE_")}
    generator = start_generator(bench, generator_environment(bench, topics, llm, group=f"{topics.prefix}-gen",
                                                             **generator_settings))
    store = start_store(bench, topics, database, **store_settings)
    for service in (api, generator, store):
        service.wait_ready()
    with bench.connect(database) as connection:
        wait_for(lambda: connection.execute("SELECT count(*) FROM policies").fetchone()[0] >= known, timeout=600,
                 what=f"the {known} known policies in the store", interval=0.5)

    token = bench.token(USER, "user")
    # A few feedbacks first, so that connections, caches and the consumers' fetch sessions are warm.
    uvloop.run(_send(api.url, token, rate=20, count=20, offset=WARM_UP_OFFSET, known=known, sent={}))
    watcher = _Watcher(bench.connect(database))
    tail = DecisionTail(bench.bootstrap, topics.decisions, wanted=_feedback_ids(rate * seconds))
    services = {"feedback-api": api, "policy-generator": generator, "policy-store": store, "llm-server": llm}
    cpu_before = {name: service.cpu() for name, service in services.items()}
    label = f"{rate:.0f}/s, {label}"
    tag = label.replace(" ", "-").replace("/", "-").replace(",", "")
    try:
        with profiled(ctx, generator, f"{NAME}-{tag}-generator"), profiled(ctx, store, f"{NAME}-{tag}-store"):
            sender = uvloop.run(_send(api.url, token, rate=rate, count=int(rate * seconds), offset=0, known=known,
                                      sent=watcher.outstanding, lock=watcher.lock))
            drained = watcher.wait_drained(timeout=DRAIN_SECONDS)
        pending = watcher.give_up()
        elapsed = time.monotonic() - sender.started
        cpu = {name: (service.cpu() - cpu_before[name]) / elapsed for name, service in services.items()}
    finally:
        watcher.close()
        tail.close()
    decided_after = [tail.arrivals[key] - sent for key, sent in watcher.sent_at.items() if key in tail.arrivals]
    stored_after = [watcher.seen_at[key] - tail.arrivals[key] for key in watcher.seen_at if key in tail.arrivals]

    latency = Latency.of(watcher.latencies + pending) if watcher.latencies or pending else None
    # Feedback not seen decided counts with the time it had waited when the watch ended: the percentiles are then
    # lower bounds, and the measure's name says so.
    bound = "" if drained else " (at least)"
    outcome.add(f"POST → visible p50, {label}{bound}", latency.p50 if latency else None, "s",
                reference=BUDGET_SECONDS, reference_name="p99 budget")
    outcome.add(f"POST → visible p99, {label}{bound}", latency.p99 if latency else None, "s",
                reference=BUDGET_SECONDS, reference_name="p99 budget",
                target=Target(Comparison.BELOW, BUDGET_SECONDS, on="value") if with_target else None)
    achieved = sender.sent_rate()
    if with_target:
        outcome.add("arrival rate the sender kept", achieved, "req/s", reference=rate,
                    reference_name="scheduled", style=RatioStyle.PERCENT)
    outcome.note(f"{label}: {sender.accepted:,} of {sender.scheduled:,} feedbacks accepted (202), sent over "
                 f"{seconds:.0f} s at {achieved:.0f}/s with {known:,} policies known (of every ten: five "
                 f"near-verbatim repeats of known lessons, four new lessons, one naming nothing); "
                 f"{len(watcher.latencies):,} seen decided"
                 + ("" if drained else f", {len(pending):,} still pending {DRAIN_SECONDS:.0f} s after the last"))
    if decided_after and stored_after:
        decided, stored = Latency.of(decided_after), Latency.of(stored_after)
        outcome.note(f"{label}: POST → decision committed in Kafka p50 {decided.p50 * 1000:.0f} ms, "
                     f"p99 {decided.p99 * 1000:.0f} ms; committed → visible in the store p50 "
                     f"{stored.p50 * 1000:.0f} ms, p99 {stored.p99 * 1000:.0f} ms")
    outcome.note(f"{label}: sender lag behind schedule p99 {Latency.of(sender.lags).p99 * 1000:.1f} ms; POST (202) "
                 f"p50 {Latency.of(sender.post_latencies).p50 * 1000:.1f} ms, "
                 f"p99 {Latency.of(sender.post_latencies).p99 * 1000:.1f} ms; CPU (cores) "
                 + ", ".join(f"{name} {used:.2f}" for name, used in cpu.items()))


class _Sender:
    def __init__(self, scheduled: int) -> None:
        self.scheduled = scheduled
        self.accepted = 0
        self.lags: list[float] = []
        self.post_latencies: list[float] = []
        self.started = time.monotonic()
        self.finished = self.started
        self.sent_times: list[float] = []

    def sent_rate(self) -> float:
        """Requests sent per second over the sending window."""
        if len(self.sent_times) < 2:
            return 0.0
        return (len(self.sent_times) - 1) / (max(self.sent_times) - min(self.sent_times))


async def _send(url: str, token: str, *, rate: float, count: int, offset: int, known: int, sent: dict[str, float],
                lock: threading.Lock | None = None) -> _Sender:
    """Post ``count`` feedbacks at ``rate`` per second; ``sent`` gets each feedback id and its send time."""
    result = _Sender(count)
    pool = HttpPool.for_url(url, {"Authorization": f"Bearer {token}"})
    bodies = [json.dumps(mixed_feedback(offset + number, known=known)[0]).encode() for number in range(count)]

    async def post(number: int, due: float) -> None:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        key = f"e2e-{offset + number}"
        began = time.monotonic()
        result.lags.append(began - due)
        result.sent_times.append(began)
        if lock is not None:
            with lock:
                sent[feedback_id_for(USER, key)] = began
        response = await pool.request("POST", "/v1/feedback", bodies[number], {"Idempotency-Key": key})
        result.post_latencies.append(time.monotonic() - began)
        if response.status == 202:
            result.accepted += 1
        elif lock is not None:
            with lock:
                sent.pop(feedback_id_for(USER, key), None)

    start = time.monotonic() + 0.2
    result.started = start
    try:
        await asyncio.gather(*(post(number, start + number / rate) for number in range(count)))
    finally:
        pool.close()
    result.finished = time.monotonic()
    return result


class _Watcher:
    """Polls the store's database for decided feedback; records each one's latency from its POST."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.outstanding: dict[str, float] = {}
        self.latencies: list[float] = []
        self.sent_at: dict[str, float] = {}
        self.seen_at: dict[str, float] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visibility-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                waiting = list(self.outstanding)
            if waiting:
                # The query's snapshot is taken when it starts: a row it sees was visible by then.
                looked = time.monotonic()
                rows = self.connection.execute(
                    "SELECT feedback_id FROM feedback WHERE status <> 'pending' AND feedback_id = ANY(%s)",
                    (waiting,)).fetchall()
                with self.lock:
                    for (feedback_id,) in rows:
                        sent = self.outstanding.pop(feedback_id, None)
                        if sent is not None:
                            self.latencies.append(looked - sent)
                            self.sent_at[feedback_id], self.seen_at[feedback_id] = sent, looked
            self._stop.wait(POLL_SECONDS)

    def wait_drained(self, timeout: float) -> bool:
        """Wait until every accepted feedback is seen decided; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.outstanding:
                    return True
            time.sleep(0.05)
        return False

    def give_up(self) -> list[float]:
        """Stop waiting for the feedback not seen decided; how long each had waited by now."""
        now = time.monotonic()
        with self.lock:
            waited = [now - sent for sent in self.outstanding.values()]
            self.outstanding.clear()
        return waited

    def close(self) -> None:
        """Stop polling and close the connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.connection.close()


def _feedback_ids(count: float) -> set[str]:
    """The feedback ids the measured stream will have (the Idempotency-Keys are known in advance)."""
    return {feedback_id_for(USER, f"e2e-{number}") for number in range(int(count))}
