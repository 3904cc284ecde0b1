"""policy-store: the application, its consumer, and the process entry point."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from policy_store.admin import router as admin_router
from policy_store.api.routes import effectiveness, feedback, policies, policy_edit, policy_import, reanalysis, usage
from policy_store.auto_retirement import AutoRetirement
from policy_store.consumer import StoreConsumer
from policy_store.core.config import StoreSettings
from policy_store.core.db import database_reachable, make_engine, make_session_factory
from policy_store.materializer import Materializer
from policy_store.state_metrics import StoreStateCollector
from policy_store.twins import TwinResolver
from policyloop_common.cloudevents import IncomingEvent
from policyloop_common.errors import error_response
from policyloop_common.garbage_collection import freeze_what_was_loaded
from policyloop_common.kafka.producer import DurableProducer, durable_producer_config
from policyloop_common.service_app import service_app
from policyloop_common.serving import serve

log = logging.getLogger(__name__)


def create_app(settings: StoreSettings | None = None) -> FastAPI:
    """Build the application; the consumer and the producer start in the lifespan."""
    settings = settings or StoreSettings()
    engine = make_engine(settings.database_url, settings.database_pool_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = DurableProducer(durable_producer_config(
            settings.kafka_config(), delivery_timeout_ms=int(settings.publish_timeout_seconds * 1000)))
        consumer = StoreConsumer(
            settings.kafka_config(), group_id=settings.store_group_id,
            topics=settings.consumed_topics,
            session_factory=app.state.session_factory, materializer=app.state.materializer,
            dead_letters=producer, batch_size=settings.store_batch_size,
            poll_timeout=settings.store_poll_timeout_seconds,
            after_batch=after_batch_hooks(settings, app.state.session_factory, app.state.materializer, producer))
        app.state.publisher, app.state.consumer = producer, consumer
        state_gauges = StoreStateCollector(app.state.session_factory, settings)
        REGISTRY.register(state_gauges)
        # Modules, schemas and caches loaded at start: every full collection walked them again (finding 12 of
        # docs/benchmarks.md). Young collections keep CPython's threshold: raised to 10,000 they cost less CPU in
        # all, but each took ~10 ms and the middle generation's up to 45 ms, pauses a request for policies met.
        freeze_what_was_loaded()
        consumer.start()
        try:
            yield
        finally:
            REGISTRY.unregister(state_gauges)
            consumer.stop()
            producer.close()
            engine.dispose()

    app = service_app(
        settings=settings, title="policyloop policy-store", lifespan=lifespan,
        description="Feedback status, policies for the assistant, review actions, usage and effectiveness.",
        routers=[feedback.router, policies.router, policy_edit.router, policy_import.router, usage.router,
                 effectiveness.router, reanalysis.router],
        readiness=lambda app: {
            "database": lambda: database_reachable(engine),
            "kafka": lambda: app.state.publisher.broker_reachable(),
            "consumer": lambda: app.state.consumer.alive and app.state.consumer.database_healthy,
        })
    app.state.session_factory = make_session_factory(engine)
    # The review page (HTML for people); outside the JSON API and its OpenAPI document.
    app.include_router(admin_router)

    @app.exception_handler(OperationalError)
    async def _database_unavailable(request: Request, error: OperationalError) -> JSONResponse:
        # A lost connection or a server that is down: the client may retry, unlike with a bug (500).
        log.warning("database unavailable", extra={"path": request.url.path, "error": str(error.orig)[:300]})
        return error_response(503, "database_unavailable", "the policy store's database is unavailable; retry later",
                              headers={"Retry-After": str(settings.retry_after_seconds)})

    app.state.materializer = Materializer(auto_activate=settings.auto_activate)
    return app


def after_batch_hooks(settings: StoreSettings, sessions, materializer: Materializer,
                      producer: DurableProducer) -> Callable[[Sequence[IncomingEvent]], None] | None:
    """What runs after each committed consumer batch: merging concurrent twins, and retiring harmful policies
    when AUTO_RETIRE_HARMFUL is on."""
    hooks = []
    if settings.merge_twins:
        hooks.append(TwinResolver(settings, sessions, materializer, producer).after_batch)
    if settings.auto_retire_harmful:
        hooks.append(AutoRetirement(settings, sessions, materializer, producer).after_batch)
    if not hooks:
        return None

    def run_hooks(events: Sequence[IncomingEvent]) -> None:
        for hook in hooks:
            hook(events)
    return run_hooks


def run() -> None:
    """Serve policy-store with uvicorn on POLICY_STORE_PORT."""
    settings = StoreSettings()
    serve(create_app(settings), service=settings.service_name, host=settings.policy_store_host,
          port=settings.policy_store_port, log_level=settings.log_level)


if __name__ == "__main__":
    run()
