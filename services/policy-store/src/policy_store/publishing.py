"""Recording the store's own events (reviews, usage): into Kafka first, the record, then into the database here.

Applying the event right after the broker acknowledged it lets the answer show its effect at once; the consumer
reads the same event later and finds it applied already (idempotent by event id), and a rebuild from the topics
applies it again.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from policy_store.materializer import Materializer
from policyloop_common.cloudevents import OutgoingEvent, decode
from policyloop_common.errors import ApiError
from policyloop_common.kafka.producer import PublishFailed


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


async def record_event(app: FastAPI, outgoing: OutgoingEvent, what: str) -> None:
    """Publish ``outgoing`` (503 when Kafka does not take it), then apply it to the database."""
    await publish_or_503(app, outgoing, what)
    apply_here(app.state.session_factory, app.state.materializer, outgoing)
