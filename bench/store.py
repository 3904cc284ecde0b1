"""Store: events materialized per second by policy-store, against a raw batched INSERT of the same rows.

A backlog of feedback and decision events (six new policies, three duplicates and one not-actionable per ten
feedbacks) waits in Kafka; policy-store starts on it and the benchmark counts ``processed_events`` until all are
in. The reference takes the rows the store wrote — every table — and inserts them into a fresh database of the
same schema with psycopg, ``executemany`` in transactions of 500 rows (the store's batch size): the database's
own cost for the same data, without Kafka, decoding, the ORM or the materializer's checks. It takes a few seconds,
so it is run three times, each into a fresh database, and the median is the reference.
"""

from __future__ import annotations

import time

from confluent_kafka import Producer
from psycopg.types.json import Jsonb

from bench.harness import BenchRun, Context, tree_cpu_seconds, wait_for
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


def run(ctx: Context) -> Outcome:
    """Materialize a backlog with policy-store, then insert the same rows raw; compare events per second."""
    outcome = Outcome(NAME)
    bench = ctx.run
    pairs = int(ctx.scale(10_000, 1_000))
    topics = bench.topics(NAME, partitions=12)
    database = bench.database(NAME)
    total = _publish_backlog(bench.bootstrap, topics.feedback, topics.decisions, pairs)

    env = bench.environment(**topics.environment(), DATABASE_URL=database, STORE_GROUP_ID=f"{topics.prefix}-store")
    store = bench.start("policy-store", "policy_store.main", port_variable="POLICY_STORE_PORT", env=env)
    with bench.connect(database) as connection:
        def applied() -> int:
            return connection.execute("SELECT count(*) FROM processed_events").fetchone()[0]

        first = wait_for(applied, timeout=180, what="the first events materialized", interval=0.02)
        postgres = bench.postgres.pid()
        started, cpu_before, database_cpu_before = time.perf_counter(), store.cpu(), tree_cpu_seconds(postgres)
        with profiled(ctx, store, f"{NAME}-materialize"):
            wait_for(lambda: applied() >= total, timeout=900, what=f"all {total} events materialized",
                     interval=0.05)
        seconds = time.perf_counter() - started
        store_cpu = store.cpu() - cpu_before
        database_cpu = tree_cpu_seconds(postgres) - database_cpu_before
        rows = {table: connection.execute(f"SELECT * FROM {table}") for table in TABLES}
        rows = {table: (_columns(cursor), cursor.fetchall()) for table, cursor in rows.items()}
    materialized = (total - first) / seconds
    bench.stop_services()

    statements = [_statement(table, columns, values) for table, (columns, values) in rows.items()]
    # A few seconds each, so a moment of the machine's slowness weighs on one run more than on the store's
    # minute: the median of three.
    raw_runs = sorted(_raw_insert(bench, statements, postgres) for _ in range(RAW_RUNS))
    raw_seconds, raw_database_cpu = raw_runs[len(raw_runs) // 2]
    raw_rate = total / raw_seconds

    outcome.add("events materialized", materialized, "ev/s", reference=raw_rate,
                reference_name="raw batched INSERT, same rows", target=Target(Comparison.AT_LEAST, 0.50))
    row_count = sum(len(values) for _, values in rows.values())
    outcome.note(f"{total:,} events ({pairs:,} feedbacks and their decisions) on 12 partitions; rate measured "
                 f"from the first event applied ({first:,} were in by then) to the last, {seconds:.1f} s")
    outcome.note(f"policy-store used {store_cpu / seconds:.2f} cores ({store_cpu / (total - first) * 1000:.2f} ms "
                 f"CPU per event); batch size 500, the default")
    outcome.note(f"PostgreSQL (server and backends) used {database_cpu / seconds:.2f} cores "
                 f"({database_cpu / (total - first) * 1000:.2f} ms CPU per event)")
    outcome.note(f"raw INSERT: {row_count:,} rows in {len(TABLES)} tables, executemany in transactions of "
                 f"{BATCH_ROWS} rows, the median of {RAW_RUNS} runs into fresh databases: {raw_seconds:.1f} s "
                 f"({', '.join(f'{seconds:.1f}' for seconds, _ in raw_runs)} s); PostgreSQL used "
                 f"{raw_database_cpu / total * 1000:.2f} ms CPU per event")
    return outcome


def _publish_backlog(bootstrap: str, feedback_topic: str, decisions_topic: str, pairs: int) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                         "enable.idempotence": True, "partitioner": "murmur2_random"})
    count = 0
    for feedback, decision in decision_events(pairs):
        for event in (encode(feedback, source="/policyloop/feedback-api", topic=feedback_topic),
                      encode(decision, source="/policyloop/policy-generator", topic=decisions_topic)):
            produce_when_room(producer, event)
            count += 1
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the backlog was not fully acknowledged by the broker")
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
