"""policy-store's API over HTTP, fed through its real Kafka consumer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from policyloop_common.cloudevents import encode
from policyloop_common.events import DecisionDetails, DecisionKind, PolicyGenerated
from policyloop_common.kafka.producer import DurableProducer, durable_producer_config
from policyloop_common.policy import GeneratorInfo, Policy
from tests.support.kafka_reader import headers_of, read_topic
from tests.support.polling import eventually
from tests.support.stack import ServiceStack

pytestmark = pytest.mark.e2e

RULES = [
    ("schema_mapping", "Use agencies.province for the location of a system; systems has no province column.",
     "Which systems are in Hue province?"),
    ("data_interpretation", "budget_vnd is in millions of VND: 45,200 means 45.2 billion VND.",
     "What is the total budget of the Ministry of Finance?"),
    ("business_logic", "security_level 3 or above means security_level >= 3.",
     "How many systems have security level 3 or above?"),
    ("query_construction", "Count DISTINCT systems when joining integrations; a system has several rows.",
     "How many systems are connected to NDXP?"),
    ("response_format", "Answer in Vietnamese when the question is in Vietnamese.", "Có bao nhiêu hệ thống?"),
]


@pytest.fixture(scope="module")
def producer(stack: ServiceStack):
    durable = DurableProducer(durable_producer_config({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]},
                                                      delivery_timeout_ms=10_000))
    yield durable
    durable.close()


@pytest.fixture(scope="module")
def seeded(stack: ServiceStack, producer: DurableProducer) -> list[str]:
    """Policies published as generator decisions; returns their ids once the store has them all."""
    ids = []
    # Written a day ago: lessons the suite's other tests generate now (budget_vnd in millions) are no concurrent
    # twins of these, which policy-store would merge (MERGE_TWINS).
    base = datetime.now(UTC) - timedelta(days=1)
    for i, (category, rule, question) in enumerate(RULES):
        policy_id, feedback_id = f"seed-{uuid.uuid4()}", str(uuid.uuid4())
        policy = Policy(policy_id=policy_id, version=1, status="pending_review", category=category,
                        priority="high" if i % 2 else "medium", rule=rule, correct_mapping=None,
                        missing_knowledge="", examples=[question], rationale="", source_feedback_ids=[feedback_id],
                        support_count=1, created_at=base + timedelta(milliseconds=i), updated_at=base,
                        generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))
        decision = DecisionDetails(kind=DecisionKind.NEW, provider="offline", model="offline-rules-v1")
        producer.publish_sync(encode(PolicyGenerated(feedback_id=feedback_id, policy=policy, decision=decision),
                                     source="/test"))
        ids.append(policy_id)
    admin = stack.auth("admin-1", "admin")
    eventually(lambda: all(httpx.get(f"{stack.policy_store}/v1/policies/{pid}", headers=admin).status_code == 200
                           for pid in ids), what="seeded policies materialized")
    return ids


def test_pagination_walks_every_policy_once_newest_first(stack: ServiceStack, seeded: list[str]) -> None:
    admin = stack.auth("admin-1", "admin")
    everything = httpx.get(f"{stack.policy_store}/v1/policies", params={"limit": 200}, headers=admin).json()
    walked, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{stack.policy_store}/v1/policies", params=params, headers=admin).json()
        assert len(page["items"]) <= 2
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [p["policy_id"] for p in walked] == [p["policy_id"] for p in everything["items"]]
    assert set(seeded) <= {p["policy_id"] for p in walked}
    created = [p["created_at"] for p in walked]
    assert created == sorted(created, reverse=True)


def test_filters_and_bad_parameters(stack: ServiceStack, seeded: list[str]) -> None:
    admin = stack.auth("admin-1", "admin")
    only = httpx.get(f"{stack.policy_store}/v1/policies", params={"category": "data_interpretation"},
                     headers=admin).json()["items"]
    assert only and all(p["category"] == "data_interpretation" for p in only)
    for params in ({"status": "unknown"}, {"limit": 0}, {"limit": 1000}, {"cursor": "garbage!"}):
        reply = httpx.get(f"{stack.policy_store}/v1/policies", params=params, headers=admin)
        assert reply.status_code == 422, params
        assert reply.json()["error"]["code"] == "invalid_request"


def test_list_etag_gives_304_until_something_changes(stack: ServiceStack, seeded: list[str]) -> None:
    admin = stack.auth("admin-1", "admin")
    url = f"{stack.policy_store}/v1/policies"
    first = httpx.get(url, headers=admin)
    tag = first.headers["ETag"]
    again = httpx.get(url, headers={**admin, "If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    retired = httpx.post(f"{url}/{seeded[4]}/retire", headers=admin, json={"reason": "test"})
    assert retired.status_code == 200
    changed = httpx.get(url, headers={**admin, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag


def test_relevant_ranks_the_matching_policy_first(stack: ServiceStack, seeded: list[str]) -> None:
    reply = httpx.get(f"{stack.policy_store}/v1/policies/relevant",
                      params={"question": "Tổng ngân sách của các hệ thống thuộc Bộ Tài chính là bao nhiêu?"},
                      headers=stack.auth("assistant-1", "assistant"))
    assert reply.status_code == 200
    items = reply.json()["items"]
    assert items[0]["policy"]["policy_id"] == seeded[1]
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)


def test_review_transitions_and_roles(stack: ServiceStack, seeded: list[str]) -> None:
    admin = stack.auth("admin-1", "admin")
    policy = f"{stack.policy_store}/v1/policies/{seeded[2]}"
    assert httpx.post(f"{policy}/approve", headers=stack.auth("u", "user")).status_code == 403
    assert httpx.post(f"{policy}/approve", headers=admin).status_code == 409  # already active
    rejected = httpx.post(f"{policy}/reject", headers=admin, json={"reason": "wrong threshold"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    conflict = httpx.post(f"{policy}/retire", headers=admin)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "invalid_transition"
    history = httpx.get(f"{policy}/history", headers=admin).json()["items"]
    assert [h["action"] for h in history] == ["created", "reject"]
    assert history[1]["actor"] == "admin-1" and history[1]["reason"] == "wrong threshold"
    assert httpx.get(f"{policy}/history", headers=stack.auth("bot", "assistant")).status_code == 403
    missing = httpx.post(f"{stack.policy_store}/v1/policies/{uuid.uuid4()}/approve", headers=admin)
    assert missing.status_code == 404


def test_reads_need_a_token_and_the_right_role(stack: ServiceStack, seeded: list[str]) -> None:
    url = f"{stack.policy_store}/v1/policies/{seeded[0]}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(url, headers=stack.auth("u1", "user")).status_code == 403
    assert httpx.get(url, headers=stack.auth("bot", "assistant")).json()["policy_id"] == seeded[0]


def test_poison_on_the_decisions_topic_is_dead_lettered_and_the_store_goes_on(
        stack: ServiceStack, producer: DurableProducer, seeded: list[str]) -> None:
    from confluent_kafka import Producer

    bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    raw = Producer({"bootstrap.servers": bootstrap})
    marker = f"poison-{uuid.uuid4()}".encode()
    raw.produce("policy.decisions.v1", key=marker, value=b"\x00\x01 not an event",
                headers=[("ce_specversion", b"1.0"), ("ce_type", b"PolicyGenerated")])
    assert raw.flush(10) == 0
    dead = eventually(lambda: [m for m in read_topic(bootstrap, "policy.decisions.v1.dlq", settle_seconds=0.5)
                               if m.key() == marker], what="poison dead-lettered")
    assert headers_of(dead[0])["dlq_original_topic"] == "policy.decisions.v1"
    assert httpx.get(f"{stack.policy_store}/readyz").status_code == 200
