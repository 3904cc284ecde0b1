"""Idempotency-Key handling: the same key from the same user always names the same feedback.

The feedback id is derived from (user, key), so every replica and every restart agrees on it and the
downstream consumers, which are idempotent by feedback id, never decide twice. The in-process record
additionally answers repeats without publishing again and serializes concurrent repeats.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

_NAMESPACE = uuid.UUID("6f1c8a52-5b7e-4c1e-9a47-3d0b6c2f9e11")


def feedback_id_for(user_id: str, idempotency_key: str) -> str:
    """The feedback id that ``user_id`` gets for ``idempotency_key``, stable everywhere."""
    return str(uuid.uuid5(_NAMESPACE, f"{user_id}\n{idempotency_key}"))


def body_fingerprint(raw_body: bytes) -> str:
    """Fingerprint of a request body, to tell a retry from a different request that reuses a key."""
    return hashlib.sha256(raw_body).hexdigest()


@dataclass
class _Entry:
    fingerprint: str
    response: dict
    stored_at: float


class IdempotencyRecord:
    """Answers already given per (user, key), bounded in size and age; one publish at a time per key."""

    def __init__(self, *, ttl_seconds: int, max_entries: int) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, feedback_id: str) -> asyncio.Lock:
        """The lock that serializes requests for one feedback id."""
        return self._locks.setdefault(feedback_id, asyncio.Lock())

    def release(self, feedback_id: str) -> None:
        """Forget the lock of a finished request when nobody else waits on it."""
        lock = self._locks.get(feedback_id)
        if lock is not None and not lock.locked():
            self._locks.pop(feedback_id, None)

    def get(self, feedback_id: str) -> _Entry | None:
        """The stored answer for ``feedback_id`` if it is still fresh."""
        entry = self._entries.get(feedback_id)
        if entry is None:
            return None
        if time.monotonic() - entry.stored_at > self._ttl:
            del self._entries[feedback_id]
            return None
        return entry

    def put(self, feedback_id: str, fingerprint: str, response: dict) -> None:
        """Remember the answer given for ``feedback_id``; the oldest entries go first when full."""
        self._entries[feedback_id] = _Entry(fingerprint, response, time.monotonic())
        self._entries.move_to_end(feedback_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
