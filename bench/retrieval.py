"""Retrieval: latency of ``GET /v1/policies/relevant`` with 10,000 active policies in the store.

The policies arrive the way they do in production — PolicyGenerated events on the decisions topic,
materialized by policy-store — and the benchmark waits until all are active. Then one client asks one question
at a time over a keep-alive connection (the assistant asks before each answer): half the questions are those
of known lessons, half are worded differently, so that both strong and weak matches are ranked.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import uvloop

from bench.harness import Context, wait_for, wait_listening
from bench.http_client import HttpPool
from bench.pipeline import publish_policies, start_store
from bench.profiling import profiled
from bench.results import Comparison, Latency, Outcome, Target
from bench.workload import Lesson

NAME = "retrieval"
BUDGET_SECONDS = 0.025
# A slow endpoint gets fewer requests rather than a run of many minutes; enough remain for a p99.
MIN_REQUESTS = 100
MAX_SECONDS = 120.0


def run(ctx: Context) -> Outcome:
    """p50/p99 of the relevant-policies endpoint, sequential requests, after a warm-up."""
    outcome = Outcome(NAME)
    bench = ctx.run
    policies = int(ctx.scale(10_000, 1_000))
    requests = int(ctx.scale(400, 40))
    topics = bench.topics(NAME, partitions=12)
    database = bench.database(NAME)
    publish_policies(bench.bootstrap, topics.decisions, policies)
    store = start_store(bench, topics, database)
    store.wait_ready()
    with bench.connect(database) as connection:
        wait_for(lambda: connection.execute("SELECT count(*) FROM policies WHERE status = 'active'")
                 .fetchone()[0] >= policies, timeout=900, what=f"{policies} active policies", interval=0.5)

    questions = [_question(number, policies) for number in range(requests)]
    headers = {"Authorization": f"Bearer {bench.token('bench-assistant', 'assistant')}"}
    uvloop.run(_ask(store.url, headers, questions[:20]))  # warm-up: connection, caches
    cpu_before = store.cpu()
    with profiled(ctx, store, NAME):
        durations, found = uvloop.run(_ask(store.url, headers, questions))
    cpu = store.cpu() - cpu_before
    # The same client asking a server that answers at once: what the client adds to each figure.
    trivial = bench.start("trivial-http", "bench.trivial_server")
    wait_listening(trivial.port, what="trivial server")
    floor = Latency.of(uvloop.run(_ask(trivial.url, headers, questions, check=False))[0])
    latency = Latency.of(durations)
    outcome.add(f"/v1/policies/relevant p50, {policies:,} policies", latency.p50, "s", reference=BUDGET_SECONDS,
                reference_name="p99 budget")
    outcome.add(f"/v1/policies/relevant p99, {policies:,} policies", latency.p99, "s", reference=BUDGET_SECONDS,
                reference_name="p99 budget", target=Target(Comparison.BELOW, BUDGET_SECONDS, on="value"))
    outcome.note(f"{len(durations)} sequential requests (limit 5; at least {MIN_REQUESTS}, then up to "
                 f"{MAX_SECONDS:.0f} s) after 20 warm-up ones; {found} returned at least "
                 f"one policy; {cpu / len(durations) * 1000:.1f} ms of policy-store CPU per request")
    outcome.note(f"the client's own share: p50 {floor.p50 * 1000:.2f} ms, p99 {floor.p99 * 1000:.2f} ms against a "
                 f"server answering at once (bench.trivial_server)")
    return outcome


def _question(number: int, policies: int) -> str:
    lesson = Lesson.number((number * 7_919) % policies)
    if number % 2:
        return lesson.question
    return f"Which {lesson.table} rank highest by {lesson.concept}?"


async def _ask(url: str, headers: dict[str, str], questions: list[str], check: bool = True,
               max_seconds: float = MAX_SECONDS) -> tuple[list[float], int]:
    """Ask the questions one after the other (at least ``MIN_REQUESTS``, then until ``max_seconds``); the
    duration of each and how many found a policy."""
    pool = HttpPool.for_url(url, headers)
    durations: list[float] = []
    found = 0
    deadline = time.monotonic() + max_seconds
    try:
        for question in questions:
            if len(durations) >= MIN_REQUESTS and time.monotonic() > deadline:
                break
            path = f"/v1/policies/relevant?{urlencode({'question': question, 'limit': 5})}"
            began = time.perf_counter()
            response = await pool.request("GET", path)
            durations.append(time.perf_counter() - began)
            if check:
                if response.status != 200:
                    raise RuntimeError(f"relevant policies answered {response.status}: {response.body[:300]!r}")
                found += bool(response.json()["items"])  # type: ignore[index]
    finally:
        pool.close()
    return durations, found
