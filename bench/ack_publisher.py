"""``python -m bench.ack_publisher``: feedback-api with Kafka taken out — the HTTP ceiling of the ingest benchmark.

It is the service's own application (``feedback_api.main.create_app``: the same routes, validation, token checks,
idempotency, metrics, middleware and event encoding); only the publisher is replaced by one that acknowledges
every event at once. Whatever feedback-api reaches beyond this is the cost of waiting for Kafka's acknowledgement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from feedback_api.core.config import FeedbackApiSettings
from feedback_api.main import create_app
from policyloop_common.cloudevents import OutgoingEvent
from policyloop_common.serving import serve


class InstantPublisher:
    """Acknowledges every event as soon as it is handed over; no broker behind it."""

    async def publish(self, event: OutgoingEvent) -> OutgoingEvent:
        """Accept ``event`` at once."""
        return event

    def broker_reachable(self, timeout: float = 2.0) -> bool:
        """Always ready: there is no broker to reach."""
        return True

    def close(self) -> None:
        """Nothing to flush."""


def create_ceiling_app(settings: FeedbackApiSettings | None = None) -> FastAPI:
    """feedback-api's application whose lifespan installs :class:`InstantPublisher` instead of the Kafka producer."""
    app = create_app(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.publisher = InstantPublisher()
        yield

    app.router.lifespan_context = lifespan
    return app


def run() -> None:
    """Serve the ceiling app like feedback-api itself (same server, same settings)."""
    settings = FeedbackApiSettings()
    serve(create_ceiling_app(settings), service=settings.service_name, host=settings.feedback_api_host,
          port=settings.feedback_api_port, log_level=settings.log_level)


if __name__ == "__main__":
    run()
