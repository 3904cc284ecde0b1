"""Waiting for an eventually consistent result with a deadline, instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.25,
               what: str = "condition") -> T:
    """Call ``probe`` until it returns something other than None, False or an empty collection."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        # An empty collection is "nothing yet", like None: probes often return what they found so far.
        if last is not None and last is not False and not (isinstance(last, list | tuple | dict | set) and not last):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s (last value: {last!r})")
