"""The load: feedback posted over HTTP at a steady rate, retried as a well-behaved client would retry it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

USERS = 50
REQUEST_TIMEOUT_SECONDS = 30.0
# A client that keeps failing this long gives up; the run reports it, it is never silently dropped.
GIVE_UP_AFTER_SECONDS = 600.0
TRANSPORT_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Accepted:
    """A 202: which feedback, when, after how many attempts."""

    n: int
    feedback_id: str
    accepted_at: float
    attempts: int


@dataclass
class DriverReport:
    """Everything the client saw."""

    accepted: dict[int, Accepted] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)  # every answer by status code, 202 included
    retries: int = 0
    transport_errors: int = 0
    refused: dict[int, int] = field(default_factory=dict)  # n -> final non-retryable status
    abandoned: list[int] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0


class FeedbackDriver:
    """Posts ``steady`` feedbacks at ``rate`` per second, plus bursts on demand, ``concurrency`` requests at most.

    A 503 or 429 is retried after its ``Retry-After`` with the same body and the same ``Idempotency-Key``, and so
    is a request that got no answer: the key makes a repeat safe, it names the same feedback.
    """

    def __init__(self, *, api_url: str, body: Callable[[int], dict], steady: int, bursts: int, rate: float,
                 concurrency: int, token: Callable[[str], str], key_prefix: str) -> None:
        self._url = f"{api_url}/v1/feedback"
        self._body = body
        self._steady = steady
        self._total = steady + bursts
        self._next_burst = steady
        self._rate = rate
        self._concurrency = concurrency
        self._tokens = {f"chaos-user-{i}": token(f"chaos-user-{i}") for i in range(USERS)}
        self._key_prefix = key_prefix
        self.report = DriverReport()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="chaos-driver", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spawn: Callable[[int], None] | None = None
        self._started = threading.Event()
        self._no_more_bursts = threading.Event()
        self._stop = threading.Event()

    @property
    def total(self) -> int:
        """Every feedback this driver sends, steady and bursts."""
        return self._total

    def start(self) -> None:
        """Start sending in a thread of its own."""
        self.report.started_at = time.monotonic()
        self._thread.start()
        self._started.wait(30)

    def burst(self, count: int) -> list[int]:
        """Send ``count`` more feedbacks at once (as fast as ``concurrency`` allows); return their numbers."""
        with self._lock:
            numbers = list(range(self._next_burst, min(self._total, self._next_burst + count)))
            self._next_burst += len(numbers)
        assert self._loop is not None and self._spawn is not None
        for n in numbers:
            self._loop.call_soon_threadsafe(self._spawn, n)
        return numbers

    def finish(self) -> None:
        """No more bursts: what is left of them is sent now, and the driver ends when all is answered."""
        self._no_more_bursts.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every feedback was accepted, refused or given up on; True when done."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def abort(self) -> None:
        """Stop sending (the run failed elsewhere)."""
        self._stop.set()
        self._no_more_bursts.set()

    def accepted_count(self) -> int:
        """202s so far."""
        with self._lock:
            return len(self.report.accepted)

    def accepted_numbers(self, numbers: list[int]) -> int:
        """How many of ``numbers`` were accepted so far."""
        with self._lock:
            return sum(1 for n in numbers if n in self.report.accepted)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        limits = httpx.Limits(max_connections=self._concurrency, max_keepalive_connections=self._concurrency)
        gate = asyncio.Semaphore(self._concurrency)
        tasks: list[asyncio.Task] = []
        async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            self._spawn = lambda n: tasks.append(asyncio.create_task(self._submit(client, gate, n)))
            self._started.set()
            for n in range(self._steady):
                if self._stop.is_set():
                    break
                delay = self.report.started_at + n / self._rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._spawn(n)
            while not self._no_more_bursts.is_set():
                await asyncio.sleep(0.2)
            if not self._stop.is_set():
                self.burst(self._total - self._next_burst)
                await asyncio.sleep(0)
            while tasks:
                # Bursts may still be added by call_soon_threadsafe callbacks queued before finish().
                pending = list(tasks)
                tasks.clear()
                await asyncio.gather(*pending)
                await asyncio.sleep(0)
        self.report.finished_at = time.monotonic()

    async def _submit(self, client: httpx.AsyncClient, gate: asyncio.Semaphore, n: int) -> None:
        user = f"chaos-user-{n % USERS}"
        headers = {"Authorization": f"Bearer {self._tokens[user]}", "Idempotency-Key": f"{self._key_prefix}-{n}",
                   "Accept-Language": "en" if n % 3 else "vi"}
        body = self._body(n)
        first_try = time.monotonic()
        attempts = 0
        while not self._stop.is_set():
            attempts += 1
            try:
                # The gate bounds requests in flight, not clients waiting out a Retry-After.
                async with gate:
                    response = await client.post(self._url, json=body, headers=headers)
            except httpx.TransportError:
                wait = TRANSPORT_RETRY_SECONDS
                with self._lock:
                    self.report.transport_errors += 1
            else:
                with self._lock:
                    self.report.statuses[response.status_code] += 1
                if response.status_code == 202:
                    with self._lock:
                        self.report.accepted[n] = Accepted(n, response.json()["feedback_id"], time.monotonic(),
                                                           attempts)
                    return
                if response.status_code not in (429, 503):
                    with self._lock:
                        self.report.refused[n] = response.status_code
                    return
                wait = _retry_after(response)
            if time.monotonic() - first_try > GIVE_UP_AFTER_SECONDS:
                with self._lock:
                    self.report.abandoned.append(n)
                return
            with self._lock:
                self.report.retries += 1
            await asyncio.sleep(wait)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.1, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0
