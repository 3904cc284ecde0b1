"""Tables of the store: feedback, policies, their history, evidence and usage, re-analysis runs, processed events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every table."""


class FeedbackRecord(Base):
    """One row per feedback id; submission fields and decision fields may arrive in either order."""

    __tablename__ = "feedback"

    feedback_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(256), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(256))
    message_id: Mapped[str | None] = mapped_column(String(256))
    rating: Mapped[str | None] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    policy_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str | None] = mapped_column(String(64))
    duplicate_of: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The re-analysis run whose decision the row shows; null while it shows the feedback's first decision.
    reanalysis_run_id: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # Attribution: the feedback on an answer is found by the conversation and message of the answer.
        Index("ix_feedback_message", "conversation_id", "message_id"),
        # The most recent feedback first, for the similar-question comparison of effectiveness.
        Index("ix_feedback_submitted_at", "submitted_at"),
    )


class PolicyRecord(Base):
    """The current version of a policy; every change also leaves a PolicyHistory row."""

    __tablename__ = "policies"

    policy_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), index=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    priority: Mapped[str] = mapped_column(String(16), index=True)
    rule: Mapped[str] = mapped_column(Text)
    correct_mapping: Mapped[str | None] = mapped_column(Text)
    missing_knowledge: Mapped[str] = mapped_column(Text, default="")
    examples: Mapped[list[str]] = mapped_column(JSONB, default=list)
    rationale: Mapped[str] = mapped_column(Text, default="")
    source_feedback_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    support_count: Mapped[int] = mapped_column(Integer, default=1)
    schema_objects: Mapped[list[str]] = mapped_column(JSONB, default=list)
    generator_provider: Mapped[str] = mapped_column(String(64))
    generator_model: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Provenance of the current version: what the decision that wrote it spent (null when not known).
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    # A superseded policy names its successor; the successor lists what it replaced.
    superseded_by: Mapped[str | None] = mapped_column(String(64), index=True)
    supersedes: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")

    __table_args__ = (Index("ix_policies_created_order", "created_at", "policy_id"),)


class PolicyHistory(Base):
    """Every change of a policy: what happened, to which version, who did it, when and why."""

    __tablename__ = "policy_history"
    # The imports alone, for the twin check's "not imported" test (migration 0005).
    __table_args__ = (Index("ix_policy_history_imported", "policy_id", postgresql_where=text("action = 'imported'")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    policy_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str | None] = mapped_column(String(128))
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class PolicyEvidence(Base):
    """A feedback that repeated a policy's lesson; kept even if it arrives before the policy itself."""

    __tablename__ = "policy_evidence"

    policy_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    feedback_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The decision event that added it; null for rows written before this column existed.
    event_id: Mapped[str | None] = mapped_column(String(128))


class PolicyUsage(Base):
    """A policy put into the assistant's prompt for one answer; the answer's feedback is attributed to it."""

    __tablename__ = "policy_usage"

    policy_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    question: Mapped[str | None] = mapped_column(Text)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str] = mapped_column(String(128))

    __table_args__ = (Index("ix_policy_usage_message", "conversation_id", "message_id"),)


class ReanalysisRequest(Base):
    """One feedback asked to be decided again within one run, and the decision that answered it.

    The request (``FeedbackReanalysisRequested``) and its decision travel on different topics, so either may be
    applied first: each fills only its own columns.
    """

    __tablename__ = "reanalysis_requests"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    feedback_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested_by: Mapped[str | None] = mapped_column(String(256))
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # generated | skipped | failed
    outcome: Mapped[str | None] = mapped_column(String(16))
    # The policy generated, or the one a duplicate was folded into.
    policy_id: Mapped[str | None] = mapped_column(String(64))
    decision_event_id: Mapped[str | None] = mapped_column(String(128))


class ProcessedEvent(Base):
    """Event ids already applied: applying an event is idempotent by its CloudEvents id."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

