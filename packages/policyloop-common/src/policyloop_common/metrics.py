"""Prometheus metrics shared by the services and the ``/metrics`` endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter("policyloop_http_requests_total", "HTTP requests answered",
                        ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram("policyloop_http_request_seconds", "HTTP request latency", ["service", "route"])
EVENTS_CONSUMED = Counter("policyloop_events_consumed_total", "Events read from Kafka", ["service", "topic", "type"])
EVENTS_PUBLISHED = Counter("policyloop_events_published_total", "Events acknowledged by Kafka",
                           ["service", "topic", "type"])
DEAD_LETTERS = Counter("policyloop_dead_letters_total", "Records sent to a dead-letter topic",
                       ["service", "topic", "reason"])
INTERNAL_ERRORS = Counter("policyloop_internal_errors_total", "Errors caused by us, logged with context",
                          ["service", "where"])


def metrics_router() -> APIRouter:
    """``GET /metrics`` in the Prometheus text format."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
