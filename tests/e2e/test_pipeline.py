"""End to end on the real stack: feedback over HTTP -> Kafka -> generator -> Kafka -> store -> HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest

from policyloop_common.events import FEEDBACK_SUBMITTED_TOPIC, POLICY_DECISIONS_TOPIC
from tests.support.kafka_reader import headers_of, read_events, read_topic
from tests.support.polling import eventually
from tests.support.stack import ServiceStack
from tools.local_stack.example import REPORT_EXAMPLE

pytestmark = pytest.mark.e2e

PARAPHRASE = {
    "conversation_id": "c-777",
    "message_id": "m-9",
    "rating": "negative",
    "comment": "Again it used a users column. The number of users of a system is in total_users.",
    "context": {
        "question": "Which systems have over 2000 users?",
        "sql_queries": ["SELECT name FROM systems WHERE users > 2000"],
        "results": [{"error": "column \"users\" does not exist"}],
    },
}


def submit(stack: ServiceStack, body: dict, user: str, **headers: str) -> httpx.Response:
    """POST /v1/feedback as ``user``."""
    return httpx.post(f"{stack.feedback_api}/v1/feedback", json=body,
                      headers={**stack.auth(user, "user"), **headers}, timeout=30)


def decided(stack: ServiceStack, feedback_id: str, user: str) -> dict:
    """Wait until the store has the decision for ``feedback_id``; return its status document."""
    def probe():
        reply = httpx.get(f"{stack.policy_store}/v1/feedback/{feedback_id}", headers=stack.auth(user, "user"),
                          timeout=10)
        return reply.json() if reply.status_code == 200 and reply.json()["status"] != "pending" else None
    return eventually(probe, timeout=90, what=f"decision for {feedback_id}")


@pytest.fixture(scope="module")
def first_policy(stack: ServiceStack) -> dict:
    """The report's example, submitted once: its status document and the policy it created."""
    accepted = submit(stack, REPORT_EXAMPLE, "alice")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    status = decided(stack, body["feedback_id"], "alice")
    policy = httpx.get(f"{stack.policy_store}/v1/policies/{status['policy_id']}",
                       headers=stack.auth("assistant-1", "assistant"), timeout=10)
    assert policy.status_code == 200, policy.text
    return {"accepted": body, "status": status, "policy": policy.json()}


def test_report_example_becomes_a_specific_policy(first_policy: dict) -> None:
    accepted, status, policy = first_policy["accepted"], first_policy["status"], first_policy["policy"]
    assert accepted["auto_generate_triggered"] is True
    assert accepted["message"] == "Đã ghi nhận phản hồi và tạo giải pháp tự động"
    assert accepted["status_url"] == f"/v1/feedback/{accepted['feedback_id']}"
    assert status["status"] == "generated"
    assert status["policy_id"] == policy["policy_id"]
    assert "total_users" in policy["rule"]
    assert policy["category"] == "schema_mapping"
    assert policy["source_feedback_ids"] == [accepted["feedback_id"]]
    assert policy["status"] in ("active", "pending_review")
    assert policy["generator"]["provider"] == "offline"


def test_decision_event_is_a_cloudevent_keyed_by_feedback(stack: ServiceStack, first_policy: dict) -> None:
    feedback_id = first_policy["accepted"]["feedback_id"]
    records = [m for m in read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], POLICY_DECISIONS_TOPIC)
               if m.key() == feedback_id.encode()]
    assert len(records) == 1
    headers = headers_of(records[0])
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "PolicyGenerated"
    assert headers["content-type"] == "application/json"
    assert headers["ce_id"] and headers["ce_source"] and headers["ce_time"]
    submitted = [m for m in read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], FEEDBACK_SUBMITTED_TOPIC)
                 if m.key() == feedback_id.encode()]
    assert headers_of(submitted[0])["ce_type"] == "FeedbackSubmitted"


def test_paraphrase_is_folded_into_the_same_policy(stack: ServiceStack, first_policy: dict) -> None:
    accepted = submit(stack, PARAPHRASE, "bob", **{"Accept-Language": "en"})
    assert accepted.status_code == 202
    assert accepted.json()["message"].startswith("Feedback recorded")
    status = decided(stack, accepted.json()["feedback_id"], "bob")
    assert status["status"] == "skipped"
    assert status["reason"] == "duplicate_policy"
    assert status["duplicate_of"] == first_policy["policy"]["policy_id"]
    policy = eventually(lambda: (p := httpx.get(
        f"{stack.policy_store}/v1/policies/{first_policy['policy']['policy_id']}",
        headers=stack.auth("admin-1", "admin"), timeout=10).json())["support_count"] == 2 and p,
        what="support counted")
    assert accepted.json()["feedback_id"] in policy["source_feedback_ids"]


def test_positive_feedback_is_skipped(stack: ServiceStack) -> None:
    body = {**REPORT_EXAMPLE, "rating": "positive", "comment": None, "message_id": "m-positive"}
    accepted = submit(stack, body, "carol")
    assert accepted.status_code == 202
    assert accepted.json()["auto_generate_triggered"] is False
    assert accepted.json()["message"] == "Đã ghi nhận phản hồi"
    status = decided(stack, accepted.json()["feedback_id"], "carol")
    assert status["status"] == "skipped"
    assert status["reason"] == "positive_feedback"


def test_comment_that_teaches_nothing_is_not_actionable(stack: ServiceStack) -> None:
    body = {**REPORT_EXAMPLE, "comment": "bad answer", "message_id": "m-bad"}
    accepted = submit(stack, body, "dave")
    status = decided(stack, accepted.json()["feedback_id"], "dave")
    assert status["status"] == "skipped"
    assert status["reason"] == "not_actionable"


def test_idempotency_key_gives_one_feedback_and_one_decision(stack: ServiceStack) -> None:
    body = {**REPORT_EXAMPLE, "message_id": "m-idem", "comment": "Budget is budget_vnd in million VND, not VND"}
    key = f"key-{uuid.uuid4()}"
    first = submit(stack, body, "erin", **{"Idempotency-Key": key})
    second = submit(stack, body, "erin", **{"Idempotency-Key": key})
    assert first.status_code == second.status_code == 202
    assert first.json()["feedback_id"] == second.json()["feedback_id"]
    other_user = submit(stack, body, "frank", **{"Idempotency-Key": key})
    assert other_user.json()["feedback_id"] != first.json()["feedback_id"]
    feedback_id = first.json()["feedback_id"]
    decided(stack, feedback_id, "erin")
    decisions = [e for e in read_events(stack.env["KAFKA_BOOTSTRAP_SERVERS"], POLICY_DECISIONS_TOPIC)
                 if e.payload.feedback_id == feedback_id]
    assert len(decisions) == 1
    reused = submit(stack, {**body, "comment": "something else entirely"}, "erin", **{"Idempotency-Key": key})
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


def test_feedback_status_is_private_to_its_owner(stack: ServiceStack, first_policy: dict) -> None:
    feedback_id = first_policy["accepted"]["feedback_id"]
    other = httpx.get(f"{stack.policy_store}/v1/feedback/{feedback_id}", headers=stack.auth("mallory", "user"))
    assert other.status_code == 404
    admin = httpx.get(f"{stack.policy_store}/v1/feedback/{feedback_id}", headers=stack.auth("root", "admin"))
    assert admin.status_code == 200
    unknown = httpx.get(f"{stack.policy_store}/v1/feedback/{uuid.uuid4()}", headers=stack.auth("root", "admin"))
    assert unknown.status_code == 404


def test_assistant_retrieves_the_policy_for_a_new_question(stack: ServiceStack, first_policy: dict) -> None:
    reply = httpx.get(f"{stack.policy_store}/v1/policies/relevant",
                      params={"question": "Count systems with more than 1000 users", "limit": 5},
                      headers=stack.auth("assistant-1", "assistant"))
    assert reply.status_code == 200
    items = reply.json()["items"]
    if first_policy["policy"]["status"] == "active":
        assert items and items[0]["policy"]["policy_id"] == first_policy["policy"]["policy_id"]
        assert 0 < items[0]["score"] <= 1


def test_review_actions_change_status_and_are_in_history(stack: ServiceStack) -> None:
    body = {**REPORT_EXAMPLE, "message_id": "m-review",
            "comment": "Active systems are those with status 'operating'; there is no status 'active'.",
            "context": {"question": "How many active systems are there?",
                        "sql_queries": ["SELECT count(*) FROM systems WHERE status = 'active'"]}}
    accepted = submit(stack, body, "grace")
    status = decided(stack, accepted.json()["feedback_id"], "grace")
    assert status["status"] == "generated"
    policy_id = status["policy_id"]
    admin = stack.auth("reviewer-1", "admin")
    forbidden = httpx.post(f"{stack.policy_store}/v1/policies/{policy_id}/retire",
                           headers=stack.auth("assistant-1", "assistant"), json={})
    assert forbidden.status_code == 403
    retired = httpx.post(f"{stack.policy_store}/v1/policies/{policy_id}/retire", headers=admin,
                         json={"reason": "covered by the glossary"})
    assert retired.status_code == 200, retired.text
    assert retired.json()["status"] == "retired"
    history = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}/history", headers=admin).json()
    entries = history["items"] if isinstance(history, dict) else history
    assert any(entry.get("reason") == "covered by the glossary" for entry in entries)
