"""Store: events materialized per second by policy-store, against a raw batched INSERT of the same rows.

A backlog of feedback and decision events (six new policies, three duplicates and one not-actionable per ten
feedbacks) is materialized and the benchmark counts ``processed_events`` until all are in — once by one process,
once by two in one consumer group (the way the store scales: replicas up to the partition count), each on topics
and a database of their own. The processes start on empty topics, and the backlog comes as one Kafka transaction
once the group has given each process its share of the partitions. The reference takes the rows the store wrote
(every table, of the one-process run) and inserts them into a fresh database of the same schema with psycopg,
``executemany`` in transactions of 500 rows (the store's batch size): the database's own cost for the same data,
without Kafka, decoding, the ORM or the materializer's checks. It takes a few seconds, so it is run three times,
each into a fresh database, and the median is the reference.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Producer
from psycopg.types.json import Jsonb

from bench.harness import BenchRun, Context, tree_cpu_seconds, wait_for
from bench.pipeline import wait_group_assigned
from bench.profiling import profiled
from bench.results import Comparison, Outcome, Target
from bench.workload import decision_events
from policyloop_common.cloudevents import encode
from policyloop_common.kafka.producer import produce_when_room

NAME = "store"
TABLES = ("feedback", "policies", "policy_history", "policy_evidence", "processed_events")
BATCH_ROWS = 500
RAW_RUNS = 3
_JSONB = 3802


@dataclass
class Materialized:
    """One materialization of a backlog: the rate and what it cost, and the rows the store wrote."""

    rate: float
    total: int
    first: int
    seconds: float
    store_cpu: float
    database_cpu: float
    rows: dict[str, tuple[list[tuple[str, bool]], list[tuple]]]


def run(ctx: Context) -> Outcome:
    """Materialize a backlog with one policy-store process and with two, then insert the same rows raw; compare
    events per second."""
    outcome = Outcome(NAME)
    bench = ctx.run
    pairs = int(ctx.scale(10_000, 1_000))
    one = _materialize(ctx, pairs, processes=1)
    two = _materialize(ctx, pairs, processes=2)
    postgres = bench.postgres.pid()

    statements = [_statement(table, columns, values) for table, (columns, values) in one.rows.items()]
    # A few seconds each, so a moment of the machine's slowness weighs on one run more than on the store's
    # minute: the median of three.
    raw_runs = sorted(_raw_insert(bench, statements, postgres) for _ in range(RAW_RUNS))
    raw_seconds, raw_database_cpu = raw_runs[len(raw_runs) // 2]
    raw_rate = one.total / raw_seconds

    outcome.add("events materialized", one.rate, "ev/s", reference=raw_rate,
                reference_name="raw batched INSERT, same rows", target=Target(Comparison.AT_LEAST, 0.50))
    outcome.add("events materialized, two processes", two.rate, "ev/s", reference=raw_rate,
                reference_name="raw batched INSERT, same rows", target=Target(Comparison.AT_LEAST, 0.50))
    row_count = sum(len(values) for _, values in one.rows.values())
    outcome.note(f"{one.total:,} events ({pairs:,} feedbacks and their decisions) on 12 partitions, committed in "
                 f"one transaction once the store's group held every partition; rate measured from the first "
                 f"batch applied to the last event: one process {one.seconds:.1f} s ({one.first:,} in at the "
                 f"start), two processes in one group, each its share of every topic, {two.seconds:.1f} s "
                 f"({two.first:,} in at the start)")
    for label, result in (("one process", one), ("two processes", two)):
        measured = result.total - result.first
        outcome.note(f"{label}: policy-store used {result.store_cpu / result.seconds:.2f} cores "
                     f"({result.store_cpu / measured * 1000:.2f} ms CPU per event), PostgreSQL (server and "
                     f"backends) {result.database_cpu / result.seconds:.2f} cores "
                     f"({result.database_cpu / measured * 1000:.2f} ms CPU per event); batch size 500, the default")
    outcome.note(f"raw INSERT: {row_count:,} rows in {len(TABLES)} tables (those of the one-process run), "
                 f"executemany in transactions of {BATCH_ROWS} rows, the median of {RAW_RUNS} runs into fresh "
                 f"databases: {raw_seconds:.1f} s ({', '.join(f'{seconds:.1f}' for seconds, _ in raw_runs)} s); "
                 f"PostgreSQL used {raw_database_cpu / one.total * 1000:.2f} ms CPU per event")
    return outcome


def _materialize(ctx: Context, pairs: int, *, processes: int) -> Materialized:
    """A backlog of ``pairs`` feedbacks and decisions materialized by ``processes`` policy-store processes into a
    fresh database.

    The processes start first, on empty topics, and the backlog comes once the group has given each its share of
    the partitions, committed as one Kafka transaction: the store reads only committed records, so every process
    sees the whole backlog at the same moment, and none has taken part of another's share before it joined.
    """
    bench = ctx.run
    topics = bench.topics(NAME, partitions=12)
    database = bench.database(NAME)
    group = f"{topics.prefix}-store"
    env = bench.environment(**topics.environment(), DATABASE_URL=database, STORE_GROUP_ID=group)
    stores = [bench.start("policy-store", "policy_store.main", port_variable="POLICY_STORE_PORT", env=env)
              for _ in range(processes)]
    # Every topic the store reads, 12 partitions each.
    wait_group_assigned(bench.bootstrap, group, processes, partitions=12 * len(topics.environment()))
    total = _publish_backlog(bench.bootstrap, topics.feedback, topics.decisions, pairs)
    with bench.connect(database) as connection:
        def applied() -> int:
            return connection.execute("SELECT count(*) FROM processed_events").fetchone()[0]

        first = wait_for(applied, timeout=180, what="the first events materialized", interval=0.02)
        postgres = bench.postgres.pid()
        started, database_cpu_before = time.perf_counter(), tree_cpu_seconds(postgres)
        cpu_before = sum(store.cpu() for store in stores)
        label = f"{NAME}-materialize" if processes == 1 else f"{NAME}-materialize-x{processes}"
        with profiled(ctx, stores[0], label):
            wait_for(lambda: applied() >= total, timeout=900, what=f"all {total} events materialized",
                     interval=0.05)
        seconds = time.perf_counter() - started
        store_cpu = sum(store.cpu() for store in stores) - cpu_before
        database_cpu = tree_cpu_seconds(postgres) - database_cpu_before
        rows = {table: connection.execute(f"SELECT * FROM {table}") for table in TABLES}
        rows = {table: (_columns(cursor), cursor.fetchall()) for table, cursor in rows.items()}
    bench.stop_services()
    return Materialized(rate=(total - first) / seconds, total=total, first=first, seconds=seconds,
                        store_cpu=store_cpu, database_cpu=database_cpu, rows=rows)


def _publish_backlog(bootstrap: str, feedback_topic: str, decisions_topic: str, pairs: int) -> int:
    """Publish the feedbacks and their decisions in one transaction; the number of events."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                         "enable.idempotence": True, "partitioner": "murmur2_random",
                         "transactional.id": f"bench-store-backlog-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    count = 0
    for feedback, decision in decision_events(pairs):
        for event in (encode(feedback, source="/policyloop/feedback-api", topic=feedback_topic),
                      encode(decision, source="/policyloop/policy-generator", topic=decisions_topic)):
            produce_when_room(producer, event)
            count += 1
        producer.poll(0)
    producer.commit_transaction(120)
    return count


def _columns(cursor) -> list[tuple[str, bool]]:
    return [(column.name, column.type_code == _JSONB) for column in cursor.description]


def _statement(table: str, columns: list[tuple[str, bool]], values: list[tuple]) -> tuple[str, list[tuple]]:
    """The INSERT of ``table`` and its rows ready to bind (JSON columns wrapped for psycopg)."""
    names = ", ".join(f'"{name}"' for name, _ in columns)
    placeholders = ", ".join("%s" for _ in columns)
    jsonb = [is_jsonb for _, is_jsonb in columns]
    prepared = [tuple(Jsonb(value) if flag and value is not None else value
                      for value, flag in zip(row, jsonb, strict=True)) for row in values]
    return f"INSERT INTO {table} ({names}) VALUES ({placeholders})", prepared


def _raw_insert(bench: BenchRun, statements: list[tuple[str, list[tuple]]], postgres: int) -> tuple[float, float]:
    """Every row inserted into a fresh database; seconds taken and PostgreSQL's CPU seconds."""
    with bench.connect(bench.database(f"{NAME}_raw")) as connection:
        started, database_before = time.perf_counter(), tree_cpu_seconds(postgres)
        for statement, values in statements:
            _insert(connection, statement, values)
        return time.perf_counter() - started, tree_cpu_seconds(postgres) - database_before


def _insert(connection, statement: str, values: list[tuple]) -> None:
    with connection.cursor() as cursor:
        for start in range(0, len(values), BATCH_ROWS):
            with connection.transaction():
                cursor.executemany(statement, values[start:start + BATCH_ROWS])
