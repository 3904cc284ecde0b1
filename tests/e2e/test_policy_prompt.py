"""``GET /v1/policies/prompt`` over HTTP on the running stack, its policies fed through Kafka.

The policies here teach lessons about made-up columns named after a word unique to this run, so that the
policies other tests leave on the shared stack never match these questions.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from policy_store.prompt_block import LABELS
from policyloop_common.cloudevents import encode
from policyloop_common.events import DecisionDetails, DecisionKind, PolicyGenerated
from policyloop_common.kafka.producer import DurableProducer, durable_producer_config
from policyloop_common.policy import GeneratorInfo, Policy
from tests.support.polling import eventually
from tests.support.stack import ServiceStack

pytestmark = pytest.mark.e2e

WORD = "zq" + "".join(chr(ord("a") + int(digit, 16)) for digit in uuid.uuid4().hex[:8])
RETIRED_WORD = "zq" + "".join(chr(ord("a") + int(digit, 16)) for digit in uuid.uuid4().hex[:8])
LESSONS = [
    # (key, category, priority, support, rule, mapping, examples)
    ("quota", "schema_mapping", "high", 3,
     f"Use the column {WORD}_ledger.{WORD}_quota for the {WORD} quota of a system; there is no column {WORD}.",
     f"{WORD} -> {WORD}_ledger.{WORD}_quota",
     [f"How many systems have a {WORD} quota above 10?", f"Hệ thống nào có {WORD} quota lớn nhất?"]),
    ("monthly", "data_interpretation", "medium", 1,
     f"The {WORD} quota is a yearly figure: divide {WORD}_ledger.{WORD}_quota by 12 for a monthly {WORD} quota.",
     None, [f"What is the monthly {WORD} quota of each system?"]),
    ("rounding", "response_format", "low", 1,
     f"Show {WORD} quotas rounded to whole numbers, never with decimals.", None, [f"List the {WORD} quotas"]),
    ("retired", "business_logic", "medium", 1,
     f"A {RETIRED_WORD} budget of 0 means the figure was not reported, not that nothing was spent.", None,
     [f"Which systems have no {RETIRED_WORD} budget?"]),
]
QUESTION = f"Which systems have the largest {WORD} quota?"
QUESTION_VI = f"Hệ thống nào có {WORD} quota cao nhất?"


@pytest.fixture(scope="module")
def producer(stack: ServiceStack):
    durable = DurableProducer(durable_producer_config({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]},
                                                      delivery_timeout_ms=10_000))
    yield durable
    durable.close()


@pytest.fixture(scope="module")
def seeded(stack: ServiceStack, producer: DurableProducer) -> dict[str, dict]:
    """The lessons published as generator decisions; their policies by key once the store has them all."""
    base = datetime.now(UTC)
    policies = {}
    for position, (key, category, priority, support, rule, mapping, examples) in enumerate(LESSONS):
        policy_id, feedback_id = f"prompt-{key}-{uuid.uuid4()}", str(uuid.uuid4())
        sources = [feedback_id, *(str(uuid.uuid4()) for _ in range(support - 1))]
        policy = Policy(policy_id=policy_id, version=1, status="pending_review", category=category,
                        priority=priority, rule=rule, correct_mapping=mapping, missing_knowledge="",
                        examples=examples, rationale="", source_feedback_ids=sources, support_count=support,
                        created_at=base + timedelta(milliseconds=position), updated_at=base,
                        generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))
        decision = DecisionDetails(kind=DecisionKind.NEW, provider="offline", model="offline-rules-v1")
        producer.publish_sync(encode(PolicyGenerated(feedback_id=feedback_id, policy=policy, decision=decision),
                                     source="/test"))
        policies[key] = policy.model_dump(mode="json")
    admin = stack.auth("admin-1", "admin")
    eventually(lambda: all(httpx.get(f"{stack.policy_store}/v1/policies/{p['policy_id']}", headers=admin)
                           .json().get("status") == "active" for p in policies.values()),
               what="prompt policies materialized and active")
    return policies


def prompt(stack: ServiceStack, question: str, headers: dict | None = None, **params) -> httpx.Response:
    return httpx.get(f"{stack.policy_store}/v1/policies/prompt", params={"question": question, **params},
                     headers=headers if headers is not None else stack.auth("assistant-1", "assistant"))


def entries(block: str) -> list[str]:
    """The numbered lines of a block, their numbers and labels removed: the rules, in order."""
    return [re.sub(r"^\d+\. \[[^\]]*\] ", "", line) for line in block.splitlines() if re.match(r"^\d+\. ", line)]


def test_the_prompt_lists_the_relevant_policies_in_the_order_of_relevant(stack: ServiceStack,
                                                                        seeded: dict[str, dict]) -> None:
    reply = prompt(stack, QUESTION)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.headers["ETag"].startswith('"')
    block = reply.text
    assert block.splitlines()[0] == LABELS["en"].heading
    ours = {policy["rule"] for policy in seeded.values()}
    shown = [rule for rule in entries(block) if rule in ours]
    relevant = httpx.get(f"{stack.policy_store}/v1/policies/relevant", params={"question": QUESTION, "limit": 10},
                         headers=stack.auth("assistant-1", "assistant")).json()["items"]
    assert shown == [item["policy"]["rule"] for item in relevant if item["policy"]["rule"] in ours]
    # The lessons about the question's column come first, the high-priority one leading; a policy that shares
    # only "which systems have" with the question may follow them.
    assert shown[0] == seeded["quota"]["rule"]
    assert set(shown[:3]) == {seeded[key]["rule"] for key in ("quota", "monthly", "rounding")}
    assert f"   Mapping: {seeded['quota']['correct_mapping']}" in block
    assert f"   Example: How many systems have a {WORD} quota above 10?" in block


def test_relevant_items_carry_the_parts_of_their_score(stack: ServiceStack, seeded: dict[str, dict]) -> None:
    items = httpx.get(f"{stack.policy_store}/v1/policies/relevant", params={"question": QUESTION},
                      headers=stack.auth("assistant-1", "assistant")).json()["items"]
    first = items[0]
    assert first["policy"]["policy_id"] == seeded["quota"]["policy_id"]
    assert set(first["scores"]) == {"semantic", "keyword", "schema", "priority", "support"}
    assert all(0 <= value <= 1 for value in first["scores"].values())
    assert first["scores"]["priority"] == 1.0 and first["scores"]["support"] > 0
    assert 0 < first["score"] <= 1


@pytest.mark.parametrize("max_chars", [200, 260, 330, 420, 2000])
def test_the_prompt_stays_within_max_chars_with_whole_policies(stack: ServiceStack, seeded: dict[str, dict],
                                                               max_chars: int) -> None:
    reply = prompt(stack, QUESTION, max_chars=max_chars)
    assert reply.status_code == 200
    assert len(reply.text) <= max_chars
    ours = {policy["rule"] for policy in seeded.values()}
    rules = entries(reply.text)
    assert all(rule in ours for rule in rules if WORD in rule), "a rule was cut"
    if max_chars == 2000:
        assert {seeded[key]["rule"] for key in ("quota", "monthly", "rounding")} <= set(rules)


def test_a_vietnamese_question_gets_vietnamese_labels(stack: ServiceStack, seeded: dict[str, dict]) -> None:
    block = prompt(stack, QUESTION_VI).text
    vietnamese = LABELS["vi"]
    assert block.splitlines()[0] == vietnamese.heading
    assert f"1. [ánh xạ lược đồ, ưu tiên cao] {seeded['quota']['rule']}" in block
    # The quota policy has an example in each language: the Vietnamese one is shown.
    assert f"   {vietnamese.example}: Hệ thống nào có {WORD} quota lớn nhất?" in block
    assert "Example:" not in block and "Mapping:" not in block


def test_an_unchanged_prompt_is_not_sent_again_until_a_policy_changes(stack: ServiceStack,
                                                                       seeded: dict[str, dict]) -> None:
    question = f"Which systems have no {RETIRED_WORD} budget reported?"
    first = prompt(stack, question)
    assert seeded["retired"]["rule"] in first.text
    tag = first.headers["ETag"]
    again = prompt(stack, question, headers={**stack.auth("assistant-1", "assistant"), "If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    admin = stack.auth("admin-1", "admin")
    retired = httpx.post(f"{stack.policy_store}/v1/policies/{seeded['retired']['policy_id']}/retire", headers=admin,
                         json={"reason": "prompt test"})
    assert retired.status_code == 200
    changed = prompt(stack, question, headers={**stack.auth("assistant-1", "assistant"), "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert seeded["retired"]["rule"] not in changed.text


def test_nothing_relevant_gives_an_empty_body(stack: ServiceStack, seeded: dict[str, dict]) -> None:
    nonsense = "".join(chr(ord("a") + int(digit, 16)) for digit in uuid.uuid4().hex[:12])
    reply = prompt(stack, f"{nonsense} {nonsense[::-1]}")
    assert reply.status_code == 200 and reply.text == ""
    assert reply.headers["content-type"] == "text/plain; charset=utf-8" and "ETag" in reply.headers


def test_the_prompt_needs_a_reader_token_and_valid_parameters(stack: ServiceStack, seeded: dict[str, dict]) -> None:
    assert prompt(stack, QUESTION, headers={}).status_code == 401
    assert prompt(stack, QUESTION, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert prompt(stack, QUESTION, headers=stack.auth("u1", "user")).status_code == 403
    assert prompt(stack, QUESTION, headers=stack.auth("admin-1", "admin")).status_code == 200
    for params in ({"max_chars": 199}, {"max_chars": 20_001}, {"max_chars": "many"}, {"limit": 0}):
        reply = prompt(stack, QUESTION, **params)
        assert reply.status_code == 422, params
        assert reply.json()["error"]["code"] == "invalid_request"
    missing = httpx.get(f"{stack.policy_store}/v1/policies/prompt", headers=stack.auth("assistant-1", "assistant"))
    assert missing.status_code == 422
    assert prompt(stack, "").status_code == 422
