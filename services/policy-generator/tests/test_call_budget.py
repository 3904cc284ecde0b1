"""The per-process budget of model calls: waits computed from requests and tokens per minute, on a fake clock."""

from __future__ import annotations

import threading

import pytest

from policy_generator.providers.call_budget import ANSWER_TOKEN_ALLOWANCE, CallBudget, estimate_tokens
from tests.support.fake_openai import FakeOpenAI, Reply

from .test_openai_provider import POLICY, provider, request, server  # noqa: F401  (server is a fixture)


class FakeTime:
    """A clock that only moves when someone sleeps; records the sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def budget(time: FakeTime, **limits: int) -> CallBudget:
    return CallBudget(clock=time.clock, sleep=time.sleep, **limits)


def test_without_limits_nothing_waits() -> None:
    time = FakeTime()
    calls = budget(time)
    assert not calls.limited
    assert [calls.reserve(10_000) for _ in range(1000)] == [0.0] * 1000 and time.sleeps == []


def test_requests_per_minute_spread_calls_once_the_minute_is_spent() -> None:
    time = FakeTime()
    calls = budget(time, requests_per_minute=60)
    assert sum(calls.reserve(1) for _ in range(60)) == 0.0
    assert calls.reserve(1) == pytest.approx(1.0)
    assert calls.reserve(1) == pytest.approx(1.0)
    time.now += 10  # ten quiet seconds refill ten requests
    assert sum(calls.reserve(1) for _ in range(10)) == 0.0
    assert calls.reserve(1) == pytest.approx(1.0)


def test_tokens_per_minute_wait_for_the_estimate_and_settle_with_the_real_spend() -> None:
    time = FakeTime()
    calls = budget(time, tokens_per_minute=1200)
    assert calls.reserve(600) == 0.0 and calls.reserve(600) == 0.0
    assert calls.reserve(600) == pytest.approx(30.0)  # 600 tokens at 20 a second
    # The three calls really spent 100 tokens each: 1,500 come back, the next calls fit at once.
    for _ in range(3):
        calls.settle(600, 100)
    assert calls.reserve(600) == 0.0 and calls.reserve(600) == 0.0


def test_an_estimate_above_the_minute_waits_for_a_full_bucket_only() -> None:
    time = FakeTime()
    calls = budget(time, tokens_per_minute=1000)
    calls.reserve(1000)
    assert calls.reserve(5000) == pytest.approx(60.0)


def test_threads_share_one_budget() -> None:
    time = FakeTime()
    calls = budget(time, requests_per_minute=120)
    waits: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        for _ in range(30):
            waited = calls.reserve(1)
            with lock:
                waits.append(waited)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 240 calls at 120 a minute, the first 120 at once: the clock moved one minute, give or take a call.
    assert len(waits) == 240
    assert time.now - 1000.0 == pytest.approx(60.0, abs=0.6)


def test_the_provider_waits_for_room_before_each_call(server: FakeOpenAI) -> None:  # noqa: F811
    time = FakeTime()
    waited: list[float] = []
    calls = CallBudget(requests_per_minute=2, clock=time.clock, sleep=time.sleep, on_wait=waited.append)
    server.script(*[Reply.decision(verdict="NEW", policy=POLICY) for _ in range(3)])
    model = provider(server, budget=calls)
    for _ in range(3):
        assert model.decide(request()).policy is not None
    assert len(server.requests) == 3
    assert waited == [pytest.approx(30.0)]


def test_estimate_counts_the_prompt_and_the_answer() -> None:
    assert estimate_tokens("a" * 400, "b" * 400) == 200 + ANSWER_TOKEN_ALLOWANCE
