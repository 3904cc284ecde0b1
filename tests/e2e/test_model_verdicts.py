"""The model's five verdicts on a private stack whose generator talks to an OpenAI-compatible server over HTTP:
NEW, DUPLICATE, UPDATE (same policy, next version), SUPERSEDE (a new policy; the old one kept, superseded and
linked) and NOT_ACTIONABLE, each visible through the store's API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.infrastructure import ServerSet
from tests.support.polling import eventually
from tests.support.stack import ServiceStack, start_stack

pytestmark = pytest.mark.e2e

FIRST = {"category": "schema_mapping", "priority": "high",
         "rule": "The number of users of a system is systems.total_users; there is no column users.",
         "correct_mapping": "users -> systems.total_users", "missing_knowledge": "", "examples": [],
         "rationale": "The query named a column that does not exist."}
REFINED = {**FIRST, "rule": "The number of users of a system is systems.total_users (accounts, not people); "
                            "there is no column users.", "examples": ["How many users does each system have?"]}
REPLACEMENT = {**FIRST, "rule": "Since the 2026 schema the number of users is systems.accounts_total; "
                                "total_users no longer exists.",
               "correct_mapping": "users -> systems.accounts_total"}


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def stack(model: FakeOpenAI) -> Iterator[ServiceStack]:
    servers = ServerSet()
    try:
        running = start_stack(servers, LLM_PROVIDER="openai", OPENAI_BASE_URL=model.base_url,
                              OPENAI_MAX_ATTEMPTS="2")
        yield running
        running.stop()
    finally:
        servers.close()


def decide(stack: ServiceStack, comment: str) -> dict:
    """Post a negative feedback and wait for its decision in the store."""
    body = {"conversation_id": f"c-{uuid.uuid4().hex[:8]}", "message_id": "m-1", "rating": "negative",
            "comment": comment, "context": {"question": "How many users does each system have?",
                                            "sql_queries": ["SELECT name, users FROM systems"]}}
    accepted = httpx.post(f"{stack.feedback_api}/v1/feedback", json=body, headers=stack.auth("vera", "user"),
                          timeout=30)
    assert accepted.status_code == 202, accepted.text
    feedback_id = accepted.json()["feedback_id"]

    def probe() -> dict | None:
        reply = httpx.get(f"{stack.policy_store}/v1/feedback/{feedback_id}", headers=stack.auth("vera", "user"),
                          timeout=10)
        return reply.json() if reply.status_code == 200 and reply.json()["status"] != "pending" else None
    return {"feedback_id": feedback_id, **eventually(probe, timeout=90, what=f"decision of {feedback_id}")}


def policy(stack: ServiceStack, policy_id: str) -> dict:
    reply = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}", headers=stack.auth("root", "admin"),
                      timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_five_verdicts_end_in_the_store(stack: ServiceStack, model: FakeOpenAI) -> None:
    model.script(Reply.decision(verdict="NEW", policy=FIRST))
    first = decide(stack, "There is no users column; the user count is total_users.")
    assert first["status"] == "generated"
    original = first["policy_id"]

    model.script(Reply.decision(verdict="DUPLICATE", candidate=0))
    repeat = decide(stack, "Users are counted in total_users, please stop using users.")
    assert (repeat["status"], repeat["duplicate_of"]) == ("skipped", original)
    assert policy(stack, original)["support_count"] == 2

    # An id outside the list is refused and the call made again; the second answer refines the policy.
    model.script(Reply.decision(verdict="UPDATE", candidate=9, policy=REFINED),
                 Reply.decision(verdict="UPDATE", candidate=0, policy=REFINED))
    refinement = decide(stack, "total_users counts accounts, so people with two accounts count twice.")
    assert (refinement["status"], refinement["policy_id"]) == ("generated", original)
    refined = policy(stack, original)
    assert refined["version"] == 2 and refined["rule"] == REFINED["rule"]
    assert refinement["feedback_id"] in refined["source_feedback_ids"]

    model.script(Reply.decision(verdict="SUPERSEDE", candidate=0, policy=REPLACEMENT,
                                reasoning="total_users was renamed in the 2026 schema"))
    contradiction = decide(stack, "total_users does not exist any more: the 2026 schema calls it accounts_total.")
    assert contradiction["status"] == "generated" and contradiction["policy_id"] != original
    replacement = contradiction["policy_id"]
    old = policy(stack, original)
    assert (old["status"], old["superseded_by"]) == ("superseded", replacement) and old["valid_to"]
    assert policy(stack, replacement)["supersedes"] == [original]
    history = httpx.get(f"{stack.policy_store}/v1/policies/{original}/history",
                        headers=stack.auth("root", "admin"), timeout=10).json()["items"]
    assert [entry["action"] for entry in history][-2:] == ["updated", "supersede"]
    assert "renamed" in history[-1]["reason"]

    model.script(Reply.decision(verdict="NOT_ACTIONABLE", reasoning="nothing concrete"))
    vague = decide(stack, "The answer was bad.")
    assert (vague["status"], vague["reason"]) == ("skipped", "not_actionable")
