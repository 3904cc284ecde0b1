"""Event contracts carried on Kafka: one pydantic model per CloudEvents type."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from policyloop_common.policy import Policy, PolicyStatus
from policyloop_common.safe_text import SafeJson, SafeText

FEEDBACK_SUBMITTED_TOPIC = "feedback.submitted.v1"
POLICY_DECISIONS_TOPIC = "policy.decisions.v1"
POLICY_REVIEWS_TOPIC = "policy.reviews.v1"
DEAD_LETTER_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    """Name of the dead-letter topic that belongs to ``topic``."""
    return f"{topic}{DEAD_LETTER_SUFFIX}"


class Rating(StrEnum):
    """How the user rated an answer."""

    NEGATIVE = "negative"
    POSITIVE = "positive"


# Bounds on what a user may send; feedback-api enforces them with 422, consumers re-check them.
MAX_TEXT = 4000
MAX_ANSWER = 20000
MAX_LIST_ITEMS = 50
MAX_ITEM_TEXT = 5000
MAX_RESULT_ROWS = 50


# Readers tolerate fields they do not know: a producer upgraded first may add optional fields (docs/operations.md,
# "Evolving event schemas") without its older consumers dead-lettering every event. Requests stay strict.
EVENT_MODEL_CONFIG = ConfigDict(extra="ignore")


class FeedbackContext(BaseModel):
    """What the assistant saw and did when it produced the rated answer."""

    model_config = EVENT_MODEL_CONFIG

    question: SafeText = Field(min_length=1, max_length=MAX_TEXT)
    answer: SafeText | None = Field(default=None, max_length=MAX_ANSWER)
    steps: list[Annotated[SafeText, Field(max_length=MAX_ITEM_TEXT)]] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS
    )
    sql_queries: list[Annotated[SafeText, Field(max_length=MAX_ITEM_TEXT)]] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS
    )
    results: list[SafeJson] = Field(default_factory=list, max_length=MAX_RESULT_ROWS)
    model: SafeText | None = Field(default=None, max_length=128)


class EventPayload(BaseModel):
    """Base of every event value; ``ce_type`` names it in the CloudEvents headers."""

    model_config = EVENT_MODEL_CONFIG

    ce_type: ClassVar[str]
    topic: ClassVar[str]
    schema_version: ClassVar[int] = 1

    feedback_id: str = Field(min_length=1, max_length=64)


class FeedbackSubmitted(EventPayload):
    """A user rated an answer; published by feedback-api after validation."""

    ce_type: ClassVar[str] = "FeedbackSubmitted"
    topic: ClassVar[str] = FEEDBACK_SUBMITTED_TOPIC

    user_id: SafeText = Field(min_length=1, max_length=256)
    conversation_id: SafeText = Field(min_length=1, max_length=256)
    message_id: SafeText = Field(min_length=1, max_length=256)
    rating: Rating
    comment: SafeText | None = Field(default=None, max_length=MAX_TEXT)
    context: FeedbackContext
    submitted_at: datetime


class DecisionKind(StrEnum):
    """What the generator decided for one feedback."""

    NEW = "new"
    UPDATE = "update"
    DUPLICATE = "duplicate"
    NOT_ACTIONABLE = "not_actionable"
    POSITIVE = "positive"


class SkipReason(StrEnum):
    """Why a feedback produced no new policy."""

    DUPLICATE_POLICY = "duplicate_policy"
    NOT_ACTIONABLE = "not_actionable"
    POSITIVE_FEEDBACK = "positive_feedback"


class TokenUsage(BaseModel):
    """Tokens a provider spent on one decision."""

    model_config = EVENT_MODEL_CONFIG

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)


class DecisionDetails(BaseModel):
    """How the generator reached a decision: provider, candidates, similarity, explanation."""

    model_config = EVENT_MODEL_CONFIG

    kind: DecisionKind
    provider: str
    model: str
    explanation: str = Field(default="", max_length=4000)
    candidate_policy_ids: list[str] = Field(default_factory=list)
    best_similarity: float | None = None
    llm_calls: int = Field(default=0, ge=0)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    schema_objects: list[str] = Field(default_factory=list)
    # Why a reviewer must see the policy before the assistant does (e.g. "url in comment"); empty when none.
    # A policy decided with any reason here is stored pending_review whatever the store's AUTO_ACTIVATE says.
    review_reasons: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=50)


class PolicyGenerated(EventPayload):
    """The feedback taught something: a new policy, or a new version of an existing one."""

    ce_type: ClassVar[str] = "PolicyGenerated"
    topic: ClassVar[str] = POLICY_DECISIONS_TOPIC

    policy: Policy
    decision: DecisionDetails


class PolicySkipped(EventPayload):
    """The feedback produced no new policy: a duplicate (counted as evidence), nothing to learn, or positive."""

    ce_type: ClassVar[str] = "PolicySkipped"
    topic: ClassVar[str] = POLICY_DECISIONS_TOPIC

    reason: SkipReason
    duplicate_of: str | None = None
    explanation: str = Field(default="", max_length=4000)
    decision: DecisionDetails


class PolicyGenerationFailed(EventPayload):
    """The generator gave up after its retries; the feedback can be replayed."""

    ce_type: ClassVar[str] = "PolicyGenerationFailed"
    topic: ClassVar[str] = POLICY_DECISIONS_TOPIC

    error_class: str = Field(max_length=256)
    error_message: str = Field(default="", max_length=4000)
    attempts: int = Field(ge=1)


class ReviewAction(StrEnum):
    """What a reviewer did to a policy."""

    APPROVE = "approve"
    REJECT = "reject"
    RETIRE = "retire"


# The status a policy has after each review action.
REVIEW_OUTCOME: dict[ReviewAction, PolicyStatus] = {
    ReviewAction.APPROVE: PolicyStatus.ACTIVE,
    ReviewAction.REJECT: PolicyStatus.REJECTED,
    ReviewAction.RETIRE: PolicyStatus.RETIRED,
}


class PolicyReviewed(BaseModel):
    """A reviewer changed a policy's status; published by policy-store so a replay rebuilds reviews too."""

    model_config = EVENT_MODEL_CONFIG

    ce_type: ClassVar[str] = "PolicyReviewed"
    topic: ClassVar[str] = POLICY_REVIEWS_TOPIC
    schema_version: ClassVar[int] = 1

    policy_id: str = Field(min_length=1, max_length=64)
    action: ReviewAction
    reviewer: str = Field(min_length=1, max_length=256)
    reason: str | None = Field(default=None, max_length=2000)
    reviewed_at: datetime


DecisionEvent = PolicyGenerated | PolicySkipped | PolicyGenerationFailed
AnyEvent = FeedbackSubmitted | PolicyGenerated | PolicySkipped | PolicyGenerationFailed | PolicyReviewed

EVENT_TYPES: dict[str, type[BaseModel]] = {
    model.ce_type: model
    for model in (FeedbackSubmitted, PolicyGenerated, PolicySkipped, PolicyGenerationFailed, PolicyReviewed)
}

DecisionStatus = Literal["generated", "skipped", "failed"]
