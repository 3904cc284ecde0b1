"""The parts every policyloop HTTP application has: error body, health, metrics, body limit, auth."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from policyloop_common.auth import TokenVerifier
from policyloop_common.body_limit import BodySizeLimit
from policyloop_common.errors import install_error_handlers
from policyloop_common.health import ReadinessCheck, health_router
from policyloop_common.http_metrics import HttpMetrics
from policyloop_common.metrics import metrics_router
from policyloop_common.security_headers import SecurityHeaders
from policyloop_common.settings import ServiceSettings


def service_app(*, settings: ServiceSettings, title: str, description: str,
                lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
                routers: list[APIRouter], readiness: Callable[[FastAPI], Mapping[str, ReadinessCheck]],
                max_body_bytes: int = 64 * 1024, authenticated: bool = True) -> FastAPI:
    """A FastAPI application with the service's routers and the shared plumbing around them."""
    app = FastAPI(title=title, version="1.0.0", description=description, lifespan=lifespan)
    app.state.settings = settings
    if authenticated:
        app.state.token_verifier = TokenVerifier(settings)
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    app.include_router(health_router(readiness(app)))
    app.include_router(metrics_router())
    app.add_middleware(HttpMetrics, service=settings.service_name)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    origins = settings.cors_origins()
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Accept-Language",
                                          "X-Answer-Receipt", "If-None-Match"],
                           expose_headers=["ETag", "Retry-After"], max_age=600)
    # Outermost, so that every answer, errors and 413s included, carries the headers.
    app.add_middleware(SecurityHeaders)
    return app
