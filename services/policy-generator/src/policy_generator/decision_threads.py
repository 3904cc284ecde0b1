"""A fixed set of daemon threads that run decisions, so that at most so many model calls are in flight at once.

The openai SDK is synchronous: overlapping calls need threads. They are daemon threads, unlike those of
``concurrent.futures.ThreadPoolExecutor``, which the interpreter joins at exit: a model call that hangs past the
shutdown bound must not keep the process alive after its batch was given up.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from policy_generator.metrics import DECISIONS_IN_FLIGHT

T = TypeVar("T")


class DecisionThreads:
    """Runs submitted calls on ``size`` daemon threads, in submission order as threads come free."""

    def __init__(self, size: int, name: str = "decide") -> None:
        if size < 1:
            raise ValueError("at least one decision thread is needed")
        self.size = size
        self._tasks: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{number}", daemon=True)
                         for number in range(size)]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``call(*args)``; its future holds the result or the exception it raised."""
        if self._closed.is_set():
            raise RuntimeError("decision threads are closed")
        future: Future[T] = Future()
        self._tasks.put((future, call, args))
        return future

    def close(self) -> None:
        """Start nothing more: queued calls are cancelled, running ones end on their own (their results unread)."""
        self._closed.set()
        for _ in self._threads:
            self._tasks.put(None)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, call, args = task
            if self._closed.is_set():
                future.cancel()
                continue
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued: its batch was given up
            DECISIONS_IN_FLIGHT.inc()
            try:
                result = call(*args)
            except BaseException as error:  # handed to whoever waits on the future, as an executor does
                future.set_exception(error)
            else:
                future.set_result(result)
            finally:
                DECISIONS_IN_FLIGHT.dec()
