"""W3C trace context from the HTTP request, through Kafka headers, to the store; OTLP export when configured.

Every service runs an OpenTelemetry tracer provider, so span and trace ids are real and propagate whether or not a
collector exists. Spans leave the process only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set: tracing costs nothing outside the process by default.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Tracer, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from policyloop_common.logging import log_context

log = logging.getLogger(__name__)

# The HTTP header of W3C Trace Context, and its CloudEvents binary-mode twin on Kafka records
# (the CloudEvents distributed-tracing extension attribute ``traceparent``).
HTTP_TRACEPARENT = "traceparent"
KAFKA_TRACEPARENT = "ce_traceparent"

_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
# The provider's tracer, asked for once: ``get_tracer`` builds and compares an instrumentation scope and sets a
# warnings filter each time (~50 µs), more than the span it would start.
_tracer: Tracer | None = None


def is_valid_traceparent(value: str | None) -> bool:
    """True for a version-00 ``traceparent`` with non-zero ids, the only form this system writes."""
    if not value or not _TRACEPARENT.match(value):
        return False
    _, trace_id, span_id, _ = value.split("-")
    return trace_id != "0" * 32 and span_id != "0" * 16


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a valid ``traceparent``, else None."""
    return traceparent.split("-")[1] if is_valid_traceparent(traceparent) else None


def build_tracer_provider(service: str, otlp_endpoint: str | None = None) -> TracerProvider:
    """A tracer provider for ``service``; spans are exported over OTLP/HTTP only when an endpoint is given."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if otlp_endpoint:
        # Imported here so a process that never exports does not load protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    return provider


def otlp_traces_endpoint(env: Mapping[str, str] = os.environ) -> str | None:
    """Where spans go, from the standard OpenTelemetry variables; None (no export) when neither is set."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    return None


def configure_tracing(service: str, env: Mapping[str, str] = os.environ) -> TracerProvider:
    """Install this process's tracer provider (once; a later call replaces it after flushing the old one)."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    endpoint = otlp_traces_endpoint(env)
    _provider = build_tracer_provider(service, endpoint)
    _tracer = _provider.get_tracer("policyloop")
    if endpoint:
        log.info("exporting traces over OTLP", extra={"endpoint": endpoint})
    return _provider


def shutdown_tracing() -> None:
    """Flush spans still queued for export; called when a service stops."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


@contextmanager
def traced(name: str, parent: str | None, *, kind: SpanKind = SpanKind.INTERNAL,
           feedback_id: str | None = None) -> Iterator[str]:
    """Run the block in a span that continues ``parent`` (a traceparent; a new trace when absent or malformed).

    Yields the traceparent to hand on to the next hop; log lines inside carry the trace id and ``feedback_id``.
    """
    if _tracer is None:
        configure_tracing("policyloop")
    tracer = _tracer
    carrier = {HTTP_TRACEPARENT: parent} if is_valid_traceparent(parent) else {}
    attributes = {"policyloop.feedback_id": feedback_id} if feedback_id else None
    with tracer.start_as_current_span(name, context=_PROPAGATOR.extract(carrier), kind=kind,
                                      attributes=attributes) as span:
        outgoing: dict[str, str] = {}
        _PROPAGATOR.inject(outgoing)
        with log_context(feedback_id=feedback_id, trace_id=format_trace_id(span.get_span_context().trace_id)):
            yield outgoing[HTTP_TRACEPARENT]
