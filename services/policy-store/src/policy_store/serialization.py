"""Rows as the contract's JSON documents."""

from __future__ import annotations

from typing import Any

from policy_store.models import FeedbackRecord, PolicyHistory, PolicyRecord
from policyloop_common.policy import GeneratorInfo, Policy


def policy_model(record: PolicyRecord) -> Policy:
    """The contract's policy object for a row."""
    return Policy(policy_id=record.policy_id, version=record.version, status=record.status,
                  category=record.category, priority=record.priority, rule=record.rule,
                  correct_mapping=record.correct_mapping, missing_knowledge=record.missing_knowledge,
                  examples=list(record.examples), rationale=record.rationale,
                  source_feedback_ids=list(record.source_feedback_ids), support_count=record.support_count,
                  created_at=record.created_at, updated_at=record.updated_at,
                  generator=GeneratorInfo(provider=record.generator_provider, model=record.generator_model,
                                          prompt_tokens=record.prompt_tokens,
                                          completion_tokens=record.completion_tokens, cost_usd=record.cost_usd),
                  valid_from=record.valid_from, valid_to=record.valid_to,
                  supersedes=list(record.supersedes or []), superseded_by=record.superseded_by)


def policy_document(record: PolicyRecord) -> dict[str, Any]:
    """The policy object as JSON-ready data."""
    return policy_model(record).model_dump(mode="json")


def feedback_status(record: FeedbackRecord) -> dict[str, Any]:
    """``GET /v1/feedback/{id}``: the status and, where known, the policy, reason and decision time."""
    document: dict[str, Any] = {"feedback_id": record.feedback_id, "status": record.status}
    for name in ("policy_id", "reason", "duplicate_of", "reanalysis_run_id"):
        if getattr(record, name):
            document[name] = getattr(record, name)
    if record.decided_at is not None:
        document["decided_at"] = record.decided_at.isoformat()
    review_reasons = (record.decision or {}).get("review_reasons")
    if review_reasons:
        document["review_reasons"] = review_reasons
    return document


def history_entry(row: PolicyHistory) -> dict[str, Any]:
    """One change of a policy."""
    return {"version": row.version, "action": row.action, "actor": row.actor, "reason": row.reason,
            "at": row.at.isoformat(), "event_id": row.event_id}
