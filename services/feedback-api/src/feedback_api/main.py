"""feedback-api: the application, its lifespan and the process entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from feedback_api.api.routes import feedback
from feedback_api.core.config import FeedbackApiSettings
from feedback_api.idempotency import IdempotencyRecord
from feedback_api.rate_limit import RateLimiter
from policyloop_common.kafka.producer import DurableProducer, durable_producer_config
from policyloop_common.service_app import service_app
from policyloop_common.serving import serve


def create_app(settings: FeedbackApiSettings | None = None) -> FastAPI:
    """Build the application; Kafka is connected in the lifespan, not at import."""
    settings = settings or FeedbackApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = DurableProducer(durable_producer_config(
            settings.kafka_config(), delivery_timeout_ms=int(settings.publish_timeout_seconds * 1000)))
        app.state.publisher = producer
        try:
            yield
        finally:
            producer.close()

    app = service_app(
        settings=settings, title="policyloop feedback-api", lifespan=lifespan, routers=[feedback.router],
        description="Accepts ratings of the assistant's answers and publishes them durably to Kafka.",
        readiness=lambda app: {"kafka": lambda: app.state.publisher.broker_reachable()},
        max_body_bytes=settings.max_body_bytes)
    app.state.idempotency = IdempotencyRecord(ttl_seconds=settings.idempotency_ttl_seconds,
                                              max_entries=settings.idempotency_max_entries)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.address_rate_limiter = RateLimiter(settings.rate_limit_per_address_per_minute)
    return app


def run() -> None:
    """Serve feedback-api with uvicorn on FEEDBACK_API_PORT."""
    settings = FeedbackApiSettings()
    serve(create_app(settings), service=settings.service_name, host=settings.feedback_api_host,
          port=settings.feedback_api_port, log_level=settings.log_level)


if __name__ == "__main__":
    run()
