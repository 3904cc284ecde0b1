"""A process's budget of model calls: requests and tokens per minute, shared by every decision thread.

Providers limit an account by requests and by tokens per minute; going over earns 429s, each a wasted round trip
and a retry that competes with the next feedback. The generator runs up to GENERATOR_MAX_IN_FLIGHT decisions at
once, enough to hit those limits in seconds, so each call first takes its share here and waits, if it must, for
the minute to make room. The budget is per process: with N generator replicas, give each 1/N of the account's
limits (docs/configuration.md).

Two token buckets, refilled continuously: ``requests_per_minute`` and ``tokens_per_minute``. A call reserves
one request and its estimated tokens (the prompt's characters / 4 plus the answer's allowance); once the answer
says what it really spent, the difference is given back or taken. A limit of 0 means no limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Characters per token of English and Vietnamese text as OpenAI's tokenizers count them, roughly; an estimate is
# enough, since the reservation is corrected with the real count after the call.
CHARS_PER_TOKEN = 4
# What a decision's answer may take: the JSON of one policy and the reasoning.
ANSWER_TOKEN_ALLOWANCE = 600


class _Bucket:
    """``capacity`` units a minute, refilled continuously; may go negative when a call spent more than it said."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self._rate = per_minute / 60.0
        self._at = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self._at) * self._rate)
        self._at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` fits (never more than a whole bucket is asked for)."""
        missing = min(amount, self.capacity) - self.level
        return 0.0 if missing <= 0 else missing / self._rate


class CallBudget:
    """Blocks a call until the minute has room for it; thread-safe."""

    def __init__(self, *, requests_per_minute: int = 0, tokens_per_minute: int = 0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 on_wait: Callable[[float], None] | None = None) -> None:
        now = clock()
        self._requests = _Bucket(requests_per_minute, now) if requests_per_minute > 0 else None
        self._tokens = _Bucket(tokens_per_minute, now) if tokens_per_minute > 0 else None
        self._clock, self._sleep, self._on_wait = clock, sleep, on_wait
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        """False when neither limit is set: calls never wait."""
        return self._requests is not None or self._tokens is not None

    def reserve(self, estimated_tokens: int) -> float:
        """Take one request and ``estimated_tokens``, waiting until both fit; returns the seconds waited."""
        if not self.limited:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                buckets = [(b, amount) for b, amount in ((self._requests, 1), (self._tokens, estimated_tokens))
                            if b is not None]
                for bucket, _ in buckets:
                    bucket.refill(now)
                pause = max(bucket.wait_for(amount) for bucket, amount in buckets)
                if pause <= 0:
                    for bucket, amount in buckets:
                        bucket.level -= amount
                    break
            # Sleep outside the lock: other threads may give tokens back meanwhile.
            self._sleep(pause)
            waited += pause
        if waited and self._on_wait:
            self._on_wait(waited)
        return waited

    def settle(self, estimated_tokens: int, spent_tokens: int) -> None:
        """The call's real spend is known: give back what was over-reserved, or take what was under."""
        if self._tokens is None:
            return
        with self._lock:
            self._tokens.refill(self._clock())
            self._tokens.level += estimated_tokens - spent_tokens


def estimate_tokens(*texts: str) -> int:
    """A call's tokens before it is made: its prompt's characters / 4 and the answer's allowance."""
    return sum(len(text) for text in texts) // CHARS_PER_TOKEN + ANSWER_TOKEN_ALLOWANCE
