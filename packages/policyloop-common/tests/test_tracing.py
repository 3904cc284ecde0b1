"""W3C trace context propagation, and span export over OTLP/HTTP to a real HTTP receiver."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from policyloop_common import tracing
from policyloop_common.logging import trace_id_var
from policyloop_common.tracing import (
    build_tracer_provider,
    configure_tracing,
    is_valid_traceparent,
    otlp_traces_endpoint,
    shutdown_tracing,
    trace_id_of,
    traced,
)


def test_a_span_continues_the_callers_trace_with_a_span_of_its_own() -> None:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    with traced("step", f"00-{trace_id}-{span_id}-01") as handed_on:
        assert trace_id_var.get() == trace_id
    version, handed_trace, handed_span, flags = handed_on.split("-")
    assert (version, handed_trace, flags) == ("00", trace_id, "01")
    assert handed_span != span_id


@pytest.mark.parametrize("parent", [
    None, "", "garbage",
    "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # all-zero trace id
    "01-" + "a" * 32 + "-" + "b" * 16 + "-01",  # a version this system does not write
    "00-" + "A" * 32 + "-" + "b" * 16 + "-01",  # upper-case hex is not W3C
])
def test_a_missing_or_malformed_parent_starts_a_new_trace(parent: str | None) -> None:
    with traced("step", parent) as handed_on:
        pass
    assert is_valid_traceparent(handed_on)
    assert parent is None or trace_id_of(handed_on) not in parent.lower()


def test_two_requests_without_a_parent_get_different_traces() -> None:
    with traced("one", None) as first, traced("two", None) as second:
        pass
    assert trace_id_of(first) != trace_id_of(second)


def test_export_is_off_unless_an_endpoint_is_configured() -> None:
    assert otlp_traces_endpoint({}) is None
    assert otlp_traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}) == \
        "http://collector:4318/v1/traces"
    assert otlp_traces_endpoint({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/t",
                                 "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other"}) == "http://c:4318/t"
    assert otlp_traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}) is None


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args) -> None:
        logging.getLogger(__name__).debug("collector request")


@pytest.fixture
def collector() -> Iterator[tuple[str, list]]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", _Collector.received
    server.shutdown()


def test_spans_are_exported_over_otlp_http_when_configured(collector: tuple[str, list]) -> None:
    endpoint, received = collector
    provider = build_tracer_provider("feedback-api", endpoint)
    with provider.get_tracer("test").start_as_current_span("feedback.submit") as span:
        span.set_attribute("policyloop.feedback_id", "f-1")
        exported_trace = span.get_span_context().trace_id
    assert provider.force_flush(timeout_millis=10_000)
    provider.shutdown()

    assert [path for path, _ in received] == ["/v1/traces"]
    request = ExportTraceServiceRequest.FromString(received[0][1])
    resource_spans = request.resource_spans[0]
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    spans = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert service == "feedback-api"
    assert [s.name for s in spans] == ["feedback.submit"]
    assert spans[0].trace_id.hex() == f"{exported_trace:032x}"


def test_traced_spans_go_to_the_provider_configured_last(collector: tuple[str, list]) -> None:
    endpoint, received = collector
    configure_tracing("first", {})
    configure_tracing("policy-store", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint})
    try:
        with traced("store.apply", None) as handed_on:
            trace_id = trace_id_of(handed_on)
        shutdown_tracing()
    finally:
        configure_tracing("policyloop", {})

    spans = []
    for _, body in received:
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            spans += [(service, s.name, s.trace_id.hex()) for scope in resource_spans.scope_spans
                      for s in scope.spans]
    assert spans == [("policy-store", "store.apply", trace_id)]


@pytest.mark.parametrize("flags", ["01", "00", "03", "02", "ff", None])
def test_without_export_a_span_hands_on_what_a_recorded_one_would(collector: tuple[str, list],
                                                                   flags: str | None) -> None:
    endpoint, _ = collector
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    parent = f"00-{trace_id}-{span_id}-{flags}" if flags else None
    handed_on = {}
    try:
        for exporting, env in [(True, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint}), (False, {})]:
            configure_tracing("policy-store", env)
            with traced("store.apply", parent, feedback_id="f-1") as handed_on[exporting]:
                assert trace_id_var.get() == trace_id_of(handed_on[exporting])
    finally:
        configure_tracing("policyloop", {})

    recorded, ids_only = (handed_on[True].split("-"), handed_on[False].split("-"))
    assert is_valid_traceparent(handed_on[False])
    assert ids_only[0] == recorded[0] == "00"
    assert ids_only[3] == recorded[3]  # sampled and random-id flags, as the provider decides them
    if parent:
        assert ids_only[1] == recorded[1] == trace_id
        assert span_id not in (ids_only[2], recorded[2])
    else:
        assert ids_only[1] != recorded[1]


def test_span_and_trace_ids_are_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter([0, 7, 0, 9])
    monkeypatch.setattr(tracing.random, "getrandbits", lambda bits: next(drawn))
    with traced("step", None) as handed_on:
        assert trace_id_var.get() == f"{7:032x}"
    assert handed_on == f"00-{7:032x}-{9:016x}-03"
