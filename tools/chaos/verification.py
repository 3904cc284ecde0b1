"""The checks after the storm: one decision and one decided row per accepted feedback, and nothing else."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import Message

from policyloop_common.cloudevents import UnreadableEvent, decode
from policyloop_common.events import PolicyGenerated, PolicyGenerationFailed, PolicySkipped
from policyloop_common.kafka.dead_letters import OFFSET_HEADER, PARTITION_HEADER, REASON_HEADER, TOPIC_HEADER
from tools.chaos.poison import Poison

SAMPLE = 10


@dataclass
class Decision:
    """A decision event as read from Kafka."""

    feedback_id: str
    kind: str  # the ce_type
    event_id: str
    time: float  # ce_time, seconds since the epoch
    policy_id: str | None = None
    policy_version: int | None = None
    reason: str | None = None
    duplicate_of: str | None = None


@dataclass
class Verdict:
    """What the checks found; ``passed`` only when nothing was lost, doubled or left over."""

    accepted: int = 0
    decided: int = 0
    lost: list[str] = field(default_factory=list)  # accepted, without a decision event
    duplicates: list[str] = field(default_factory=list)  # accepted, with more than one decision event
    unexpected: list[str] = field(default_factory=list)  # decided or stored, never accepted
    not_in_kafka: list[str] = field(default_factory=list)  # a 202 without a FeedbackSubmitted record
    resubmitted: int = 0  # feedback ids with more than one FeedbackSubmitted record (retried publishes)
    unreadable_decisions: int = 0
    store_missing: list[str] = field(default_factory=list)  # accepted, no row or still pending
    store_mismatch: list[str] = field(default_factory=list)  # row disagrees with the decision event
    policies_twice: list[str] = field(default_factory=list)  # a feedback that created more than one policy
    policy_rows_mismatch: list[str] = field(default_factory=list)
    processed_mismatch: list[str] = field(default_factory=list)
    decisions_by_kind: Counter = field(default_factory=Counter)
    poison_injected: int = 0
    dead_letters: int = 0
    dead_letter_problems: list[str] = field(default_factory=list)

    @property
    def store_ok(self) -> bool:
        """The database agrees with the decisions."""
        return not (self.store_missing or self.store_mismatch or self.policy_rows_mismatch
                    or self.processed_mismatch)

    @property
    def passed(self) -> bool:
        """Every condition of the contract holds."""
        return not (self.lost or self.duplicates or self.unexpected or self.not_in_kafka or self.policies_twice
                    or self.dead_letter_problems or self.unreadable_decisions or not self.store_ok)

    def failures(self) -> list[str]:
        """One line per failed check, with a sample of the ids involved."""
        checks = [("accepted feedback without a decision event", self.lost),
                  ("accepted feedback with more than one decision event", self.duplicates),
                  ("decisions or rows for feedback never accepted", self.unexpected),
                  ("202 without a FeedbackSubmitted record in Kafka", self.not_in_kafka),
                  ("accepted feedback without a decided row in the store", self.store_missing),
                  ("store rows that disagree with their decision", self.store_mismatch),
                  ("feedback that created more than one policy", self.policies_twice),
                  ("policy rows that disagree with the decisions", self.policy_rows_mismatch),
                  ("processed_events that disagree with the decisions", self.processed_mismatch),
                  ("dead-letter topic", self.dead_letter_problems)]
        lines = [f"{what}: {len(ids)} (e.g. {', '.join(ids[:SAMPLE])})" for what, ids in checks if ids]
        if self.unreadable_decisions:
            lines.append(f"unreadable records in the decisions topic: {self.unreadable_decisions}")
        return lines


def parse_decisions(records: list[Message]) -> tuple[list[Decision], int]:
    """Decision events of the decisions topic, and how many records could not be read as one."""
    decisions, unreadable = [], 0
    for message in records:
        try:
            event = decode(value=message.value(), key=message.key(), headers=message.headers(),
                           topic=message.topic(), partition=message.partition(), offset=message.offset())
        except UnreadableEvent:
            unreadable += 1
            continue
        payload = event.payload
        decision = Decision(payload.feedback_id, event.event_type, event.event_id,  # type: ignore[attr-defined]
                            event.time.timestamp())
        if isinstance(payload, PolicyGenerated):
            decision.policy_id, decision.policy_version = payload.policy.policy_id, payload.policy.version
        elif isinstance(payload, PolicySkipped):
            decision.reason, decision.duplicate_of = payload.reason.value, payload.duplicate_of
        elif isinstance(payload, PolicyGenerationFailed):
            decision.reason = payload.error_class
        else:
            unreadable += 1
            continue
        decisions.append(decision)
    return decisions, unreadable


def verify(*, accepted: set[str], decisions: list[Decision], unreadable_decisions: int,
           submitted: list[Message], dead_letters: list[Message], poison: list[Poison], poison_readers: int,
           database_dsn: str) -> Verdict:
    """Run every check; nothing here is timed, only counted and compared."""
    verdict = Verdict(accepted=len(accepted), unreadable_decisions=unreadable_decisions)
    by_feedback: dict[str, list[Decision]] = defaultdict(list)
    for decision in decisions:
        by_feedback[decision.feedback_id].append(decision)
        verdict.decisions_by_kind[_kind_label(decision)] += 1
    verdict.decided = sum(1 for feedback_id in accepted if by_feedback.get(feedback_id))
    verdict.lost = sorted(f for f in accepted if not by_feedback.get(f))
    verdict.duplicates = sorted(f for f in accepted if len(by_feedback.get(f, [])) > 1)
    verdict.unexpected = sorted(f for f in by_feedback if f not in accepted)
    submissions = Counter(m.key().decode(errors="replace") for m in submitted
                          if m.key() and not m.key().startswith(b"poison-"))
    verdict.not_in_kafka = sorted(f for f in accepted if not submissions.get(f))
    verdict.resubmitted = sum(1 for f in accepted if submissions.get(f, 0) > 1)
    created: dict[str, list[str]] = defaultdict(list)  # feedback -> policies it created (version 1)
    for decision in decisions:
        if decision.kind == "PolicyGenerated" and decision.policy_version == 1:
            created[decision.feedback_id].append(decision.policy_id or "")
    verdict.policies_twice = sorted(f for f, policies in created.items() if len(policies) > 1)
    _check_store(verdict, accepted, by_feedback, decisions, database_dsn)
    _check_dead_letters(verdict, dead_letters, poison, poison_readers)
    return verdict


def _kind_label(decision: Decision) -> str:
    if decision.kind == "PolicyGenerated":
        return "generated (new)" if decision.policy_version == 1 else "generated (update)"
    if decision.kind == "PolicySkipped":
        return f"skipped ({decision.reason})"
    return "failed"


def _check_store(verdict: Verdict, accepted: set[str], by_feedback: dict[str, list[Decision]],
                 decisions: list[Decision], dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        rows = {r[0]: r[1:] for r in connection.execute(
            "SELECT feedback_id, status, policy_id, reason, duplicate_of FROM feedback")}
        policies = dict(connection.execute("SELECT policy_id, version FROM policies").fetchall())
        processed = Counter(r[0] for r in connection.execute(
            "SELECT event_id FROM processed_events WHERE topic = 'policy.decisions.v1'"))
    verdict.unexpected = sorted(set(verdict.unexpected) | {f for f in rows if f not in accepted})
    for feedback_id in sorted(accepted):
        row = rows.get(feedback_id)
        if row is None or row[0] == "pending":
            verdict.store_missing.append(feedback_id)
            continue
        events = by_feedback.get(feedback_id, [])
        if len(events) != 1:
            continue  # already counted as lost or doubled
        if row != _expected_row(events[0]):
            verdict.store_mismatch.append(f"{feedback_id} row={row} event={_expected_row(events[0])}")
    latest: dict[str, int] = {}
    for decision in decisions:
        if decision.kind == "PolicyGenerated" and decision.policy_id:
            latest[decision.policy_id] = max(latest.get(decision.policy_id, 0), decision.policy_version or 0)
    for policy_id in sorted(set(latest) | set(policies)):
        if latest.get(policy_id) != policies.get(policy_id):
            verdict.policy_rows_mismatch.append(
                f"{policy_id} events v{latest.get(policy_id)} row v{policies.get(policy_id)}")
    event_ids = Counter(d.event_id for d in decisions)
    for event_id in sorted(set(event_ids) | set(processed)):
        if processed.get(event_id) != 1 or event_ids.get(event_id) != 1:
            verdict.processed_mismatch.append(event_id)


def _expected_row(decision: Decision) -> tuple:
    if decision.kind == "PolicyGenerated":
        return ("generated", decision.policy_id, None, None)
    if decision.kind == "PolicySkipped":
        duplicate = decision.duplicate_of if decision.reason == "duplicate_policy" else None
        return ("skipped", duplicate, decision.reason, duplicate)
    return ("failed", None, decision.reason, None)


def _check_dead_letters(verdict: Verdict, dead_letters: list[Message], poison: list[Poison], readers: int) -> None:
    """Each injected record is dead-lettered once by each consumer group that reads the topic, and nothing else is."""
    verdict.poison_injected = len(poison)
    verdict.dead_letters = len(dead_letters)
    expected = {(p.partition, p.offset): p for p in poison}
    seen: Counter = Counter()
    for message in dead_letters:
        headers = {name: (value or b"").decode(errors="replace") for name, value in message.headers() or []}
        where = (int(headers.get(PARTITION_HEADER, -1)), int(headers.get(OFFSET_HEADER, -1)))
        record = expected.get(where)
        if record is None or headers.get(TOPIC_HEADER) != "feedback.submitted.v1":
            verdict.dead_letter_problems.append(
                f"unexpected dead letter from {headers.get(TOPIC_HEADER)} {where} ({headers.get(REASON_HEADER)})")
            continue
        if headers.get(REASON_HEADER) != record.reason:
            verdict.dead_letter_problems.append(
                f"{record.kind} at {where}: reason {headers.get(REASON_HEADER)}, expected {record.reason}")
        seen[where] += 1
    for where, record in sorted(expected.items()):
        if seen[where] != readers:
            verdict.dead_letter_problems.append(
                f"{record.kind} at {where}: dead-lettered {seen[where]} times, expected {readers}")
