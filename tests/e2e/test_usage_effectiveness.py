"""Usage and effectiveness over HTTP: the assistant reports the policies of an answer, the user rates the answer
through feedback-api, and the admin sees the feedback attributed to the policy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from policyloop_common.cloudevents import encode
from policyloop_common.events import POLICY_USAGE_TOPIC, DecisionDetails, DecisionKind, PolicyGenerated
from policyloop_common.kafka.producer import DurableProducer, durable_producer_config
from policyloop_common.policy import GeneratorInfo, Policy
from tests.support.kafka_reader import headers_of, read_topic
from tests.support.polling import eventually
from tests.support.prometheus import sample_value, scrape
from tests.support.stack import ServiceStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def column() -> str:
    """A column name no other test uses, so that only this module's questions are similar to its policy."""
    return f"zq{uuid.uuid4().hex[:8]}_score"


@pytest.fixture(scope="module")
def policy_id(stack: ServiceStack, column: str) -> str:
    """An active policy published as a generator decision; its id once the store has it."""
    producer = DurableProducer(durable_producer_config(
        {"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]}, delivery_timeout_ms=10_000))
    identifier, feedback_id, now = f"usage-{uuid.uuid4()}", str(uuid.uuid4()), datetime.now(UTC)
    policy = Policy(policy_id=identifier, version=1, status="pending_review", category="schema_mapping",
                    priority="high", rule=f"The rating of a system is systems.{column}; there is no rating column.",
                    correct_mapping=f"rating -> systems.{column}", missing_knowledge="",
                    examples=[f"Which systems have the highest {column}?"], rationale="",
                    source_feedback_ids=[feedback_id], support_count=1, created_at=now, updated_at=now,
                    generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))
    decision = DecisionDetails(kind=DecisionKind.NEW, provider="offline", model="offline-rules-v1")
    try:
        producer.publish_sync(encode(PolicyGenerated(feedback_id=feedback_id, policy=policy, decision=decision),
                                     source="/test"))
    finally:
        producer.close()
    admin = stack.auth("admin-1", "admin")
    eventually(lambda: httpx.get(f"{stack.policy_store}/v1/policies/{identifier}", headers=admin,
                                 timeout=10).json().get("status") == "active", what="seeded policy active")
    return identifier


def report_usage(stack: ServiceStack, body: dict, *roles: str) -> httpx.Response:
    headers = stack.auth("assistant-1", *roles) if roles else {}
    return httpx.post(f"{stack.policy_store}/v1/usage", json=body, headers=headers, timeout=30)


def effectiveness(stack: ServiceStack, policy_id: str, *roles: str) -> httpx.Response:
    headers = stack.auth("admin-1", *roles) if roles else {}
    return httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}/effectiveness", headers=headers, timeout=30)


def test_negative_feedback_on_an_answer_that_used_the_policy_is_attributed_to_it(
        stack: ServiceStack, policy_id: str, column: str) -> None:
    conversation, message = f"c-{uuid.uuid4()}", f"m-{uuid.uuid4()}"
    question = f"Which systems have a {column} above 4?"
    uses = effectiveness(stack, policy_id, "admin").json()["uses"]
    counted = sample_value(scrape(stack.policy_store), "policyloop_policy_uses_total") or 0.0
    accepted = report_usage(stack, {"conversation_id": conversation, "message_id": message,
                                    "policy_ids": [policy_id, policy_id], "question": question}, "assistant")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["policy_ids"] == [policy_id]

    usage_records = [record for record in read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], POLICY_USAGE_TOPIC)
                     if headers_of(record).get("ce_id") == body["usage_id"]]
    assert len(usage_records) == 1
    assert usage_records[0].key() == f"{conversation}/{message}".encode()
    assert headers_of(usage_records[0])["ce_type"] == "PolicyUsed"

    # The store applies the usage before it answers 202: the use counts at once.
    before = effectiveness(stack, policy_id, "admin").json()
    assert before["uses"] == uses + 1 and before["feedback_after_use"]["negative"] == 0

    rated = httpx.post(f"{stack.feedback_api}/v1/feedback", headers=stack.auth("rater-1", "user"), timeout=30, json={
        "conversation_id": conversation, "message_id": message, "rating": "negative",
        "comment": f"The answer ignored {column} ({uuid.uuid4().hex[:6]}).", "context": {"question": question}})
    assert rated.status_code == 202, rated.text

    def attributed() -> dict | None:
        figures = effectiveness(stack, policy_id, "admin").json()
        return figures if figures["feedback_after_use"]["negative"] == 1 else None
    figures = eventually(attributed, timeout=90, what="feedback attributed to the used policy")
    assert figures["policy_id"] == policy_id and figures["uses"] == uses + 1
    assert figures["feedback_after_use"] == {"positive": 0, "negative": 1, "negative_rate": 1.0}
    assert figures["similar_questions"]["after"] == {"feedback": 1, "negative": 1, "negative_rate": 1.0}
    assert figures["similar_questions"]["before"]["feedback"] == 0
    assert figures["activated_at"] is not None
    # One negative feedback is below EFFECTIVENESS_MIN_FEEDBACK: no signal yet.
    assert (figures["harmful"], figures["retirement_suggested"], figures["signals"]) == (False, False, [])
    samples = scrape(stack.policy_store)
    assert sample_value(samples, "policyloop_policy_uses_total") >= counted + 1
    assert sample_value(samples, "policyloop_policy_feedback_attributed_total", rating="negative") >= 1
    assert sample_value(samples, "policyloop_store_policies_retirement_suggested") is not None


def test_usage_needs_the_assistant_or_admin_role(stack: ServiceStack, policy_id: str) -> None:
    body = {"conversation_id": "c-roles", "message_id": "m-roles", "policy_ids": [policy_id]}
    assert report_usage(stack, body).status_code == 401
    forbidden = report_usage(stack, body, "user")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert report_usage(stack, body, "admin").status_code == 202


@pytest.mark.parametrize("change", [
    {"policy_ids": []},
    {"policy_ids": [f"p-{i}" for i in range(51)]},
    {"policy_ids": ["x" * 65]},
    {"message_id": ""},
    {"question": "q" * 4001},
    {"unexpected": True},
], ids=["no-policies", "too-many-policies", "id-too-long", "empty-message", "question-too-long", "unknown-field"])
def test_invalid_usage_bodies_are_422_naming_the_field(stack: ServiceStack, policy_id: str, change: dict) -> None:
    body = {"conversation_id": "c-bad", "message_id": "m-bad", "policy_ids": [policy_id], **change}
    reply = report_usage(stack, body, "assistant")
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_request"
    assert {detail["field"].split(".")[0] for detail in error["details"]} == {next(iter(change))}


def test_usage_naming_a_policy_the_store_does_not_have_is_recorded_and_reported(stack: ServiceStack,
                                                                               policy_id: str) -> None:
    unknown = f"missing-{uuid.uuid4()}"
    reply = report_usage(stack, {"conversation_id": "c", "message_id": f"m-{uuid.uuid4().hex[:6]}",
                                 "policy_ids": [policy_id, unknown]}, "assistant")
    assert reply.status_code == 202, reply.text
    assert reply.json()["policy_ids"] == [policy_id, unknown]
    assert reply.json()["unknown_policy_ids"] == [unknown]


def test_effectiveness_is_for_admins_and_known_policies(stack: ServiceStack, policy_id: str) -> None:
    assert effectiveness(stack, policy_id).status_code == 401
    assert effectiveness(stack, policy_id, "assistant").status_code == 403
    missing = effectiveness(stack, f"missing-{uuid.uuid4()}", "admin")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
