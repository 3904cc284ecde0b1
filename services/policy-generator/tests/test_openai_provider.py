"""The openai provider against a real HTTP server speaking the chat-completions API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from prometheus_client import REGISTRY

from policy_generator.context import GenerationContext
from policy_generator.prompts import SYSTEM_PROMPT, decision_schema, user_message
from policy_generator.providers.base import Candidate, DecisionRequest, ProviderError, Verdict
from policy_generator.providers.openai_provider import CLIENTS, OpenAIProvider, TokenPricing
from policyloop_common.policy import GeneratorInfo, Policy
from tests.support.fake_openai import FakeOpenAI, Reply

POLICY = {"category": "schema_mapping", "priority": "high",
          "rule": "Use systems.total_users for the number of users; there is no column users.",
          "correct_mapping": "users -> systems.total_users",
          "missing_knowledge": "The user count column is total_users.",
          "examples": ["How many systems have more than 500 users?"], "rationale": "Avoids a missing column."}
EXPECTED_RESPONSE_FORMAT = {"type": "json_schema",
                            "json_schema": {"name": "policy_decision", "strict": True, "schema": decision_schema()}}
CONTEXT = GenerationContext(question="How many systems have more than 500 users?",
                            comment="Wrong column: the table has total_users, not users",
                            sql_queries=["SELECT count(*) FROM systems WHERE users > 500"])


def existing_policy() -> Policy:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return Policy(**POLICY, policy_id="p-1", version=1, status="active", source_feedback_ids=["f-0"],
                  support_count=1, created_at=now, updated_at=now,
                  generator=GeneratorInfo(provider="openai", model="gpt-4o-mini"))


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


class Sleeps:
    """Records backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def provider(server: FakeOpenAI, sleeps: Sleeps | None = None, **overrides) -> OpenAIProvider:
    options = dict(api_key="test-key", base_url=server.base_url, timeout_seconds=5.0, sleep=sleeps or Sleeps())
    options.update(overrides)
    return OpenAIProvider(**options)


def request(with_candidate: bool = False) -> DecisionRequest:
    candidates = [Candidate(index=0, policy=existing_policy(), similarity=0.4)] if with_candidate else []
    return DecisionRequest(context=CONTEXT, candidates=candidates)


def test_good_answer_gives_a_new_policy_and_the_request_is_as_documented(server: FakeOpenAI) -> None:
    server.script(Reply.decision(verdict="NEW", policy=POLICY))
    decision = provider(server).decide(request())
    assert decision.verdict is Verdict.NEW
    assert decision.policy.rule == POLICY["rule"]
    assert decision.llm_calls == 1
    assert decision.usage.prompt_tokens == 120 and decision.usage.completion_tokens == 60
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.headers["content-type"] == "application/json"
    # Exactly the documented chat-completions fields, nothing more.
    assert set(sent.body) == {"model", "messages", "response_format", "temperature"}
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["temperature"] == 0.3
    assert sent.body["response_format"] == EXPECTED_RESPONSE_FORMAT
    assert sent.body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert sent.body["messages"][1]["role"] == "user" and len(sent.body["messages"]) == 2
    user_text = sent.body["messages"][1]["content"]
    assert "total_users" in user_text and "<feedback>" in user_text


@pytest.mark.parametrize(("model", "temperature"), [("gpt-4o-mini", 0.3), ('qwen2.5:7b "q4"', 0.0)])
def test_the_body_is_byte_for_byte_what_the_sdk_sends(server: FakeOpenAI, model: str, temperature: float) -> None:
    server.script(Reply.decision(verdict="NOT_ACTIONABLE"), Reply.decision(verdict="NOT_ACTIONABLE"))
    vietnamese = GenerationContext(question="Có bao nhiêu hệ thống có hơn 500 người dùng?",
                                   comment="Sai cột: phải dùng systems.total_users \"đang vận hành\"")
    sent = DecisionRequest(context=vietnamese, candidates=[Candidate(index=0, policy=existing_policy(),
                                                                     similarity=0.4)])
    provider(server, model=model, temperature=temperature).decide(sent)
    sdk = openai.OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)
    sdk.chat.completions.create(model=model, temperature=temperature, response_format=EXPECTED_RESPONSE_FORMAT,
                                messages=[{"role": "system", "content": SYSTEM_PROMPT},
                                          {"role": "user", "content": user_message(sent)}])
    ours, theirs = server.requests
    assert ours.raw == theirs.raw
    assert "hệ thống".encode() in ours.raw  # sent as UTF-8, not escaped


def test_every_request_carries_its_own_feedback_and_the_same_instructions(server: FakeOpenAI) -> None:
    server.script(Reply.decision(verdict="NOT_ACTIONABLE"), Reply.decision(verdict="DUPLICATE", candidate=0))
    generator = provider(server, model="other-model", temperature=0.0)
    generator.decide(request())
    generator.decide(request(with_candidate=True))
    first, second = (sent.body for sent in server.requests)
    # The instructions and the schema are shared by every request; the feedback and candidates are not.
    assert first["messages"][0] == second["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert first["response_format"] == second["response_format"] == EXPECTED_RESPONSE_FORMAT
    assert '"id": 0' not in first["messages"][1]["content"]
    assert '"id": 0' in second["messages"][1]["content"]
    assert first["model"] == second["model"] == "other-model"
    assert first["temperature"] == second["temperature"] == 0.0


def test_concurrent_calls_are_spread_over_the_clients_one_per_thread(server: FakeOpenAI) -> None:
    threads = CLIENTS + 3
    server.script(*[Reply.decision(verdict="NOT_ACTIONABLE") for _ in range(threads)])
    generator = provider(server)
    used: dict[int, list[object]] = {}
    verdicts: list[Verdict] = []
    start = threading.Barrier(threads)

    def decide(number: int) -> None:
        start.wait()
        used[number] = [generator._client()]
        verdicts.append(generator.decide(request()).verdict)
        used[number].append(generator._client())

    workers = [threading.Thread(target=decide, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert verdicts == [Verdict.NOT_ACTIONABLE] * threads
    assert len(server.requests) == threads
    # A thread keeps its client; the threads take the clients in turn, so every client serves one and the three
    # threads beyond them share.
    assert all(first is then for first, then in used.values())
    assert len({id(first) for first, _ in used.values()}) == CLIENTS


def test_duplicate_with_a_listed_id(server: FakeOpenAI) -> None:
    server.script(Reply.decision(verdict="DUPLICATE", candidate=0))
    decision = provider(server).decide(request(with_candidate=True))
    assert decision.verdict is Verdict.DUPLICATE and decision.duplicate_of == 0
    assert '"id": 0' in server.requests[0].body["messages"][1]["content"]


def test_invented_candidate_id_is_rejected_and_retried(server: FakeOpenAI) -> None:
    server.script(Reply.decision(verdict="DUPLICATE", candidate=7), Reply.decision(verdict="DUPLICATE",
                                                                                       candidate=0))
    decision = provider(server).decide(request(with_candidate=True))
    assert decision.duplicate_of == 0
    assert decision.llm_calls == 2
    assert decision.usage.prompt_tokens == 240


@pytest.mark.parametrize("verdict", ["UPDATE", "SUPERSEDE"])
def test_update_and_supersede_name_a_listed_candidate_and_carry_the_policy(server: FakeOpenAI, verdict: str) -> None:
    server.script(Reply.decision(verdict=verdict, candidate=3, policy=POLICY),
                  Reply.decision(verdict=verdict, candidate=0, policy=None),
                  Reply.decision(verdict=verdict, candidate=0, policy=POLICY))
    decision = provider(server, max_attempts=3).decide(request(with_candidate=True))
    # An invented id and a missing policy are both retried; the third answer is used.
    assert decision.llm_calls == 3
    assert decision.verdict is Verdict(verdict) and decision.target == 0
    assert decision.policy.rule == POLICY["rule"] and decision.duplicate_of is None


def test_the_schema_offers_the_five_verdicts() -> None:
    properties = decision_schema()["properties"]
    assert properties["verdict"]["enum"] == ["NEW", "DUPLICATE", "UPDATE", "SUPERSEDE", "NOT_ACTIONABLE"]
    assert set(decision_schema()["required"]) == set(properties)


def test_malformed_json_then_good(server: FakeOpenAI) -> None:
    server.script(Reply(content="{not json"), Reply.decision(verdict="NOT_ACTIONABLE"))
    decision = provider(server).decide(request())
    assert decision.verdict is Verdict.NOT_ACTIONABLE
    assert decision.llm_calls == 2


def test_new_without_policy_is_retried(server: FakeOpenAI) -> None:
    server.script(Reply.decision(verdict="NEW", policy=None), Reply.decision(verdict="NEW", policy=POLICY))
    assert provider(server).decide(request()).policy.category.value == "schema_mapping"


def test_429_honours_retry_after(server: FakeOpenAI) -> None:
    sleeps = Sleeps()
    server.script(Reply.error(429, **{"Retry-After": "2"}), Reply.decision(verdict="NEW", policy=POLICY))
    decision = provider(server, sleeps).decide(request())
    assert decision.verdict is Verdict.NEW
    assert sleeps.delays and sleeps.delays[0] >= 2.0


def test_server_errors_exhaust_the_attempts(server: FakeOpenAI) -> None:
    sleeps = Sleeps()
    server.script(Reply.error(500), Reply.error(500), Reply.error(500), Reply.decision(verdict="NOT_ACTIONABLE"))
    with pytest.raises(ProviderError) as failed:
        provider(server, sleeps).decide(request())
    assert failed.value.retriable is True
    assert failed.value.attempts == 3
    assert len(server.requests) == 3
    assert len(sleeps.delays) == 2
    assert "InternalServerError" in str(failed.value)


def test_slow_answer_times_out_and_is_retried(server: FakeOpenAI) -> None:
    server.script(Reply(content=None, delay=2.0), Reply.decision(verdict="NEW", policy=POLICY))
    decision = provider(server, timeout_seconds=0.5).decide(request())
    assert decision.verdict is Verdict.NEW
    assert len(server.requests) == 2


def test_bad_key_is_not_retried(server: FakeOpenAI) -> None:
    server.script(Reply.error(401), Reply.decision(verdict="NEW", policy=POLICY))
    with pytest.raises(ProviderError) as failed:
        provider(server).decide(request())
    assert failed.value.retriable is False
    assert len(server.requests) == 1


def test_backoff_grows_and_stays_bounded() -> None:
    generator = OpenAIProvider(api_key="k", base_url="http://127.0.0.1:9/v1", backoff_seconds=1.0)
    assert all(0 <= generator._delay(attempt, None) <= min(30.0, 2 ** (attempt - 1)) for attempt in range(1, 10))
    assert generator._delay(1, 45.0) == 30.0


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_calls_errors_and_cost_are_measured_per_call(server: FakeOpenAI) -> None:
    before = {"calls": metric("policyloop_generator_llm_request_seconds_count", provider="openai"),
              "rate_limited": metric("policyloop_generator_llm_errors_total", provider="openai", error="rate_limited"),
              "server_error": metric("policyloop_generator_llm_errors_total", provider="openai", error="server_error"),
              "bad_answer": metric("policyloop_generator_llm_errors_total", provider="openai", error="bad_answer"),
              "cost": metric("policyloop_generator_llm_cost_usd_total", provider="openai", model="priced-model")}
    server.script(Reply.error(429), Reply.error(503), Reply(content="{not json", prompt_tokens=1000,
                                                                 completion_tokens=0),
                  Reply.decision(verdict="NEW", policy=POLICY))
    pricing = TokenPricing(input_per_million=2.0, output_per_million=8.0)
    decision = provider(server, max_attempts=4, model="priced-model", pricing=pricing).decide(request())
    assert decision.verdict is Verdict.NEW

    assert metric("policyloop_generator_llm_request_seconds_count", provider="openai") - before["calls"] == 4
    for kind in ("rate_limited", "server_error", "bad_answer"):
        assert metric("policyloop_generator_llm_errors_total", provider="openai", error=kind) - before[kind] == 1
    # Both answered calls are paid for: 1000 prompt tokens, then 120 prompt + 60 completion.
    expected = (1000 * 2.0 + 120 * 2.0 + 60 * 8.0) / 1_000_000
    spent = metric("policyloop_generator_llm_cost_usd_total", provider="openai", model="priced-model") - before["cost"]
    assert spent == pytest.approx(expected)
    # The decision carries the same spend, so the store can keep each policy's cost.
    assert decision.usage.cost_usd == pytest.approx(expected)
    assert (decision.usage.prompt_tokens, decision.usage.completion_tokens) == (1120, 60)


class NotAChatCompletion(BaseHTTPRequestHandler):
    """Answers every request with 200 and an HTML page, as a misconfigured gateway in front of the model would."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        page = b"<html><body>gateway</body></html>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *_: object) -> None:
        """Not logged: the test reads what the provider made of the answers."""


def test_a_success_that_is_not_a_chat_completion_is_a_bad_answer_and_retried() -> None:
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), NotAChatCompletion)
    serving = threading.Thread(target=gateway.serve_forever, daemon=True)
    serving.start()
    before = metric("policyloop_generator_llm_errors_total", provider="openai", error="bad_answer")
    try:
        generator = OpenAIProvider(api_key="k", base_url=f"http://127.0.0.1:{gateway.server_address[1]}/v1",
                                   timeout_seconds=5.0, max_attempts=2, sleep=Sleeps())
        with pytest.raises(ProviderError) as failed:
            generator.decide(request())
    finally:
        gateway.shutdown()
        serving.join()
    assert failed.value.retriable is True and failed.value.attempts == 2
    assert "not a chat completion" in str(failed.value)
    assert metric("policyloop_generator_llm_errors_total", provider="openai", error="bad_answer") - before == 2


def test_error_kinds_are_a_small_fixed_set(server: FakeOpenAI) -> None:
    server.script(Reply.error(401))
    with pytest.raises(ProviderError):
        provider(server).decide(request())
    assert metric("policyloop_generator_llm_errors_total", provider="openai", error="auth") >= 1
