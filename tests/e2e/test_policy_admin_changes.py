"""Changes reviewers make over HTTP: an edit is the next version of the same policy; superseding links a policy
to its successor and stops serving it. Who, when and why are in the history."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.test_pipeline import decided, submit
from tests.support.stack import ServiceStack

pytestmark = pytest.mark.e2e


def new_policy(stack: ServiceStack, comment: str, question: str) -> str:
    """A policy made by the pipeline from one negative feedback."""
    body = {"conversation_id": f"c-{uuid.uuid4().hex[:8]}", "message_id": "m-1", "rating": "negative",
            "comment": comment, "context": {"question": question}}
    feedback_id = submit(stack, body, "edna").json()["feedback_id"]
    return decided(stack, feedback_id, "edna")["policy_id"]


@pytest.fixture(scope="module")
def policy_id(stack: ServiceStack) -> str:
    column = f"launch_year_{uuid.uuid4().hex[:6]}"
    return new_policy(stack, f"The year a system went live is {column}, not created_at.",
                      "Which systems went live in 2020?")


def admin_get(stack: ServiceStack, path: str) -> dict:
    reply = httpx.get(f"{stack.policy_store}{path}", headers=stack.auth("a", "admin"), timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def supersede(stack: ServiceStack, policy_id: str, body: dict) -> httpx.Response:
    return httpx.post(f"{stack.policy_store}/v1/policies/{policy_id}/supersede", json=body,
                      headers=stack.auth("sam", "admin"), timeout=30)


def test_supersede_links_both_policies_and_stops_serving_the_old_one(stack: ServiceStack) -> None:
    column = f"unit_price_{uuid.uuid4().hex[:6]}"
    old = new_policy(stack, f"{column} is in VND.", "What is the unit price?")
    successor = new_policy(stack, f"Licence fees are in licence_fee_{uuid.uuid4().hex[:6]}, in thousands of VND.",
                           "How much do the licences of each agency cost?")
    assert successor != old
    reply = supersede(stack, old, {"superseded_by": successor, "reason": "the column was replaced"})
    assert reply.status_code == 200, reply.text
    document = reply.json()
    assert document["status"] == "superseded" and document["superseded_by"] == successor
    assert document["valid_to"] is not None
    assert admin_get(stack, f"/v1/policies/{successor}")["supersedes"] == [old]
    history = admin_get(stack, f"/v1/policies/{old}/history")["items"]
    assert (history[-1]["action"], history[-1]["actor"], history[-1]["reason"]) == (
        "supersede", "sam", "the column was replaced")
    active_ids = {p["policy_id"] for p in admin_get(stack, "/v1/policies?status=active&limit=200")["items"]}
    assert old not in active_ids
    superseded_ids = {p["policy_id"] for p in admin_get(stack, "/v1/policies?status=superseded&limit=200")["items"]}
    assert old in superseded_ids


def test_supersede_needs_a_live_successor_other_than_itself(stack: ServiceStack, policy_id: str) -> None:
    assert supersede(stack, policy_id, {"superseded_by": policy_id}).status_code == 422
    assert supersede(stack, policy_id, {"superseded_by": "no-such-policy"}).status_code == 422
    assert supersede(stack, policy_id, {}).status_code == 422


def patch(stack: ServiceStack, policy_id: str, body: dict, *roles: str) -> httpx.Response:
    return httpx.patch(f"{stack.policy_store}/v1/policies/{policy_id}", json=body,
                       headers=stack.auth("editor-ed", *(roles or ("admin",))), timeout=30)


def test_edit_makes_the_next_version_and_is_in_the_history(stack: ServiceStack, policy_id: str) -> None:
    before = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}", headers=stack.auth("a", "admin"),
                       timeout=10).json()
    reply = patch(stack, policy_id, {"priority": "low", "examples": ["Systems launched in 2020?"],
                                     "reason": "examples were too narrow"})
    assert reply.status_code == 200, reply.text
    after = reply.json()
    assert after["version"] == before["version"] + 1
    assert after["priority"] == "low" and after["examples"] == ["Systems launched in 2020?"]
    assert after["rule"] == before["rule"] and after["status"] == before["status"]
    history = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}/history", headers=stack.auth("a", "admin"),
                        timeout=10).json()["items"]
    assert history[-1]["action"] == "edited" and history[-1]["actor"] == "editor-ed"
    assert history[-1]["reason"] == "examples were too narrow" and history[-1]["version"] == after["version"]


@pytest.mark.parametrize("body", [{}, {"reason": "nothing else"}, {"rule": None}, {"colour": "red"},
                                  {"priority": "urgent"}, {"rule": ""}])
def test_edits_that_change_nothing_or_are_malformed_are_422(stack: ServiceStack, policy_id: str,
                                                            body: dict) -> None:
    reply = patch(stack, policy_id, body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["code"] == "invalid_request"


def test_only_admins_edit_and_only_open_policies(stack: ServiceStack, policy_id: str) -> None:
    assert patch(stack, policy_id, {"priority": "high"}, "assistant").status_code == 403
    assert patch(stack, "no-such-policy", {"priority": "high"}).status_code == 404
    retired = httpx.post(f"{stack.policy_store}/v1/policies/{policy_id}/retire", json={"reason": "done"},
                         headers=stack.auth("a", "admin"), timeout=30)
    assert retired.status_code == 200, retired.text
    closed = patch(stack, policy_id, {"priority": "high"})
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "invalid_transition"
