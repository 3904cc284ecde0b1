"""A consumer-group member that hands batches of records to its subclass, in a thread of its own."""

from __future__ import annotations

import abc
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from policyloop_common.kafka.consumer import INCREMENTAL, consumer_config
from policyloop_common.kafka.consumer_lag import STATISTICS_INTERVAL_MS, ConsumerLagGauge
from policyloop_common.metrics import CONSUMER_BATCH_SECONDS, CONSUMER_BATCH_SIZE, INTERNAL_ERRORS

log = logging.getLogger(__name__)


class BatchConsumerLoop(abc.ABC):
    """Polls up to ``batch_size`` records and calls :meth:`process_batch`; offsets are the subclass's to commit."""

    thread_name = "consumer-loop"
    # The ``service`` label of this loop's metrics.
    service = "policyloop"
    # How the group shares the partitions (``policyloop_common.kafka.consumer``); every member must agree.
    assignment = INCREMENTAL

    def __init__(self, kafka: Mapping[str, str], *, group_id: str, topics: list[str], batch_size: int,
                 poll_timeout: float) -> None:
        self._lag = ConsumerLagGauge(self.service)
        self.consumer = Consumer(consumer_config(kafka, group_id=group_id, assignment=self.assignment,
                                                 stats_cb=self._lag.on_statistics,
                                                 **{"statistics.interval.ms": STATISTICS_INTERVAL_MS}))
        self._topics = topics
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    @abc.abstractmethod
    def process_batch(self, records: list[Message]) -> None:
        """Handle one batch of records (never empty, errors already removed)."""

    # Optional hooks: a loop that finishes each batch inside process_batch has nothing to do in them.
    def idle(self) -> None:  # noqa: B027
        """Called when a poll brought no record. A subclass that leaves work under way after
        :meth:`process_batch` returns completes what is ready here."""

    def finish(self) -> None:  # noqa: B027
        """Called in the loop's thread once it stops fetching, before the consumer leaves the group: a subclass
        with work still under way completes or gives it up here."""

    def poll_seconds(self) -> float:
        """How long the next poll may wait for a record: the poll timeout, unless a subclass has work to attend."""
        return self._poll_timeout

    def rebalance_callbacks(self) -> dict[str, Callable[[Consumer, list[TopicPartition]], None]]:
        """``on_revoke``/``on_lost`` callbacks for :meth:`Consumer.subscribe`, for a subclass holding records
        between polls; they run inside a poll, in the loop's thread (or in ``close``)."""
        return {}

    def start(self) -> None:
        """Join the consumer group and start the loop."""
        self.consumer.subscribe(self._topics, **self.rebalance_callbacks())
        self._thread.start()

    @property
    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.current_thread() is self._thread

    @property
    def alive(self) -> bool:
        """True while the loop runs."""
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the loop is being stopped."""
        self._stop.wait(seconds)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand, then leave the group so the partitions move at once."""
        self._stop.set()
        self._thread.join(timeout=timeout)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._next_batch()
            except KafkaException as error:
                log.warning("consume failed", extra={"error": str(error)})
                self.pause(1)
                continue
            records = [message for message in messages if not _is_error(message)]
            if not records:
                self._guarded(self.idle, records)
                continue
            CONSUMER_BATCH_SIZE.labels(self.service).observe(len(records))
            started = time.perf_counter()
            if self._guarded(functools.partial(self.process_batch, records), records):
                CONSUMER_BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started)
        self._guarded(self.finish, [])

    def _guarded(self, step: Callable[[], None], records: list[Message]) -> bool:
        """Run one step of the loop; False if it raised."""
        try:
            step()
        except Exception:
            # A bug must not skip records: rewind so they come back, and keep the loop (and the pod) alive.
            log.exception("batch failed unexpectedly; rewinding", extra={"records": len(records)})
            INTERNAL_ERRORS.labels(self.service, "process_batch").inc()
            self.rewind(records)
            self.pause(5)
            return False
        return True

    def _next_batch(self) -> list[Message]:
        """Wait for one record, then take what has already arrived, up to the batch size.

        ``consume(n, timeout)`` waits until ``n`` records are there or the timeout ends, so at a low rate every
        record would wait the whole poll timeout; this way a lone record is handled at once and a busy topic still
        gives full batches from the prefetched queue.
        """
        first = self.consumer.consume(num_messages=1, timeout=self.poll_seconds())
        if not first or self._batch_size == 1:
            return first
        return first + self.consumer.consume(num_messages=self._batch_size - 1, timeout=0)

    def rewind(self, records: list[Message]) -> None:
        """Seek each partition of ``records`` back to its first record, so a failed batch is read again."""
        first: dict[tuple[str, int], int] = {}
        for message in records:
            key = (message.topic(), message.partition())
            first[key] = min(first.get(key, message.offset()), message.offset())
        for (topic, partition), offset in first.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as error:
                # The partition moved to another member meanwhile; it resumes from the committed offset there.
                log.info("partition no longer assigned", extra={"topic": topic, "partition": partition,
                                                                "error": str(error)})


def _is_error(message: Message) -> bool:
    error = message.error()
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error", extra={"error": error.str()})
    return True
