"""The exactly-once loop: consume feedback, decide it, then produce, send offsets and commit; one transaction per batch.

The feedback of a batch is decided concurrently (the model calls overlap, up to ``max_in_flight``) before the
transaction begins: the transaction then holds only the produce and commit calls, so its duration does not grow
with the model's latency and stays far inside ``transaction.timeout.ms``. Deciding has no effect outside this
process, so a batch given up before its transaction leaves nothing behind: its offsets are not committed and the
group's next owner of its partitions decides it, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaException, Message, Producer
from opentelemetry.trace import SpanKind

from policy_generator.batch_decisions import BatchAbandoned, BatchDecider, Decided, Pending
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


@dataclass(frozen=True)
class _Slot:
    """What one record of the batch becomes: a dead letter, a feedback to decide, or nothing (a redelivery)."""

    message: Message
    dead_letter: OutgoingEvent | None = None
    dead_letter_reason: str = ""
    pending: Pending | None = None


class GeneratorWorker(BatchConsumerLoop):
    """Runs the consume-decide-produce loop in a thread until stopped."""

    thread_name = "generator-worker"
    service = "policy-generator"

    def __init__(self, kafka: Mapping[str, str], *, group_id: str, transactional_id: str, feedback_topic: str,
                 decisions_topic: str, decision_maker: DecisionMaker, batch_size: int = DEFAULT_BATCH_SIZE,
                 poll_timeout: float = 1.0, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS) -> None:
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
        # Set once stopping has waited shutdown_seconds: the batch in hand is then given up, not finished.
        self._abandon = threading.Event()
        self._failures = 0
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        # The transaction holds no model call, only produce and commit: a minute is ample.
        producer = Producer({**self._kafka, "transactional.id": self._transactional_id,
                             "enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random",
                             "transaction.timeout.ms": 60_000})
        producer.init_transactions(60)
        return producer

    def stop(self, timeout: float | None = None) -> None:
        """Stop fetching; finish the batch in hand, or give it up after ``shutdown_seconds`` (nothing of it is
        committed, so the group's next owner decides it); leave the group and close.

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
        """Decide the batch, then one transaction for it; on failure abort it and rewind, so the records come back."""
        if self.stopping:
            # Fetched while the stop was requested: the next owner takes them rather than wait for their decisions.
            self.rewind(records)
            return
        decided_ids: set[tuple[str, str | None]] = set()
        slots = [self._read(message, decided_ids) for message in records]
        try:
            decided = self._batch.decide([slot.pending for slot in slots if slot.pending is not None],
                                         self._abandon)
        except BatchAbandoned:
            BATCHES_ABANDONED.inc()
            log.warning("stopping: batch given up before its transaction; the next owner of its partitions "
                        "decides it", extra={"records": len(records)})
            self.rewind(records)
            return
        self._commit(records, slots, decided)

    def _commit(self, records: list[Message], slots: list[_Slot], decided: list[Decided]) -> None:
        index = self._decider.index
        try:
            self._producer.begin_transaction()
            decisions: Iterator[Decided] = iter(decided)
            # Record order: the decisions of one feedback partition stay in the order of its records.
            for slot in slots:
                if slot.dead_letter is not None:
                    self._produce(slot.dead_letter)
                    DEAD_LETTERS.labels("policy-generator", slot.message.topic(), slot.dead_letter_reason).inc()
                elif slot.pending is not None:
                    self._publish(slot.message, next(decisions))
            self._producer.send_offsets_to_transaction(self.consumer.position(self.consumer.assignment()),
                                                       self.consumer.consumer_group_metadata(),
                                                       KAFKA_TIMEOUT_SECONDS)
            self._producer.commit_transaction(KAFKA_TIMEOUT_SECONDS)
        except KafkaException as error:
            index.discard_staged()
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
            self.rewind(records)
            self.pause(min(30.0, 0.5 * 2 ** min(self._failures, 6)))
            return
        except Exception:
            # Not the broker's doing: drop the open transaction; the loop rewinds the batch and logs the error.
            index.discard_staged()
            TRANSACTIONS.labels("aborted").inc()
            self._abort()
            raise
        self._failures = 0
        index.commit_staged()
        # Counted once committed: a second look or a redone batch decides a feedback more than once.
        for result in decided:
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

    def _read(self, message: Message, decided_ids: set[tuple[str, str | None]]) -> _Slot:
        """Decode a record; ``decided_ids`` holds the (feedback id, re-analysis run) met earlier in the batch."""
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
        if key in decided_ids or self._decider.index.is_decided(feedback.feedback_id, run_id):
            with traced("feedback.decide", parent, kind=SpanKind.CONSUMER, feedback_id=feedback.feedback_id):
                log.info("feedback already decided; redelivery ignored", extra={"reanalysis_run_id": run_id})
            return _Slot(message)
        decided_ids.add(key)
        return _Slot(message, pending=Pending(feedback=feedback, traceparent=parent, run_id=run_id))

    def _publish(self, message: Message, result: Decided) -> None:
        decision = result.event
        outgoing = encode(decision, source=SOURCE, topic=self._decisions_topic, trace_id=result.traceparent)
        self._produce(outgoing)
        if isinstance(decision, PolicyGenerationFailed):
            # The feedback goes to the dead-letter topic as well, from where it can be replayed.
            self._produce(dead_letter_for(message, reason="generation_failed", error=decision.error_message))
            DEAD_LETTERS.labels("policy-generator", message.topic(), "generation_failed").inc()
        self._decider.index.stage(decision)
        EVENTS_PUBLISHED.labels("policy-generator", outgoing.topic, type(decision).ce_type).inc()

    def _produce(self, event: OutgoingEvent) -> None:
        produce_when_room(self._producer, event, wait_seconds=0.5)
