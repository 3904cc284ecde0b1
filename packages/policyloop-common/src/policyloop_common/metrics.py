"""Prometheus metrics shared by the services and the ``/metrics`` endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

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
CONSUMER_LAG = Gauge("policyloop_consumer_lag", "Records between the committed offset and the end of the partition, "
                     "per partition this process is assigned", ["service", "topic", "partition"])
CONSUMER_BATCH_SIZE = Histogram("policyloop_consumer_batch_size", "Records handed to one batch", ["service"],
                                buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
CONSUMER_BATCH_SECONDS = Histogram("policyloop_consumer_batch_seconds",
                                   "Time to process one batch, offsets committed", ["service"],
                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))


def metrics_router() -> APIRouter:
    """``GET /metrics`` in the Prometheus text format."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
