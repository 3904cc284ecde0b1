"""Metrics, logs and trace context on the real stack, after real traffic."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest

from policyloop_common.events import POLICY_DECISIONS_TOPIC
from tests.support.kafka_reader import read_events
from tests.support.polling import eventually
from tests.support.prometheus import sample_value, scrape
from tests.support.stack import ServiceStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def traced_feedback(stack: ServiceStack) -> dict:
    """One negative feedback sent with the caller's W3C traceparent, followed until the store has its decision."""
    trace_id, parent_span = secrets.token_hex(16), secrets.token_hex(8)
    # A lesson of its own, so that the other end-to-end tests' first feedbacks still create their policies.
    body = {"conversation_id": "c-trace", "message_id": "m-trace", "rating": "negative",
            "comment": "The go-live date is systems.launched_at; there is no column go_live_date.",
            "context": {"question": "Which systems went live in 2024?",
                        "sql_queries": ["SELECT name FROM systems WHERE go_live_date >= '2024-01-01'"],
                        "results": [{"error": "column \"go_live_date\" does not exist"}]}}
    accepted = httpx.post(f"{stack.feedback_api}/v1/feedback", json=body, timeout=30,
                          headers={**stack.auth("olivia", "user"), "traceparent": f"00-{trace_id}-{parent_span}-01"})
    assert accepted.status_code == 202, accepted.text
    feedback_id = accepted.json()["feedback_id"]

    def decided():
        reply = httpx.get(f"{stack.policy_store}/v1/feedback/{feedback_id}", headers=stack.auth("olivia", "user"))
        return reply.json() if reply.status_code == 200 and reply.json()["status"] != "pending" else None

    return {"feedback_id": feedback_id, "trace_id": trace_id, "parent_span": parent_span,
            "status": eventually(decided, timeout=90, what="decision")}


def test_trace_context_goes_from_the_request_through_kafka(stack: ServiceStack, traced_feedback: dict) -> None:
    decisions = [event for event in read_events(stack.env["KAFKA_BOOTSTRAP_SERVERS"], POLICY_DECISIONS_TOPIC)
                 if getattr(event.payload, "feedback_id", None) == traced_feedback["feedback_id"]]
    assert len(decisions) == 1
    version, trace_id, span_id, flags = decisions[0].extra_headers["ce_traceparent"].split("-")
    # The same trace, continued by the generator's own span: not the caller's span, not a new trace.
    assert (version, trace_id, flags) == ("00", traced_feedback["trace_id"], "01")
    assert span_id != traced_feedback["parent_span"] and len(span_id) == 16


def test_every_service_logs_the_feedback_with_its_trace_id(stack: ServiceStack, traced_feedback: dict) -> None:
    for service in ("feedback-api", "policy-generator", "policy-store"):
        lines = [json.loads(line) for line in (stack.log_dir / f"{service}.log").read_text().splitlines()
                 if line.startswith("{")]
        tagged = [line for line in lines if line.get("feedback_id") == traced_feedback["feedback_id"]]
        assert tagged, f"{service} logged nothing about the feedback"
        assert {line["trace_id"] for line in tagged} == {traced_feedback["trace_id"]}, service


def test_http_and_ingest_metrics_count_the_traffic(stack: ServiceStack, traced_feedback: dict) -> None:
    samples = scrape(stack.feedback_api)
    assert sample_value(samples, "policyloop_http_requests_total", service="feedback-api", route="/v1/feedback",
                        method="POST", status="202") >= 1
    assert sample_value(samples, "policyloop_http_request_seconds_count", service="feedback-api",
                        route="/v1/feedback") >= 1
    assert sample_value(samples, "policyloop_feedback_accepted_total", rating="negative") >= 1
    assert sample_value(samples, "policyloop_events_published_total", service="feedback-api",
                        type="FeedbackSubmitted") >= 1


def test_generator_metrics_count_decisions_batches_and_lag(stack: ServiceStack, traced_feedback: dict) -> None:
    samples = scrape(stack.policy_generator)
    decided = sum(sample_value(samples, "policyloop_generator_decisions_total", kind=kind) or 0
                  for kind in ("new", "duplicate"))
    assert decided >= 1
    assert sample_value(samples, "policyloop_consumer_batch_size_count", service="policy-generator") >= 1
    assert sample_value(samples, "policyloop_consumer_batch_seconds_count", service="policy-generator") >= 1

    # Lag comes from librdkafka's statistics every few seconds; once caught up it is 0 on every partition.
    def lag_reported():
        lag = sample_value(scrape(stack.policy_generator), "policyloop_consumer_lag", service="policy-generator",
                           topic="feedback.submitted.v1")
        return lag is not None and lag == 0
    eventually(lag_reported, timeout=30, what="generator lag gauge at 0")


def test_store_metrics_show_policies_by_status_and_nothing_stuck(stack: ServiceStack, traced_feedback: dict) -> None:
    samples = scrape(stack.policy_store)
    assert sample_value(samples, "policyloop_store_state_readable") == 1
    assert sample_value(samples, "policyloop_store_policies", status="active") >= 1
    assert sample_value(samples, "policyloop_store_policies", status="retired") is not None
    assert sample_value(samples, "policyloop_consumer_batch_size_count", service="policy-store") >= 1

    def caught_up():
        now = scrape(stack.policy_store)
        return (sample_value(now, "policyloop_store_feedback_pending") == 0
                and sample_value(now, "policyloop_store_feedback_pending_oldest_seconds") == 0
                and sample_value(now, "policyloop_consumer_lag", service="policy-store") == 0)
    eventually(caught_up, timeout=30, what="store caught up with nothing pending")
