"""feedback-api: the application, its lifespan and the process entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from policyloop_common.auth import TokenVerifier
from policyloop_common.body_limit import BodySizeLimit
from policyloop_common.errors import install_error_handlers
from policyloop_common.health import health_router
from policyloop_common.http_metrics import HttpMetrics
from policyloop_common.kafka.producer import DurableProducer, durable_producer_config
from policyloop_common.metrics import metrics_router
from policyloop_common.serving import serve

from feedback_api.api.routes import feedback
from feedback_api.core.config import FeedbackApiSettings
from feedback_api.idempotency import IdempotencyRecord
from feedback_api.rate_limit import RateLimiter


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

    app = FastAPI(title="policyloop feedback-api", version="1.0.0", lifespan=lifespan,
                  description="Accepts ratings of the assistant's answers and publishes them durably to Kafka.")
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)
    app.state.idempotency = IdempotencyRecord(ttl_seconds=settings.idempotency_ttl_seconds,
                                              max_entries=settings.idempotency_max_entries)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    install_error_handlers(app)
    app.include_router(feedback.router)
    app.include_router(health_router({"kafka": lambda: app.state.publisher.broker_reachable()}))
    app.include_router(metrics_router())
    app.add_middleware(HttpMetrics, service=settings.service_name)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def run() -> None:
    """Serve feedback-api with uvicorn on FEEDBACK_API_PORT."""
    settings = FeedbackApiSettings()
    serve(create_app(settings), service=settings.service_name, host=settings.feedback_api_host,
          port=settings.feedback_api_port, log_level=settings.log_level)


if __name__ == "__main__":
    run()
