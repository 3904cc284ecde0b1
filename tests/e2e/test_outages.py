"""Outages of the broker and of PostgreSQL on a private stack: bounded refusals, self-recovery, nothing lost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.infrastructure import ServerSet
from tests.support.polling import eventually
from tests.support.stack import ServiceStack, start_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def private() -> Iterator[tuple[ServerSet, ServiceStack]]:
    """A broker, a PostgreSQL server and the three services of their own: these tests stop the servers."""
    servers = ServerSet()
    try:
        stack = start_stack(servers)
        yield servers, stack
        stack.stop()
    finally:
        servers.close()


def feedback(lesson: str) -> dict:
    return {"conversation_id": "c-outage", "message_id": f"m-{uuid.uuid4().hex[:8]}", "rating": "negative",
            "comment": lesson, "context": {"question": "How many systems are there per province?",
                                           "sql_queries": ["SELECT province, count(*) FROM systems GROUP BY 1"]}}


def post(stack: ServiceStack, body: dict, key: str) -> httpx.Response:
    # The client's own timeout turns a hang into a test failure: a refusal must come well before it.
    return httpx.post(f"{stack.feedback_api}/v1/feedback", json=body, timeout=45,
                      headers={**stack.auth("oscar", "user"), "Idempotency-Key": key})


def decided(stack: ServiceStack, feedback_id: str) -> dict:
    def probe():
        try:
            reply = httpx.get(f"{stack.policy_store}/v1/feedback/{feedback_id}",
                              headers=stack.auth("oscar", "user"), timeout=10)
        except httpx.HTTPError:
            return None
        return reply.json() if reply.status_code == 200 and reply.json()["status"] != "pending" else None
    return eventually(probe, timeout=180, interval=1, what=f"decision for {feedback_id}")


def readiness(url: str) -> int:
    try:
        return httpx.get(f"{url}/readyz", timeout=10).status_code
    except httpx.HTTPError:
        return 0


def test_broker_outage_gives_503_never_202_then_recovers_by_itself(private) -> None:
    servers, stack = private
    servers.kafka.stop()
    try:
        body = feedback("The province of a system is agencies.province, not systems.location.")
        refused = post(stack, body, "outage-1")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "kafka_unavailable"
        assert int(refused.headers["Retry-After"]) >= 1
        assert readiness(stack.feedback_api) == 503
    finally:
        servers.kafka.start()
    # Nobody restarts the services: they reconnect, and the client's retry with the same key is accepted.
    eventually(lambda: readiness(stack.feedback_api) == 200, timeout=120, what="feedback-api ready again")
    accepted = eventually(lambda: (reply := post(stack, body, "outage-1")).status_code == 202 and reply,
                          timeout=120, interval=2, what="202 after the broker returned")
    status = decided(stack, accepted.json()["feedback_id"])
    assert status["status"] in {"generated", "skipped"}


def test_database_outage_holds_the_store_back_and_loses_nothing(private) -> None:
    servers, stack = private
    servers.postgres.stop()
    try:
        # Feedback does not need the database: it is accepted while the store waits.
        during = [post(stack, feedback(lesson), f"db-{index}") for index, lesson in enumerate((
            "Budgets are in budget_vnd, in millions of dong, not in dong.",
            "Operating systems have status 'operating'; there is no status 'active'.",
        ))]
        assert [reply.status_code for reply in during] == [202, 202]
        eventually(lambda: readiness(stack.policy_store) == 503, timeout=60, what="store not ready")
        unavailable = httpx.get(f"{stack.policy_store}/v1/feedback/{during[0].json()['feedback_id']}",
                                headers=stack.auth("oscar", "user"), timeout=30)
        assert unavailable.status_code == 503, unavailable.text
        assert unavailable.json()["error"]["code"]
    finally:
        servers.postgres.start()
    eventually(lambda: readiness(stack.policy_store) == 200, timeout=120, what="store ready again")
    for reply in during:
        assert decided(stack, reply.json()["feedback_id"])["status"] in {"generated", "skipped"}
