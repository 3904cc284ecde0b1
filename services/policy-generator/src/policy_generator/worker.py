"""The exactly-once loop: consume feedback, decide it, then produce, send offsets and commit in one transaction.

The feedback of a batch is decided concurrently (the model calls overlap, up to ``max_in_flight``) before the
transaction begins: the transaction then holds only the produce and commit calls, so its duration does not grow
with the model's latency and stays far inside ``transaction.timeout.ms``. Deciding has no effect outside this
process, so a batch given up before its transaction leaves nothing behind: its offsets are not committed and the
group's next owner of its partitions decides it, once.

Batches are not a barrier: while the calls of the batches in hand are out, the loop fetches and submits the next
as soon as a decision slot is free, so the window of calls stays full. Batches are committed in the order they
were fetched, as soon as every decision of the oldest is made; the finished ones go in one transaction, whose
offsets are those after each one's last record (not the consumer's position, which is already further on). Any
failure gives up every batch in hand and rewinds to the first of them, so a committed offset never passes a
record whose decision was not committed with it. Partitions leaving in a rebalance are committed first, in the
revocation callback, as the barrier did by construction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from opentelemetry.trace import SpanKind

from policy_generator.batch_decisions import BatchAbandoned, BatchDecider, Decided, Pending, SubmittedBatch
from policy_generator.decision import DecisionMaker, decision_kind
from policy_generator.decision_threads import DecisionThreads
from policy_generator.metrics import BATCHES_ABANDONED, DECISIONS, HELD_FOR_REVIEW, KNOWN_POLICIES, TRANSACTIONS
from policyloop_common.cloudevents import OutgoingEvent, UnreadableEvent, decode, encode
from policyloop_common.events import (
    FeedbackReanalysisRequested,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyGenerationFailed,
)
from policyloop_common.kafka.batch_loop import BatchConsumerLoop
from policyloop_common.kafka.dead_letters import dead_letter_for
from policyloop_common.kafka.producer import produce_when_room
from policyloop_common.metrics import DEAD_LETTERS, EVENTS_CONSUMED, EVENTS_PUBLISHED, INTERNAL_ERRORS
from policyloop_common.tracing import KAFKA_TRACEPARENT, traced

log = logging.getLogger(__name__)
SOURCE = "/policyloop/policy-generator"
# Bound of each transactional call to the broker (send offsets, commit, abort).
KAFKA_TIMEOUT_SECONDS = 30.0
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_SHUTDOWN_SECONDS = 60.0
# How long a poll waits while batches are in hand: a finished batch waits at most this long for its commit.
OPEN_BATCH_POLL_SECONDS = 0.01
# Least time between two transactions while decided batches keep coming (Kafka Streams' exactly-once default).
# Readers with read_committed see nothing past a transaction still open on a partition, and the decisions topic
# is written by every generator: back-to-back transactions of several processes would overlap without a break
# and hold back what all of them committed. A batch decided after a quiet spell is committed at once.
DEFAULT_COMMIT_INTERVAL_SECONDS = 0.1
# How often a wait for a free decision slot looks whether the worker is stopping.
_WAKE_SECONDS = 0.1


@dataclass(frozen=True)
class _Slot:
    """What one record of the batch becomes: a dead letter, a feedback to decide, or nothing (a redelivery)."""

    message: Message
    dead_letter: OutgoingEvent | None = None
    dead_letter_reason: str = ""
    pending: Pending | None = None


@dataclass
class _OpenBatch:
    """A batch in hand: its records, what each became, its decisions under way, and the (feedback id, run) keys
    it decides, so that a copy in a later batch in hand is not decided twice."""

    records: list[Message]
    slots: list[_Slot]
    submitted: SubmittedBatch
    keys: set[tuple[str, str | None]] = field(default_factory=set)


class GeneratorWorker(BatchConsumerLoop):
    """Runs the consume-decide-produce loop in a thread until stopped."""

    thread_name = "generator-worker"
    service = "policy-generator"

    def __init__(self, kafka: Mapping[str, str], *, group_id: str, transactional_id: str, feedback_topic: str,
                 decisions_topic: str, decision_maker: DecisionMaker, batch_size: int = DEFAULT_BATCH_SIZE,
                 poll_timeout: float = 1.0, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS,
                 commit_interval: float = DEFAULT_COMMIT_INTERVAL_SECONDS) -> None:
        # Submissions and re-analysis requests share the feedback topic: both are feedback to decide.
        super().__init__(kafka, group_id=group_id, topics=[feedback_topic], batch_size=batch_size,
                         poll_timeout=poll_timeout)
        self._kafka = dict(kafka)
        self._transactional_id = transactional_id
        self._decisions_topic = decisions_topic
        self._decider = decision_maker
        self._threads = DecisionThreads(max_in_flight, name=f"{self.thread_name}-decide")
        self._batch = BatchDecider(decision_maker, self._threads)
        self._shutdown_seconds = shutdown_seconds
        # Set once stopping has waited shutdown_seconds: the batches in hand are then given up, not finished.
        self._abandon = threading.Event()
        self._failures = 0
        self._open: deque[_OpenBatch] = deque()  # fetched, not committed yet; oldest first
        self._commit_interval = commit_interval
        self._last_commit = 0.0  # time.monotonic() of the last transaction's end
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        # The transaction holds no model call, only produce and commit: a minute is ample.
        producer = Producer({**self._kafka, "transactional.id": self._transactional_id,
                             "enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random",
                             "transaction.timeout.ms": 60_000})
        producer.init_transactions(60)
        return producer

    def stop(self, timeout: float | None = None) -> None:
        """Stop fetching; finish the batches in hand, or give them up after ``shutdown_seconds`` (nothing of them
        is committed, so the group's next owner decides them); leave the group and close.

        The loop ends within ``shutdown_seconds`` plus the transaction's calls to the broker (each bounded by
        ``KAFKA_TIMEOUT_SECONDS``, normally milliseconds), whatever the model does: decisions still running then
        are left to their daemon threads, and their results are dropped.
        """
        give_up = threading.Timer(self._shutdown_seconds, self._abandon.set)
        give_up.daemon = True
        give_up.start()
        try:
            super().stop(self._shutdown_seconds + KAFKA_TIMEOUT_SECONDS + 5 if timeout is None else timeout)
        finally:
            give_up.cancel()
            self._threads.close()
        self._producer.flush(5)

    def process_batch(self, records: list[Message]) -> None:
        """Submit the batch's decisions, commit the batches in hand that are decided, and return once a decision
        slot is free, so that the next batch is fetched while the calls of this one are still out."""
        if self.stopping:
            # Fetched while the stop was requested: the next owner takes them rather than wait for their decisions.
            super().rewind(records)
            return
        keys: set[tuple[str, str | None]] = set()
        slots = [self._read(message, keys) for message in records]
        submitted = self._batch.submit([slot.pending for slot in slots if slot.pending is not None])
        self._open.append(_OpenBatch(records, slots, submitted, keys))
        self._commit_decided()
        while self._open and self._batch.undecided >= self._threads.size and not self.stopping:
            self._batch.wait_for_a_decision(_WAKE_SECONDS)
            self._commit_decided()

    def idle(self) -> None:
        """Nothing new fetched: commit the batches in hand that are decided."""
        self._commit_decided()

    def finish(self) -> None:
        """Stopping: the batches in hand are completed and committed, or given up after ``shutdown_seconds``."""
        self._commit_all()

    def poll_seconds(self) -> float:
        """Short polls while batches are in hand, so that each is committed soon after its last decision."""
        timeout = super().poll_seconds()
        return min(timeout, OPEN_BATCH_POLL_SECONDS) if self._open else timeout

    def rebalance_callbacks(self) -> dict[str, Callable[[Consumer, list[TopicPartition]], None]]:
        """Commit what is in hand before partitions leave; give it up when they are already lost."""
        return {"on_revoke": self._partitions_revoked, "on_lost": self._partitions_lost}

    def rewind(self, records: list[Message]) -> None:
        """Give up every batch in hand, and rewind to the first of its records and of ``records``."""
        super().rewind(self._give_up_open() + records)

    def _partitions_revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # During close, the loop has already finished or given up its batches (or still owns them): nothing to do.
        if not self._open or not self.in_loop_thread:
            return
        log.info("partitions revoked: committing the batches in hand first",
                 extra={"partitions": len(partitions), "batches": len(self._open)})
        try:
            self._commit_all()
        except Exception:
            log.exception("commit before a rebalance failed; the batches in hand are given up")
            self.rewind([])

    def _partitions_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._open and self.in_loop_thread:
            # Another member may own them already: nothing of them may be committed from here.
            log.warning("partitions lost: the batches in hand are given up",
                        extra={"partitions": len(partitions), "batches": len(self._open)})
            self.rewind([])

    def _commit_decided(self) -> None:
        """Commit, in one transaction, the oldest batches in hand whose first decisions are all made, once
        ``commit_interval`` has passed since the last transaction."""
        if time.monotonic() - self._last_commit < self._commit_interval:
            return
        ready = 0
        for batch in self._open:
            if batch.submitted.remaining:
                break
            ready += 1
        if ready:
            self._commit(ready)

    def _commit_all(self) -> None:
        """Wait for every batch in hand and commit them in one transaction (or give them up, see ``_commit``)."""
        if self._open:
            self._commit(len(self._open))

    def _give_up_open(self) -> list[Message]:
        """Forget every batch in hand (their staged decisions and calls under way) and return their records."""
        records = [record for batch in self._open for record in batch.records]
        self._open.clear()
        self._batch.give_up()
        self._decider.index.discard_staged()
        return records

    def _commit(self, count: int) -> None:
        """Finish the ``count`` oldest batches in hand (their in-batch rechecks) and commit them in one transaction;
        on failure give up every batch in hand and rewind."""
        batches = [self._open[number] for number in range(count)]
        try:
            decided = [self._batch.finish(batch.submitted, self._abandon) for batch in batches]
        except BatchAbandoned:
            BATCHES_ABANDONED.inc(len(self._open))
            log.warning("stopping: batches given up before their transaction; the next owner of their partitions "
                        "decides them", extra={"batches": len(self._open)})
            self.rewind([])
            return
        index = self._decider.index
        try:
            self._producer.begin_transaction()
            for batch, results in zip(batches, decided, strict=True):
                decisions: Iterator[Decided] = iter(results)
                # Record order: the decisions of one feedback partition stay in the order of its records.
                for slot in batch.slots:
                    if slot.dead_letter is not None:
                        self._produce(slot.dead_letter)
                        DEAD_LETTERS.labels("policy-generator", slot.message.topic(), slot.dead_letter_reason).inc()
                    elif slot.pending is not None:
                        self._publish(slot.message, next(decisions))
            self._producer.send_offsets_to_transaction(_offsets_after([record for batch in batches
                                                                       for record in batch.records]),
                                                       self.consumer.consumer_group_metadata(),
                                                       KAFKA_TIMEOUT_SECONDS)
            self._producer.commit_transaction(KAFKA_TIMEOUT_SECONDS)
            self._last_commit = time.monotonic()
        except KafkaException as error:
            self._failures += 1
            kafka_error = error.args[0]
            TRANSACTIONS.labels("aborted").inc()
            INTERNAL_ERRORS.labels("policy-generator", "transaction").inc()
            log.warning("transaction failed", extra={"error": str(kafka_error), "failures": self._failures})
            if kafka_error.fatal():
                # Fenced by a newer instance with our transactional id, or another fatal error.
                self._producer = self._new_producer()
            else:
                self._abort()
            self.rewind([])
            self.pause(min(30.0, 0.5 * 2 ** min(self._failures, 6)))
            return
        except Exception:
            # Not the broker's doing: drop the open transaction; the loop rewinds the batches and logs the error.
            TRANSACTIONS.labels("aborted").inc()
            self._abort()
            raise
        self._failures = 0
        for _ in batches:
            self._open.popleft()
        index.commit_staged()
        # Counted once committed: a second look or a redone batch decides a feedback more than once.
        for result in (result for results in decided for result in results):
            DECISIONS.labels(decision_kind(result.event)).inc()
            if isinstance(result.event, PolicyGenerated) and result.event.decision.review_reasons:
                HELD_FOR_REVIEW.inc()
        KNOWN_POLICIES.set(len(index))
        TRANSACTIONS.labels("committed").inc()

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(KAFKA_TIMEOUT_SECONDS)
        except KafkaException as error:
            log.warning("abort failed; recreating the producer", extra={"error": str(error)})
            self._producer = self._new_producer()

    def _read(self, message: Message, keys: set[tuple[str, str | None]]) -> _Slot:
        """Decode a record; ``keys`` holds the (feedback id, re-analysis run) met earlier in its batch."""
        try:
            incoming = decode(value=message.value(), key=message.key(), headers=message.headers(),
                              topic=message.topic(), partition=message.partition(), offset=message.offset())
        except UnreadableEvent as error:
            log.warning("unreadable record sent to the dead-letter topic",
                        extra={"reason": error.reason, "offset": message.offset(), "partition": message.partition()})
            return _Slot(message, dead_letter=dead_letter_for(message, reason=error.reason, error=error.message),
                         dead_letter_reason=error.reason)
        payload = incoming.payload
        if isinstance(payload, FeedbackReanalysisRequested):
            # Decided again once per run: a request published twice in one run is one decision.
            feedback, run_id = payload.feedback, payload.run_id
        elif isinstance(payload, FeedbackSubmitted):
            feedback, run_id = payload, None
        else:
            misplaced = f"{incoming.event_type} does not belong on {message.topic()}"
            return _Slot(message, dead_letter=dead_letter_for(message, reason="unexpected_type", error=misplaced),
                         dead_letter_reason="unexpected_type")
        EVENTS_CONSUMED.labels("policy-generator", message.topic(), incoming.event_type).inc()
        parent = incoming.extra_headers.get(KAFKA_TRACEPARENT)
        if payload.feedback_id != feedback.feedback_id:
            mismatch = f"request for {payload.feedback_id} carries feedback {feedback.feedback_id}"
            return _Slot(message, dead_letter=dead_letter_for(message, reason="invalid_payload", error=mismatch),
                         dead_letter_reason="invalid_payload")
        key = (feedback.feedback_id, run_id)
        if (key in keys or any(key in batch.keys for batch in self._open)
                or self._decider.index.is_decided(feedback.feedback_id, run_id)):
            with traced("feedback.decide", parent, kind=SpanKind.CONSUMER, feedback_id=feedback.feedback_id):
                log.info("feedback already decided; redelivery ignored", extra={"reanalysis_run_id": run_id})
            return _Slot(message)
        keys.add(key)
        return _Slot(message, pending=Pending(feedback=feedback, traceparent=parent, run_id=run_id))

    def _publish(self, message: Message, result: Decided) -> None:
        decision = result.event
        outgoing = encode(decision, source=SOURCE, topic=self._decisions_topic, trace_id=result.traceparent)
        self._produce(outgoing)
        if isinstance(decision, PolicyGenerationFailed):
            # The feedback goes to the dead-letter topic as well, from where it can be replayed.
            self._produce(dead_letter_for(message, reason="generation_failed", error=decision.error_message))
            DEAD_LETTERS.labels("policy-generator", message.topic(), "generation_failed").inc()
        self._decider.index.stage(decision, outgoing.event_id)
        EVENTS_PUBLISHED.labels("policy-generator", outgoing.topic, type(decision).ce_type).inc()

    def _produce(self, event: OutgoingEvent) -> None:
        produce_when_room(self._producer, event, wait_seconds=0.5)


def _offsets_after(records: list[Message]) -> list[TopicPartition]:
    """For each partition of ``records``, the offset after its last record: where the group resumes."""
    after: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic(), record.partition())
        after[key] = max(after.get(key, 0), record.offset() + 1)
    return [TopicPartition(topic, partition, offset) for (topic, partition), offset in after.items()]
