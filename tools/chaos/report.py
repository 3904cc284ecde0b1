"""The figures of a run as a plain-text table for the terminal and as markdown for docs/chaos.md."""

from __future__ import annotations

import datetime
import os
import platform
from collections import Counter

from tools.chaos.poison import KINDS as POISON_KINDS
from tools.chaos.run import ChaosResult
from tools.chaos.schedule import KILL_GENERATOR, KILL_STORE, RESTART_KAFKA, STOP_POSTGRES


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def summary_rows(result: ChaosResult) -> list[tuple[str, str]]:
    """(figure, value) pairs: the run's table."""
    verdict, driver = result.verdict, result.driver
    kinds = Counter(record.kind for record in result.faults)
    left_out = [kind for kind in POISON_KINDS if kind not in result.parameters.poison_kinds]
    non_202 = {code: count for code, count in sorted(driver.statuses.items()) if code != 202}
    rows = [
        ("feedbacks sent", str(result.parameters.feedbacks)),
        ("accepted (202)", str(verdict.accepted)),
        ("decided (one decision event each)", str(verdict.decided)),
        ("lost (accepted, no decision)", str(len(verdict.lost))),
        ("duplicates (accepted, >1 decision)", str(len(verdict.duplicates))),
        ("decisions for ids never accepted", str(len(verdict.unexpected))),
        ("store rows decided and matching", "yes" if verdict.store_ok else "NO"),
        ("decisions by kind", ", ".join(f"{k} {v}" for k, v in sorted(verdict.decisions_by_kind.items()))),
        ("poison injected / dead letters", f"{verdict.poison_injected} / {verdict.dead_letters} "
                                            f"({'exact' if not verdict.dead_letter_problems else 'WRONG'}: "
                                            "one per record per consumer group)"),
        ("poison kinds", f"{', '.join(result.parameters.poison_kinds) or 'none'} "
                         f"(x{result.parameters.poison_copies} each)"
                         + (f"; not injected: {', '.join(left_out)}" if left_out else "")),
        ("kills", f"{kinds[KILL_GENERATOR] + kinds[KILL_STORE]} (policy-generator {kinds[KILL_GENERATOR]}, "
                  f"policy-store {kinds[KILL_STORE]})"),
        ("broker restarts", str(kinds[RESTART_KAFKA])),
        ("PostgreSQL outages", ", ".join(f"{r.details['outage_seconds']} s" for r in result.faults
                                         if r.kind == STOP_POSTGRES) or "0"),
        ("non-202 answers", ", ".join(f"{code}: {count}" for code, count in non_202.items()) or "none"),
        ("client retries (same Idempotency-Key)", f"{driver.retries} ({driver.transport_errors} without answer)"),
        ("feedback ids published more than once", str(verdict.resubmitted)),
        ("given up by the client", str(len(driver.abandoned))),
        ("latency 202 -> stored decision", ", ".join(f"{k} {v:.1f} s" for k, v in result.latency.items())),
    ]
    for probe in result.throughputs:
        rows.append((f"throughput at {probe.generators} generator(s)",
                     f"{probe.decisions_per_second:.0f} decisions/s "
                     f"(backlog {probe.backlog} in {probe.seconds:.1f} s)"))
    rows.append(("run time", ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())))
    return rows


def recovery_rows(result: ChaosResult) -> list[tuple[str, str, str, str, str]]:
    """(at, fault, target, fault lasted, catch-up time) per fault, in order."""
    started = result.driver.started_at
    return [(f"{r.fault.started - started:.0f} s", r.fault.kind, r.fault.target, _seconds(r.fault.seconds),
             _seconds(r.catch_up_seconds)) for r in result.recoveries]


def text_table(result: ChaosResult) -> str:
    """The table printed at the end of a run."""
    rows = summary_rows(result)
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += ["", "recovery (catch-up: from the fault until all feedback accepted before its end is decided):"]
    lines += [f"  {at:>6}  {fault:<22} {target:<24} lasted {lasted:>7}  caught up after {catch_up}"
              for at, fault, target, lasted, catch_up in recovery_rows(result)]
    verdict = "PASSED" if result.passed else "FAILED"
    lines += ["", f"verdict: {verdict}"]
    lines += [f"  {line}" for line in result.verdict.failures()]
    if result.driver.abandoned:
        lines.append(f"  the client gave up on {len(result.driver.abandoned)} feedbacks")
    if result.error:
        lines.append(f"  error: {result.error}")
    if result.files:
        lines.append(f"  logs and data kept in {result.files}")
    return "\n".join(lines)


def markdown(result: ChaosResult, command: str) -> str:
    """docs/chaos.md: what the suite does, how to run it, and the figures of this run."""
    p = result.parameters
    rows = "\n".join(f"| {name} | {value} |" for name, value in summary_rows(result))
    recoveries = "\n".join(f"| {at} | {fault} | {target} | {lasted} | {catch_up} |"
                           for at, fault, target, lasted, catch_up in recovery_rows(result))
    failures = "\n".join(f"- {line}" for line in result.verdict.failures()) or "- none"
    return f"""# Chaos run

The pipeline under load while its processes, its broker and its database fail, and the check that the promise
of the contract still holds: every accepted feedback (`202`) has exactly one decision event in
`policy.decisions.v1` and exactly one decided row in the store, whatever crashed or was redelivered.

## How to run it

```
make chaos                                   # the full run below: {p.feedbacks} feedbacks, {p.kills} kills
{command}
python -m tools.chaos --feedbacks 400 --kills 3 --seed 7 --rate 4 --no-scaling   # a few minutes
```

`pytest -m e2e tests/e2e/test_chaos.py` runs a shortened version (a few hundred feedbacks, three kills, one broker
restart, one PostgreSQL stop, poison) in `make test`. The run starts its own Kafka broker and PostgreSQL server in
a temporary directory on free ports, so it does not touch `make up`'s stack. Logs and data are removed after a
passing run and kept after a failing one (the path is printed); `--keep` keeps them anyway.

## What happens

1. A private broker (topics with {p.partitions} partitions), a PostgreSQL server with a migrated database,
   feedback-api, one policy-generator (`gen-0`) and {p.stores} policy-store process(es), all with
   `LLM_PROVIDER=offline`. Each generator has its own `GENERATOR_TRANSACTIONAL_ID` (`chaos-gen-<i>`), kept
   across its restarts so that the restarted instance fences the transaction its killed self left open.
2. The load: {p.feedbacks - p.burst_total} feedbacks at {p.rate:g}/s and, if scaling is on, three bursts of
   {p.burst_total // 3 if p.scaling and p.probes else p.burst_total} (see throughput), posted over HTTP by
   50 users with up to {p.concurrency} requests in flight. The bodies come from `tests/data/feedback-cases*.jsonl`
   (every lesson, paraphrases and translations, so most become duplicates), plus generated schema lessons that
   keep creating new policies, comments that teach nothing, and positive ratings, each with a unique message id.
   A `503` or `429` is retried after `Retry-After` with the same body and `Idempotency-Key`, as a client should;
   so is a request that got no answer.
3. The schedule, drawn from the seed: {p.kills} `kill -9`s (the whole process group) split between the
   generators and the store, each restarted after 0.5–5 s; {p.broker_restarts} broker restart(s) (controlled
   stop, start on the same data and ports); {p.postgres_outages} PostgreSQL stop(s) of 10–20 s; the generators
   scaled 1 → 3 → 1 (the extra two stopped with SIGTERM, gracefully); a throughput probe in each phase; and
   {p.poison_copies} record(s) of each kind of poison written straight into `feedback.submitted.v1` with a plain
   producer: text that is not JSON, bytes that are not UTF-8, the wrong schema, an unknown
   `ce_dataschemaversion`, a value over the consumers' 1 MB limit (but under the broker's), no CloudEvents
   headers, an unknown `ce_type` (`--poison-kinds` picks some). The faults are spread over the load,
   each given time to recover before the next unless the run is too short for that.
4. Quiescence: every accepted feedback decided in the store and both consumer groups committed to the end of
   `feedback.submitted.v1` (until then a rebalance could still redeliver something). Readers use
   `read_committed`, so they also wait for transactions left open by killed generators to be fenced.

## What is checked (the only pass/fail conditions)

- every accepted feedback id has exactly one decision event (`PolicyGenerated`, `PolicySkipped` or
  `PolicyGenerationFailed`) in `policy.decisions.v1`, read with `isolation.level=read_committed`: **lost** counts
  those with none, **duplicates** those with more than one;
- no decision event and no row for an id that was never accepted, and a `FeedbackSubmitted` record for every 202;
- exactly one row per accepted id in the store's `feedback` table, decided, and equal to its decision (status,
  policy, reason, duplicate of); every policy row at the latest version its events carry; `processed_events`
  holds each decision event exactly once; no feedback created more than one policy;
- the dead-letter topic `feedback.submitted.v1.dlq` holds exactly the injected poison: each record once per
  consumer group that reads the topic (the generator and the store both do), at its original partition and
  offset, with the expected `dlq_reason`, and nothing else.

Times are measured and printed, never asserted. **Catch-up time** of a fault: from the moment it started until
every feedback accepted before it ended (the killed process ready again, the broker or the database back) is
decided in the store, seen by polling the database; it includes the rebalance (a killed member's partitions wait
for the 15 s session timeout) and draining the backlog. **Throughput** at k generators: in each scaling phase the
running generators are frozen (SIGSTOP, under the session timeout, so nothing rebalances) while a burst is
accepted, then thawed; the rate is the decisions made (by their `ce_time`) from the thaw until that backlog is
decided.

## The last full run

{datetime.date.today().isoformat()}, `{command}`, seed {p.seed}; machine: {os.cpu_count()} cores (`nproc`),
{platform.system()} {platform.machine()}, Python {platform.python_version()}, Kafka, PostgreSQL and all services
on the same machine. Verdict: **{"passed" if result.passed else "FAILED"}**.

| figure | value |
|---|---|
{rows}

| at | fault | target | lasted | caught up after |
|---|---|---|---|---|
{recoveries}

Failed checks:
{failures}
"""

