"""Recording the store's own events (reviews, usage): into Kafka first, the record, then into the database here.

Applying the event right after the broker acknowledged it lets the answer show its effect at once; the consumer
reads the same event later and finds it applied already (idempotent by event id), and a rebuild from the topics
applies it again.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from policy_store.core.config import StoreSettings
from policy_store.materializer import Materializer
from policyloop_common.cloudevents import OutgoingEvent, decode
from policyloop_common.errors import ApiError
from policyloop_common.kafka.producer import DurableProducer, PublishFailed
from policyloop_common.metrics import INTERNAL_ERRORS

log = logging.getLogger(__name__)


async def publish_or_503(app: FastAPI, outgoing: OutgoingEvent, what: str) -> None:
    """Publish and wait for the broker's acknowledgement, or answer 503 ``kafka_unavailable`` with Retry-After."""
    settings = app.state.settings
    try:
        await asyncio.wait_for(app.state.publisher.publish(outgoing), timeout=settings.publish_timeout_seconds + 2)
    except (PublishFailed, TimeoutError) as error:
        raise ApiError(503, "kafka_unavailable", f"the {what} could not be recorded right now; retry later",
                       headers={"Retry-After": str(settings.retry_after_seconds)}) from error


def apply_here(session_factory: sessionmaker[Session], materializer: Materializer, outgoing: OutgoingEvent) -> bool:
    """Apply an event this store has just published, in a transaction of its own; False if it was applied before."""
    incoming = decode(value=outgoing.value, key=outgoing.key, headers=outgoing.headers, topic=outgoing.topic)
    with session_factory() as session, session.begin():
        return materializer.apply(session, incoming)


def record_from_consumer(publisher: DurableProducer, session_factory: sessionmaker[Session],
                         materializer: Materializer, outgoing: OutgoingEvent, *, timeout: float, what: str) -> bool:
    """Publish an event the consumer's own checks decided on, then apply it; True if this call applied it.

    A failed publish is logged and counted, never raised: such a decision is not worth stalling the consumer over,
    and the next batch that concerns the same policy decides again. False also when the event (its id derived from
    what it decides) was applied before, by another replica or an earlier attempt.
    """
    try:
        publisher.publish_sync(outgoing, timeout=timeout)
    except PublishFailed as error:
        INTERNAL_ERRORS.labels("policy-store", what).inc()
        log.warning("event not published; decided again with the next batch that concerns it",
                    extra={"what": what, "event_id": outgoing.event_id, "error": str(error)[:300]})
        return False
    return apply_here(session_factory, materializer, outgoing)


class ConsumerDecisions:
    """Base of the consumer's after-batch checks that decide on policies themselves (twin merges, automatic
    retirements): what they need to publish a decision and apply it with ``record_from_consumer``."""

    def __init__(self, settings: StoreSettings, session_factory: sessionmaker[Session], materializer: Materializer,
                 publisher: DurableProducer) -> None:
        self._settings = settings
        self._sessions = session_factory
        self._materializer = materializer
        self._publisher = publisher

    def _record(self, outgoing: OutgoingEvent, what: str) -> bool:
        """Publish and apply one decision; True if this call applied it (see ``record_from_consumer``)."""
        return record_from_consumer(self._publisher, self._sessions, self._materializer, outgoing,
                                    timeout=self._settings.publish_timeout_seconds + 2, what=what)


async def record_event(app: FastAPI, outgoing: OutgoingEvent, what: str) -> None:
    """Publish ``outgoing`` (503 when Kafka does not take it), then apply it to the database."""
    await publish_or_503(app, outgoing, what)
    apply_here(app.state.session_factory, app.state.materializer, outgoing)
