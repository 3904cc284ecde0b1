"""W3C trace context from the HTTP request, through Kafka headers, to the store; OTLP export when configured.

Every service runs an OpenTelemetry tracer provider. Spans leave the process only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; without it a
span is nothing but its ids, which are made as the provider would make them (random, never zero, the parent's
sampled flag kept) and propagate all the same, so the logs follow a feedback end to end whether or not a collector
exists, and tracing costs ~13 µs a span instead of the 83–92 µs of a span recorded for nobody (measured in
one process, docs/benchmarks.md finding 13).
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID, SpanKind, TraceFlags, Tracer, format_trace_id
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
# Whether spans leave the process: when they do not, ``traced`` makes their ids only.
_exporting = False
_HANDED_ON_FLAGS = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID


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
    global _provider, _tracer, _exporting
    if _provider is not None:
        _provider.shutdown()
    endpoint = otlp_traces_endpoint(env)
    _provider = build_tracer_provider(service, endpoint)
    _tracer = _provider.get_tracer("policyloop")
    _exporting = endpoint is not None
    if endpoint:
        log.info("exporting traces over OTLP", extra={"endpoint": endpoint})
    return _provider


def shutdown_tracing() -> None:
    """Flush spans still queued for export; called when a service stops."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def traced(name: str, parent: str | None, *, kind: SpanKind = SpanKind.INTERNAL,
           feedback_id: str | None = None) -> AbstractContextManager[str]:
    """Run the block in a span that continues ``parent`` (a traceparent; a new trace when absent or malformed).

    Yields the traceparent to hand on to the next hop; log lines inside carry the trace id and ``feedback_id``.
    """
    if _tracer is None:
        configure_tracing("policyloop")
    if _exporting:
        return _recorded_span(name, parent, kind, feedback_id)
    return _span_ids(parent, feedback_id)


@contextmanager
def _recorded_span(name: str, parent: str | None, kind: SpanKind, feedback_id: str | None) -> Iterator[str]:
    """A span of the tracer provider, exported when it ends."""
    carrier = {HTTP_TRACEPARENT: parent} if is_valid_traceparent(parent) else {}
    attributes = {"policyloop.feedback_id": feedback_id} if feedback_id else None
    with _tracer.start_as_current_span(name, context=_PROPAGATOR.extract(carrier), kind=kind,
                                       attributes=attributes) as span:
        outgoing: dict[str, str] = {}
        _PROPAGATOR.inject(outgoing)
        with log_context(feedback_id=feedback_id, trace_id=format_trace_id(span.get_span_context().trace_id)):
            yield outgoing[HTTP_TRACEPARENT]


@contextmanager
def _span_ids(parent: str | None, feedback_id: str | None) -> Iterator[str]:
    """The ids of a span nobody will read, made as the provider makes them: its default sampler (parent-based,
    else always on) samples the child of a sampled parent and a new trace, not the child of an unsampled one, and
    the flag of a random trace id is the parent's, or set for a new trace; other bits are not handed on."""
    if is_valid_traceparent(parent):
        _, trace_id, _, parent_flags = parent.split("-")
        flags = int(parent_flags, 16) & _HANDED_ON_FLAGS
    else:
        trace_id, flags = format_trace_id(_random_id(128, INVALID_TRACE_ID)), _HANDED_ON_FLAGS
    with log_context(feedback_id=feedback_id, trace_id=trace_id):
        yield f"00-{trace_id}-{_random_id(64, INVALID_SPAN_ID):016x}-{flags:02x}"


def _random_id(bits: int, invalid: int) -> int:
    """A random id of ``bits`` bits other than ``invalid`` (zero), like the SDK's ``RandomIdGenerator``."""
    value = random.getrandbits(bits)
    while value == invalid:
        value = random.getrandbits(bits)
    return value
