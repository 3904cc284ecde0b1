"""Replaying a dead-letter topic: each record goes back, as it was, to the topic it came from.

Run from any service image (the settings are the service's own ``KAFKA_*`` variables)::

    python -m policyloop_common.kafka.replay feedback.submitted.v1.dlq --reason generation_failed --dry-run
    python -m policyloop_common.kafka.replay feedback.submitted.v1.dlq --reason generation_failed

Progress is kept as the offsets of a consumer group (one per dead-letter topic and reason, unless ``--group`` says
otherwise), committed only after the broker acknowledged the replayed records, so an interrupted replay resumes
where it stopped and a finished one is not repeated. A record may be replayed twice if the process dies between the
acknowledgement and the commit; the consumers are idempotent (the generator by feedback id, the store by event
id), so that costs nothing. The replay stops at the end the topic had when it started: records that fail again
and return to the dead-letter topic meanwhile wait for the next replay instead of looping.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from policyloop_common.events import DEAD_LETTER_SUFFIX
from policyloop_common.kafka.consumer import consumer_config
from policyloop_common.kafka.dead_letters import (
    DLQ_HEADERS,
    OFFSET_HEADER,
    PARTITION_HEADER,
    REASON_HEADER,
    TOPIC_HEADER,
    TRUNCATED_HEADER,
)
from policyloop_common.kafka.offsets import next_offsets
from policyloop_common.kafka.producer import durable_producer_config

log = logging.getLogger(__name__)

PROGRESS_EVERY = 1000


@dataclass
class ReplayReport:
    """What one replay did."""

    dead_letter_topic: str
    group: str
    dry_run: bool
    replayed: Counter = field(default_factory=Counter)  # by original topic
    skipped: Counter = field(default_factory=Counter)  # by reason
    unroutable: int = 0
    repeated: int = 0  # further dead letters of a record already replayed in this run
    origins: set[tuple[str, str | None, str | None]] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict:
        return {"dead_letter_topic": self.dead_letter_topic, "group": self.group, "dry_run": self.dry_run,
                "replayed": dict(self.replayed), "skipped_by_reason": dict(self.skipped),
                "unroutable": self.unroutable, "repeated": self.repeated}


def default_group(dead_letter_topic: str, reason: str | None) -> str:
    """The consumer group that remembers how far replays of this topic (and reason) got."""
    return f"policyloop-dlq-replay.{dead_letter_topic}" + (f".{reason}" if reason else "")


def replay_dead_letters(kafka: Mapping[str, str], dead_letter_topic: str, *, reason: str | None = None,
                        group: str | None = None, dry_run: bool = False, limit: int | None = None,
                        timeout: float = 30.0) -> ReplayReport:
    """Send the records of ``dead_letter_topic`` (of ``reason`` only, if given) back to their original topics."""
    if not dead_letter_topic.endswith(DEAD_LETTER_SUFFIX):
        raise ValueError(f"{dead_letter_topic} is not a dead-letter topic (no {DEAD_LETTER_SUFFIX} suffix)")
    report = ReplayReport(dead_letter_topic, group or default_group(dead_letter_topic, reason), dry_run)
    consumer = Consumer(consumer_config(kafka, group_id=report.group))
    producer = None if dry_run else Producer(durable_producer_config(kafka, delivery_timeout_ms=int(timeout * 1000)))
    try:
        watermarks = _watermarks(consumer, dead_letter_topic, timeout)
        ends = {partition: high for partition, (_, high) in watermarks.items()}
        positions = _start_offsets(consumer, dead_letter_topic, watermarks, timeout)
        remaining = {partition for partition, end in ends.items() if positions[partition] < end}
        consumer.assign([TopicPartition(dead_letter_topic, p, positions[p]) for p in remaining])
        handled, last_progress = 0, time.monotonic()
        while remaining and (limit is None or handled < limit):
            if time.monotonic() - last_progress > timeout:
                raise RuntimeError(f"no progress for {timeout:.0f}s on partitions {sorted(remaining)}; "
                                   f"what was replayed so far is committed: {report.as_dict()}")
            batch = [m for m in consumer.consume(num_messages=500, timeout=1.0) if m.error() is None]
            batch = [m for m in batch if m.partition() in remaining and m.offset() < ends[m.partition()]]
            if limit is not None:
                batch = batch[:limit - handled]
            for message in batch:
                _replay_one(message, reason, producer, report)
            handled += len(batch)
            if producer is not None and batch:
                if producer.flush(timeout) > 0:
                    raise RuntimeError("the broker did not acknowledge the replayed records; nothing committed")
                consumer.commit(offsets=next_offsets(batch), asynchronous=False)
            # Positions, not the last record seen: a partition may end with a transaction marker, never delivered.
            done = [position.partition
                    for position in consumer.position([TopicPartition(dead_letter_topic, p) for p in remaining])
                    if position.offset >= ends[position.partition]]
            remaining.difference_update(done)
            if batch or done:
                last_progress = time.monotonic()
            if batch and handled // PROGRESS_EVERY != (handled - len(batch)) // PROGRESS_EVERY:
                log.info("replay progress", extra={"handled": handled, **report.as_dict()})
        return report
    finally:
        consumer.close()


def _replay_one(message: Message, reason: str | None, producer: Producer | None, report: ReplayReport) -> None:
    headers = [(name, value) for name, value in (message.headers() or [])]
    named = {name: (value or b"").decode(errors="replace") for name, value in headers}
    record_reason = named.get(REASON_HEADER, "unknown")
    if reason is not None and record_reason != reason:
        report.skipped[record_reason] += 1
        return
    original_topic = named.get(TOPIC_HEADER)
    if not original_topic or TRUNCATED_HEADER in named:
        # No destination, or only a prefix of the record: the original stays where the headers say it is.
        report.unroutable += 1
        log.warning("dead letter without its original topic, or truncated, left alone",
                    extra={"partition": message.partition(), "offset": message.offset()})
        return
    # Each consumer group refuses a poison record on its own (the generator and the store both read feedback),
    # and a retried batch may dead-letter a record again: one record, one replay.
    origin = (original_topic, named.get(PARTITION_HEADER), named.get(OFFSET_HEADER))
    if origin in report.origins:
        report.repeated += 1
        return
    report.origins.add(origin)
    report.replayed[original_topic] += 1
    if producer is None:
        return
    # The original key keeps the record on the partition of its feedback; the dead-letter headers are dropped,
    # so the record is indistinguishable from the first delivery.
    producer.produce(original_topic, key=message.key(), value=message.value(),
                     headers=[(name, value) for name, value in headers if name not in DLQ_HEADERS])


def _watermarks(consumer: Consumer, topic: str, timeout: float) -> dict[int, tuple[int, int]]:
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise ValueError(f"topic {topic} does not exist")
    return {partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            for partition in metadata.partitions}


def _start_offsets(consumer: Consumer, topic: str, watermarks: dict[int, tuple[int, int]],
                   timeout: float) -> dict[int, int]:
    """Where the group stopped; the oldest record still retained where it never committed (or fell behind)."""
    committed = consumer.committed([TopicPartition(topic, partition) for partition in watermarks], timeout=timeout)
    return {tp.partition: max(tp.offset, watermarks[tp.partition][0]) for tp in committed}


def main(argv: list[str] | None = None) -> int:
    """Command line: replay, print the report as JSON, exit 0 (1 when the replay failed)."""
    from policyloop_common.logging import configure_logging
    from policyloop_common.settings import ServiceSettings

    parser = argparse.ArgumentParser(prog="python -m policyloop_common.kafka.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dead_letter_topic", help="e.g. feedback.submitted.v1.dlq")
    parser.add_argument("--reason", help="replay only records dead-lettered for this reason (dlq_reason header)")
    parser.add_argument("--group", help="consumer group that keeps the replay's progress")
    parser.add_argument("--limit", type=int, help="stop after this many records")
    parser.add_argument("--dry-run", action="store_true", help="count what would be replayed; send and commit nothing")
    args = parser.parse_args(argv)
    settings = ServiceSettings(service_name="dlq-replay")
    configure_logging("dlq-replay", settings.log_level)
    try:
        report = replay_dead_letters(settings.kafka_config(), args.dead_letter_topic, reason=args.reason,
                                     group=args.group, dry_run=args.dry_run, limit=args.limit)
    except (ValueError, RuntimeError) as error:
        print(json.dumps({"error": str(error)}), file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
