"""The exactly-once loop: consume feedback, produce decisions, send offsets, commit; one transaction per batch."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import KafkaException, Message, Producer
from opentelemetry.trace import SpanKind

from policy_generator.decision import DecisionMaker
from policy_generator.metrics import KNOWN_POLICIES, TRANSACTIONS
from policyloop_common.cloudevents import UnreadableEvent, decode, encode
from policyloop_common.events import FeedbackSubmitted, PolicyGenerationFailed
from policyloop_common.kafka.batch_loop import BatchConsumerLoop
from policyloop_common.kafka.dead_letters import dead_letter_for
from policyloop_common.metrics import DEAD_LETTERS, EVENTS_CONSUMED, EVENTS_PUBLISHED, INTERNAL_ERRORS
from policyloop_common.tracing import KAFKA_TRACEPARENT, traced

log = logging.getLogger(__name__)
SOURCE = "/policyloop/policy-generator"


class GeneratorWorker(BatchConsumerLoop):
    """Runs the consume-decide-produce loop in a thread until stopped."""

    thread_name = "generator-worker"
    service = "policy-generator"

    def __init__(self, kafka: Mapping[str, str], *, group_id: str, transactional_id: str, feedback_topic: str,
                 decisions_topic: str, decision_maker: DecisionMaker, batch_size: int = 50,
                 poll_timeout: float = 1.0) -> None:
        super().__init__(kafka, group_id=group_id, topics=[feedback_topic], batch_size=batch_size,
                         poll_timeout=poll_timeout)
        self._kafka = dict(kafka)
        self._transactional_id = transactional_id
        self._decisions_topic = decisions_topic
        self._decider = decision_maker
        self._failures = 0
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        producer = Producer({**self._kafka, "transactional.id": self._transactional_id,
                             "enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random",
                             "transaction.timeout.ms": 60_000})
        producer.init_transactions(60)
        return producer

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand, leave the group and close; bounded by ``timeout``."""
        super().stop(timeout)
        self._producer.flush(5)

    def process_batch(self, records: list[Message]) -> None:
        """One transaction for the batch; on failure abort it and rewind, so the records come back."""
        try:
            self._producer.begin_transaction()
            for message in records:
                self._handle(message)
            self._producer.send_offsets_to_transaction(self.consumer.position(self.consumer.assignment()),
                                                       self.consumer.consumer_group_metadata())
            self._producer.commit_transaction(30)
        except KafkaException as error:
            self._decider.index.discard_staged()
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
        self._failures = 0
        self._decider.index.commit_staged()
        KNOWN_POLICIES.set(len(self._decider.index))
        TRANSACTIONS.labels("committed").inc()

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(30)
        except KafkaException as error:
            log.warning("abort failed; recreating the producer", extra={"error": str(error)})
            self._producer = self._new_producer()

    def _handle(self, message: Message) -> None:
        try:
            incoming = decode(value=message.value(), key=message.key(), headers=message.headers(),
                              topic=message.topic(), partition=message.partition(), offset=message.offset())
        except UnreadableEvent as error:
            log.warning("unreadable record sent to the dead-letter topic",
                        extra={"reason": error.reason, "offset": message.offset(), "partition": message.partition()})
            self._produce(dead_letter_for(message, reason=error.reason, error=error.message))
            DEAD_LETTERS.labels("policy-generator", message.topic(), error.reason).inc()
            return
        feedback = incoming.payload
        if not isinstance(feedback, FeedbackSubmitted):
            self._produce(dead_letter_for(message, reason="unexpected_type",
                                          error=f"{incoming.event_type} does not belong on {message.topic()}"))
            DEAD_LETTERS.labels("policy-generator", message.topic(), "unexpected_type").inc()
            return
        EVENTS_CONSUMED.labels("policy-generator", message.topic(), incoming.event_type).inc()
        with traced("feedback.decide", incoming.extra_headers.get(KAFKA_TRACEPARENT), kind=SpanKind.CONSUMER,
                    feedback_id=feedback.feedback_id) as traceparent:
            if self._decider.index.is_decided(feedback.feedback_id):
                log.info("feedback already decided; redelivery ignored")
                return
            decision = self._decider.decide(feedback)
            outgoing = encode(decision, source=SOURCE, topic=self._decisions_topic, trace_id=traceparent)
            self._produce(outgoing)
            if isinstance(decision, PolicyGenerationFailed):
                # The feedback goes to the dead-letter topic as well, from where it can be replayed.
                self._produce(dead_letter_for(message, reason="generation_failed", error=decision.error_message))
                DEAD_LETTERS.labels("policy-generator", message.topic(), "generation_failed").inc()
            self._decider.index.stage(decision)
            EVENTS_PUBLISHED.labels("policy-generator", outgoing.topic, type(decision).ce_type).inc()
            log.info("decision made", extra={"decision": type(decision).ce_type})

    def _produce(self, event) -> None:
        while True:
            try:
                self._producer.produce(event.topic, key=event.key, value=event.value, headers=event.headers)
                return
            except BufferError:
                self._producer.poll(0.5)
