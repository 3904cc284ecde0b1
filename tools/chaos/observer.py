"""Watching the store's database: when each feedback was first seen decided, as a user polling its status would."""

from __future__ import annotations

import threading
import time

import psycopg

POLL_SECONDS = 0.5


class StoreObserver:
    """Polls the feedback table in a thread; keeps the first moment each feedback id was seen decided.

    The moments are on the monotonic clock of this process, the clock the driver and the faults use. While the
    database is down the polls fail and are counted, and the next successful one catches up.
    """

    def __init__(self, postgres_port: int, database: str) -> None:
        self._dsn = f"host=127.0.0.1 port={postgres_port} user=postgres dbname={database} connect_timeout=2"
        self.decided_at: dict[str, float] = {}
        self.failed_polls = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-observer", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (after one last poll)."""
        self._stop.set()
        self._thread.join(timeout=10)

    def decided(self) -> dict[str, float]:
        """Feedback id -> first moment seen decided, so far."""
        with self._lock:
            return dict(self.decided_at)

    def _run(self) -> None:
        connection = None
        while True:
            stopping = self._stop.is_set()
            try:
                if connection is None or connection.closed:
                    connection = psycopg.connect(self._dsn, autocommit=True)
                rows = connection.execute("SELECT feedback_id FROM feedback WHERE status <> 'pending'").fetchall()
                now = time.monotonic()
                with self._lock:
                    for (feedback_id,) in rows:
                        self.decided_at.setdefault(feedback_id, now)
            except psycopg.Error:
                self.failed_polls += 1
                if connection is not None:
                    connection.close()
                connection = None
            if stopping:
                break
            self._stop.wait(POLL_SECONDS)
        if connection is not None:
            connection.close()
