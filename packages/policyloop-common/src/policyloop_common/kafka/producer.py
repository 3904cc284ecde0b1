"""A producer whose publish returns once the broker acknowledged the record (acks=all), or fails in bounded time."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from policyloop_common.cloudevents import OutgoingEvent

log = logging.getLogger(__name__)


class PublishFailed(Exception):
    """The broker did not acknowledge the record in time or refused it; the record may not be in Kafka."""


def durable_producer_config(base: Mapping[str, str], *, delivery_timeout_ms: int) -> dict[str, str | int | bool]:
    """Idempotent producer settings: every record acknowledged by all in-sync replicas or reported failed."""
    return {
        **base,
        "enable.idempotence": True,
        "acks": "all",
        # librdkafka fails a record after this long; bounded so an outage turns into a 503, not a hang.
        "message.timeout.ms": delivery_timeout_ms,
        "socket.connection.setup.timeout.ms": min(delivery_timeout_ms, 10_000),
        "linger.ms": 2,
        # The same key on the same partition in every topic, as Java clients would place it.
        "partitioner": "murmur2_random",
    }


class DurableProducer:
    """Publishes events and resolves each publish when its delivery report arrives; a thread serves the reports."""

    def __init__(self, config: Mapping[str, str | int | bool]) -> None:
        self._producer = Producer(dict(config))
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._serve_delivery_reports, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _serve_delivery_reports(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.1)

    async def publish(self, event: OutgoingEvent) -> Message:
        """Produce ``event`` and wait for the broker's acknowledgement; raise PublishFailed otherwise."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Message] = loop.create_future()

        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                outcome: BaseException | Message = PublishFailed(f"{error.name()}: {error.str()}")
            else:
                outcome = message
            loop.call_soon_threadsafe(_settle, done, outcome)

        self._produce(event, report)
        return await done

    def publish_sync(self, event: OutgoingEvent, timeout: float = 30.0) -> Message:
        """Blocking variant of :meth:`publish` for command-line tools and tests."""
        result: dict[str, object] = {}
        finished = threading.Event()

        def report(error: KafkaError | None, message: Message) -> None:
            result["error"], result["message"] = error, message
            finished.set()

        self._produce(event, report)
        if not finished.wait(timeout):
            raise PublishFailed(f"no delivery report within {timeout}s")
        if result["error"] is not None:
            error = result["error"]
            raise PublishFailed(f"{error.name()}: {error.str()}")  # type: ignore[attr-defined]
        return result["message"]  # type: ignore[return-value]

    def _produce(self, event: OutgoingEvent, report) -> None:
        try:
            self._producer.produce(event.topic, key=event.key, value=event.value, headers=event.headers,
                                   on_delivery=report)
        except BufferError as error:
            raise PublishFailed("the local producer queue is full") from error
        except KafkaException as error:
            raise PublishFailed(str(error)) from error

    def broker_reachable(self, timeout: float = 2.0) -> bool:
        """True when the cluster answers a metadata request within ``timeout`` seconds."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``) and stop the report thread."""
        remaining = self._producer.flush(timeout)
        if remaining:
            log.warning("producer closed with undelivered records", extra={"undelivered": remaining})
        self._closing.set()
        self._poller.join(timeout=2)


def _settle(future: asyncio.Future, outcome: BaseException | Message) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def produce_when_room(producer: Producer, event: OutgoingEvent, *, wait_seconds: float = 0.1) -> None:
    """Queue ``event``; while librdkafka's local queue is full, serve delivery reports to make room, then retry."""
    while True:
        try:
            producer.produce(event.topic, key=event.key, value=event.value, headers=event.headers)
            return
        except BufferError:
            producer.poll(wait_seconds)
