"""Response bodies of policy-store's API, for the OpenAPI document and response validation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from policyloop_common.errors import error_responses
from policyloop_common.policy import Policy

ERROR_RESPONSES = error_responses(401, 403, 404, 409, 422, 503)


class FeedbackStatus(BaseModel):
    """What became of a feedback."""

    feedback_id: str
    status: Literal["pending", "generated", "skipped", "failed"]
    policy_id: str | None = None
    reason: str | None = None
    duplicate_of: str | None = None
    decided_at: datetime | None = None
    # Present when the generator found the feedback or its policy suspicious; the policy then waits for review.
    review_reasons: list[str] | None = None


class PolicyPage(BaseModel):
    """One page of policies and the cursor of the next, if any."""

    items: list[Policy]
    next_cursor: str | None


class ScoredPolicy(BaseModel):
    """A policy and how relevant it is to the question, in [0, 1]."""

    policy: Policy
    score: float = Field(ge=0, le=1)


class RelevantPolicies(BaseModel):
    """The active policies most relevant to a question, best first."""

    items: list[ScoredPolicy]


class ReviewRequest(BaseModel):
    """Optional reason of a review action."""

    reason: str | None = Field(default=None, max_length=2000)


class HistoryEntry(BaseModel):
    """One change of a policy: what, to which version, who, when, why."""

    version: int | None
    action: str
    actor: str
    reason: str | None
    at: datetime
    event_id: str | None


class PolicyHistoryPage(BaseModel):
    """Every change of one policy, oldest first."""

    policy_id: str
    items: list[HistoryEntry]
