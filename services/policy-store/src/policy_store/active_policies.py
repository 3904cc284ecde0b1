"""The active policies as the ranking needs them, kept in the process and in step with the database.

Preparing a policy for ranking (its terms, keywords and schema objects) takes about half a millisecond: with
10,000 active policies, loading and preparing all of them on every request cost a second. Here each version is
prepared once and kept in a :class:`RankingIndex`; a request only ranks, then loads its winners by id, so the
answer always carries the rows as they are now.

**What changed** is read from ``policy_history``: every change of a policy (created, updated, evidence, review,
edit, import) writes a history row in the transaction that makes it, and that table's ids only grow. Each request
asks for the rows after the last id seen — one index range scan, a fraction of a millisecond when nothing
changed — and re-reads the policies they name, so a change is visible to the first request after its commit.

Ids are handed out when a row is inserted, not when it commits, so a transaction may commit a row whose id is
below one already seen. Such missing ids (gaps) are asked for again on every request until every transaction
that was running when the gap was first seen has ended (the snapshot's xmin has passed the gap's horizon) and a
grace period has passed: a committed row is then visible, and the id of a rolled-back one never appears. When
the last row seen is gone or is another row now (the history was emptied, the store rebuilt), everything is read
again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from policy_store.models import PolicyRecord
from policy_store.ranking import RankingIndex
from policy_store.relevance import PolicyFeatures, QuestionFeatures, ScoreParts
from policy_store.serialization import policy_document
from policyloop_common.policy import PolicyStatus

# How long a gap is kept after every transaction that could own it has ended: covers a transaction that took
# its id before it got a transaction id of its own.
GAP_GRACE_SECONDS = 30.0
# Policies re-read per statement when many changed at once.
LOAD_CHUNK = 1000

# What identifies a history row for good (its version and snapshot are filled in later for early reviews).
_MARK = "md5(concat_ws('|', h.policy_id, h.action, h.actor, h.at, h.event_id))"
_CHANGES = text(f"""
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
           pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
           (SELECT {_MARK} FROM policy_history h WHERE h.id = :after),
           (SELECT coalesce(json_agg(json_build_array(h.id, h.policy_id, {_MARK})), '[]'::json)
              FROM policy_history h WHERE h.id > :after OR h.id = ANY(CAST(:gaps AS bigint[])))
""")
_SNAPSHOT = text(f"""
    SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, top.id, (SELECT {_MARK} FROM policy_history h
     WHERE h.id = top.id) FROM (SELECT max(id) AS id FROM policy_history) AS top
""")
_MISSING_IDS = text("""
    SELECT expected.id FROM generate_series(1, :top) AS expected(id)
     WHERE NOT EXISTS (SELECT 1 FROM policy_history WHERE policy_history.id = expected.id)
""")


@dataclass(frozen=True)
class _Gap:
    """An id below the last one seen that no committed row had yet."""

    horizon: int  # the first transaction id that was not yet started when the gap was seen
    seen_at: float


@dataclass(frozen=True)
class RankedRecord:
    """A ranked active policy as it is in the database now, with its score and the parts of it."""

    record: PolicyRecord
    parts: ScoreParts


class ActivePolicies:
    """The prepared active policies of one process; safe to use from the request threads at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index = RankingIndex()
        self._last_id: int | None = None  # None until the first full read
        self._last_mark: str | None = None
        self._gaps: dict[int, _Gap] = {}

    def rank(self, session: Session, question: str, *, limit: int, floor: float) -> list[RankedRecord]:
        """The active policies most relevant to ``question``, best first, read after catching up with changes."""
        features = QuestionFeatures.of(question)
        with self._lock:
            self._catch_up(session)
            ranked = self._index.rank(features, limit=limit, floor=floor)
        if not ranked:
            return []
        rows = {row.policy_id: row for row in session.execute(
            select(PolicyRecord).where(PolicyRecord.policy_id.in_([item.policy_id for item in ranked]),
                                       PolicyRecord.status == PolicyStatus.ACTIVE.value)).scalars()}
        # A winner that left the active set since the catch-up is dropped; the next request sees its history row.
        return [RankedRecord(rows[item.policy_id], item.parts) for item in ranked if item.policy_id in rows]

    def _catch_up(self, session: Session) -> None:
        if self._last_id is None:
            self._read_everything(session)
            return
        xmin, xmax, last_mark, changes = session.execute(
            _CHANGES, {"after": self._last_id, "gaps": sorted(self._gaps)}).one()
        if last_mark != self._last_mark:
            self._read_everything(session)
            return
        found = {int(history_id) for history_id, _, _ in changes}
        now = time.monotonic()
        for history_id, gap in list(self._gaps.items()):
            if history_id in found or (xmin >= gap.horizon and now - gap.seen_at >= GAP_GRACE_SECONDS):
                del self._gaps[history_id]
        newest = max([self._last_id, *found])
        for history_id in range(self._last_id + 1, newest):
            if history_id not in found:
                self._gaps[history_id] = _Gap(horizon=xmax, seen_at=now)
        if newest > self._last_id:
            self._last_id = newest
            self._last_mark = next(mark for history_id, _, mark in changes if history_id == newest)
        if changes:
            self._reload(session, {policy_id for _, policy_id, _ in changes})

    def _read_everything(self, session: Session) -> None:
        """Prepare every active policy; the history's position and gaps from the same snapshot."""
        engine = session.get_bind()
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, \
                Session(bind=connection) as snapshot:
            xmax, top, mark = snapshot.execute(_SNAPSHOT).one()
            top = top or 0
            missing = snapshot.execute(_MISSING_IDS, {"top": top}).scalars().all() if top else []
            records = snapshot.execute(select(PolicyRecord)
                                       .where(PolicyRecord.status == PolicyStatus.ACTIVE.value)).scalars().all()
            index = RankingIndex()
            for record in records:
                index.add(_features(record))
        now = time.monotonic()
        self._index = index
        self._gaps = {history_id: _Gap(horizon=xmax, seen_at=now) for history_id in missing}
        self._last_id, self._last_mark = top, mark

    def _reload(self, session: Session, policy_ids: Iterable[str]) -> None:
        """Re-read the named policies: the active ones are prepared again, the others leave the index."""
        wanted = sorted(policy_ids)
        for start in range(0, len(wanted), LOAD_CHUNK):
            chunk = wanted[start:start + LOAD_CHUNK]
            active = {record.policy_id: record for record in session.execute(
                select(PolicyRecord).where(PolicyRecord.policy_id.in_(chunk),
                                           PolicyRecord.status == PolicyStatus.ACTIVE.value)).scalars()}
            for policy_id in chunk:
                if policy_id in active:
                    self._index.add(_features(active[policy_id]))
                else:
                    self._index.remove(policy_id)


def _features(record: PolicyRecord) -> PolicyFeatures:
    return PolicyFeatures.of(policy_document(record), record.schema_objects or [])


_CREATION = threading.Lock()


def active_policies_of(app: FastAPI) -> ActivePolicies:
    """The application's cache of active policies, made on first use."""
    cache = getattr(app.state, "active_policies", None)
    if cache is None:
        with _CREATION:
            cache = getattr(app.state, "active_policies", None)
            if cache is None:
                cache = app.state.active_policies = ActivePolicies()
    return cache
