"""The openai provider: chat completions with a strict JSON-schema output, our own retries and backoff."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import openai
from pydantic import AliasChoices, BaseModel, Field, ValidationError

from policy_generator.metrics import LLM_COST, LLM_ERRORS, LLM_REQUEST_SECONDS
from policy_generator.prompts import SYSTEM_PROMPT, decision_schema, user_message
from policy_generator.providers.base import DecisionRequest, ProviderDecision, ProviderError, Verdict
from policy_generator.providers.call_budget import CallBudget, estimate_tokens
from policy_generator.providers.thread_connections import sdk_http_client
from policyloop_common.events import TokenUsage
from policyloop_common.policy import PolicyContent

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 30.0

# The parts of every request that never change, built once and shared by every call (never mutated). The body is
# posted as it is, through the SDK's ``post``: ``chat.completions.create`` would first walk every parameter against
# its typed definitions, the whole strict schema included, which cost more CPU than the rest of the call.
_SYSTEM_MESSAGE = {"role": "system", "content": SYSTEM_PROMPT}
_RESPONSE_FORMAT = {"type": "json_schema",
                    "json_schema": {"name": "policy_decision", "strict": True, "schema": decision_schema()}}
# What ``create`` asks of the SDK besides the body: the API key as a bearer token.
_REQUEST_OPTIONS = {"security": {"bearer_auth": True}}
# How many SDK clients the decision threads are spread over. Through a proxy the SDK's own transport serves them,
# whose connection pool (httpcore) walks every connection it holds on each request, under its lock: one client for
# 128 calls in flight spent ~3.5 ms of CPU per call against ~2.3–2.7 ms with 4 to 128 clients (docs/benchmarks.md);
# 16 keeps each pool to a few connections at the in-flight limits in use. Direct calls share one
# ``ThreadConnectionTransport``, which has no pool to walk.
CLIENTS = 16


class _ModelAnswer(BaseModel):
    reasoning: str
    verdict: Verdict
    # The listed candidate a DUPLICATE, UPDATE or SUPERSEDE verdict is about ("duplicate_of" in older prompts).
    candidate: int | None = Field(default=None, validation_alias=AliasChoices("candidate", "duplicate_of"))
    policy: PolicyContent | None = None


class _Message(BaseModel):
    content: str | None = None


class _Choice(BaseModel):
    message: _Message


class _Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Completion(BaseModel):
    """The fields of a chat completion the provider reads; the rest of the answer is ignored.

    Reading these few fields in one pass costs a fraction of building the SDK's complete ``ChatCompletion``.
    """

    choices: list[_Choice] = []
    usage: _Usage | None = None


class _BadAnswer(Exception):
    """The model answered, but not with a usable decision; worth another attempt."""


@dataclass(frozen=True)
class TokenPricing:
    """US dollars per million tokens; the defaults are gpt-4o-mini's list prices. Set them for other models."""

    input_per_million: float = 0.15
    output_per_million: float = 0.60

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The price of one call."""
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1_000_000


def error_kind(error: openai.OpenAIError) -> str:
    """A short, bounded label for a failed call: what an alert or a dashboard groups by."""
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection"
    if isinstance(error, openai.RateLimitError):
        return "rate_limited"
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return "auth"
    if isinstance(error, openai.APIStatusError):
        return "server_error" if error.status_code >= 500 else "client_error"
    return "other"


class OpenAIProvider:
    """Any OpenAI-compatible chat-completions server (OpenAI, Azure, vLLM, Ollama) through the openai SDK."""

    name = "openai"

    def __init__(self, *, api_key: str, base_url: str | None = None, model: str = "gpt-4o-mini",
                 temperature: float = 0.3, timeout_seconds: float = 30.0, max_attempts: int = 3,
                 backoff_seconds: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                 pricing: TokenPricing | None = None, budget: CallBudget | None = None) -> None:
        self.model = model
        self._budget = budget or CallBudget()
        self.pricing = pricing or TokenPricing()
        self.temperature = temperature
        self.max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._sleep = sleep
        # The body is encoded as the SDK encodes it, around the one part that changes: the user message. Encoding
        # the instructions and the schema again for every call took ~60 µs of CPU; the user message alone ~13 µs.
        self._body_start = (b'{"model":' + _json(model) + b',"messages":[' + _json(_SYSTEM_MESSAGE)
                            + b',{"role":"user","content":')
        self._body_end = (b'}],"response_format":' + _json(_RESPONSE_FORMAT) + b',"temperature":' + _json(temperature)
                          + b"}")
        # The SDK's own retries are off: ours honour Retry-After and count every attempt. Each thread keeps to one
        # client, given in turn (see CLIENTS); a client is thread-safe, so threads beyond CLIENTS share them. A
        # client takes ~65 ms to build, so each is built by the first thread given it, not all at start-up.
        # Straight to the server, each thread on its own connection (``thread_connections``); through a proxy the
        # environment names, the SDK's own transport, which knows proxies. One HTTP client for all the SDK clients.
        self.http_client = sdk_http_client(base_url)
        self._new_client = functools.partial(openai.OpenAI, api_key=api_key, base_url=base_url,
                                             timeout=timeout_seconds, max_retries=0, http_client=self.http_client)
        self._clients: list[openai.OpenAI | None] = [None] * CLIENTS
        self._clients_lock = threading.Lock()
        self._next_client = itertools.count()
        self._thread_client = threading.local()

    def decide(self, request: DecisionRequest) -> ProviderDecision:
        """Ask the model; retry transient failures and unusable answers up to ``max_attempts`` calls."""
        usage = TokenUsage()
        last_error: Exception | None = None
        prompt = user_message(request)
        estimated = estimate_tokens(SYSTEM_PROMPT, prompt)
        # The chat-completions request as the API documents it, byte for byte what ``create`` sends.
        body = self._body_start + _json(prompt) + self._body_end
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            self._budget.reserve(estimated)
            started = time.perf_counter()
            try:
                answered = self._client().post("/chat/completions", cast_to=bytes, content=body,
                                                options=_REQUEST_OPTIONS)
                LLM_REQUEST_SECONDS.labels(self.name).observe(time.perf_counter() - started)
                response = _completion(answered)
                if response.usage is not None:
                    self._budget.settle(estimated, response.usage.prompt_tokens + response.usage.completion_tokens)
                    cost = self.pricing.cost(response.usage.prompt_tokens, response.usage.completion_tokens)
                    usage = usage.plus(TokenUsage(prompt_tokens=response.usage.prompt_tokens,
                                                  completion_tokens=response.usage.completion_tokens, cost_usd=cost))
                    LLM_COST.labels(self.name, self.model).inc(cost)
                return self._decision(response, request, usage, attempt)
            except _BadAnswer as error:
                LLM_ERRORS.labels(self.name, "bad_answer").inc()
                last_error = error
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError,
                    openai.BadRequestError) as error:
                self._failed_call(started, error)
                raise ProviderError(f"{type(error).__name__}: {error}", retriable=False, attempts=attempt) from error
            except openai.APIStatusError as error:  # 429 and 5xx
                self._failed_call(started, error)
                last_error = error
                retry_after = _retry_after(error.response.headers.get("retry-after"))
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                self._failed_call(started, error)
                last_error = error
            log.warning("model call failed", extra={"attempt": attempt, "error": f"{type(last_error).__name__}: "
                                                                                  f"{str(last_error)[:300]}"})
            if attempt < self.max_attempts:
                self._sleep(self._delay(attempt, retry_after))
        raise ProviderError(f"{self.max_attempts} attempts failed; last: {type(last_error).__name__}: "
                            f"{str(last_error)[:500]}", retriable=True, attempts=self.max_attempts)

    def _client(self) -> openai.OpenAI:
        """The calling thread's client."""
        client: openai.OpenAI | None = getattr(self._thread_client, "client", None)
        if client is None:
            # next() on itertools.count is atomic under the GIL: no two threads take the same turn.
            turn = next(self._next_client) % CLIENTS
            with self._clients_lock:
                client = self._clients[turn]
                if client is None:
                    client = self._clients[turn] = self._new_client()
            self._thread_client.client = client
        return client

    def _decision(self, response: _Completion, request: DecisionRequest, usage: TokenUsage,
                  calls: int) -> ProviderDecision:
        content = response.choices[0].message.content if response.choices else None
        try:
            answer = _ModelAnswer.model_validate_json(content or "")
        except ValidationError as error:
            raise _BadAnswer(f"the answer is not a valid decision: {error.errors()[:3]}") from error
        if answer.verdict in (Verdict.DUPLICATE, Verdict.UPDATE, Verdict.SUPERSEDE):
            # An id the model made up is never trusted: the call is retried.
            valid = {candidate.index for candidate in request.candidates}
            if answer.candidate not in valid:
                raise _BadAnswer(f"{answer.verdict.value}: candidate {answer.candidate} is not a listed candidate "
                                 f"{sorted(valid)}")
        if answer.verdict is Verdict.DUPLICATE:
            return ProviderDecision(verdict=Verdict.DUPLICATE, reasoning=answer.reasoning,
                                    duplicate_of=answer.candidate, usage=usage, llm_calls=calls)
        if answer.verdict in (Verdict.NEW, Verdict.UPDATE, Verdict.SUPERSEDE):
            if answer.policy is None:
                raise _BadAnswer(f"verdict {answer.verdict.value} without a policy")
            return ProviderDecision(verdict=answer.verdict, reasoning=answer.reasoning, policy=answer.policy,
                                    target=answer.candidate if answer.verdict is not Verdict.NEW else None,
                                    usage=usage, llm_calls=calls)
        return ProviderDecision(verdict=Verdict.NOT_ACTIONABLE, reasoning=answer.reasoning, usage=usage,
                                llm_calls=calls)

    def _failed_call(self, started: float, error: openai.OpenAIError) -> None:
        LLM_REQUEST_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        LLM_ERRORS.labels(self.name, error_kind(error)).inc()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter; never shorter than the server's Retry-After."""
        backoff = random.uniform(0, min(MAX_BACKOFF_SECONDS, self._backoff * 2 ** (attempt - 1)))
        return min(MAX_BACKOFF_SECONDS, max(backoff, retry_after or 0.0))


def _json(value: object) -> bytes:
    """``value`` as the SDK encodes a request body (``openai._utils._json.openapi_dumps``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _completion(answered: bytes) -> _Completion:
    try:
        return _Completion.model_validate_json(answered)
    except ValidationError as error:
        raise _BadAnswer(f"the answer is not a chat completion: {error.errors()[:3]}") from error


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
