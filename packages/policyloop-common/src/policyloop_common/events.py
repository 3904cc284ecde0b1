"""Event contracts carried on Kafka: one pydantic model per CloudEvents type."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from policyloop_common.policy import Policy, PolicyCategory, PolicyPriority, PolicyStatus
from policyloop_common.safe_text import SafeJson, SafeText

FEEDBACK_SUBMITTED_TOPIC = "feedback.submitted.v1"
POLICY_DECISIONS_TOPIC = "policy.decisions.v1"
POLICY_REVIEWS_TOPIC = "policy.reviews.v1"
POLICY_USAGE_TOPIC = "policy.usage.v1"
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


class FeedbackReanalysisRequested(EventPayload):
    """An operator asked the generator to decide a feedback again, with today's policies, model and catalogue.

    Published by policy-store (``policy-store-admin reanalyze``, ``POST /v1/reanalysis``) on the feedback topic,
    keyed by the feedback id: one queue of feedback to decide, so a request follows its feedback's submission on the
    same partition and the generators' partitions carry both evenly. The event id is derived from ``run_id`` and
    the feedback id, so asking twice within one run is one request; the generator decides each feedback once per
    run, and its decision events carry the run id.
    """

    ce_type: ClassVar[str] = "FeedbackReanalysisRequested"
    topic: ClassVar[str] = FEEDBACK_SUBMITTED_TOPIC

    run_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    requested_by: SafeText = Field(min_length=1, max_length=256)
    requested_at: datetime
    reason: SafeText | None = Field(default=None, max_length=2000)
    # The submission as the store keeps it: the generator needs nothing else to decide it again.
    feedback: FeedbackSubmitted


class DecisionKind(StrEnum):
    """What the generator decided for one feedback."""

    NEW = "new"
    UPDATE = "update"
    SUPERSEDE = "supersede"
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
    # What the calls cost at the configured prices (US dollars); 0 for the offline provider.
    cost_usd: float = Field(default=0.0, ge=0)

    def plus(self, other: TokenUsage) -> TokenUsage:
        """Both spends together."""
        return TokenUsage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                          completion_tokens=self.completion_tokens + other.completion_tokens,
                          cost_usd=round(self.cost_usd + other.cost_usd, 8))


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
    # kind "supersede": the policies the new one replaces because it contradicts them; the store marks them
    # superseded (validity ended, linked both ways) and nothing is deleted.
    supersedes: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list,
                                                                                  max_length=5)


class PolicyGenerated(EventPayload):
    """The feedback taught something: a new policy, or a new version of an existing one."""

    ce_type: ClassVar[str] = "PolicyGenerated"
    topic: ClassVar[str] = POLICY_DECISIONS_TOPIC

    policy: Policy
    decision: DecisionDetails
    # Set when the decision answers a FeedbackReanalysisRequested of this run.
    reanalysis_run_id: str | None = Field(default=None, max_length=64)


class PolicySkipped(EventPayload):
    """The feedback produced no new policy: a duplicate (counted as evidence), nothing to learn, or positive."""

    ce_type: ClassVar[str] = "PolicySkipped"
    topic: ClassVar[str] = POLICY_DECISIONS_TOPIC

    reason: SkipReason
    duplicate_of: str | None = None
    explanation: str = Field(default="", max_length=4000)
    decision: DecisionDetails
    # Set when the decision answers a FeedbackReanalysisRequested of this run.
    reanalysis_run_id: str | None = Field(default=None, max_length=64)


class PolicyGenerationFailed(EventPayload):
    """The generator gave up after its retries; the feedback can be replayed."""

    ce_type: ClassVar[str] = "PolicyGenerationFailed"
    topic: ClassVar[str] = POLICY_DECISIONS_TOPIC

    error_class: str = Field(max_length=256)
    error_message: str = Field(default="", max_length=4000)
    attempts: int = Field(ge=1)
    # Set when the decision answers a FeedbackReanalysisRequested of this run.
    reanalysis_run_id: str | None = Field(default=None, max_length=64)


class ReviewAction(StrEnum):
    """What a reviewer did to a policy."""

    APPROVE = "approve"
    REJECT = "reject"
    RETIRE = "retire"
    # Replaced by a better policy, named in ``superseded_by``: the old one stops being served.
    SUPERSEDE = "supersede"


# The status a policy has after each review action.
REVIEW_OUTCOME: dict[ReviewAction, PolicyStatus] = {
    ReviewAction.APPROVE: PolicyStatus.ACTIVE,
    ReviewAction.REJECT: PolicyStatus.REJECTED,
    ReviewAction.RETIRE: PolicyStatus.RETIRED,
    ReviewAction.SUPERSEDE: PolicyStatus.SUPERSEDED,
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
    # The successor, for ``supersede`` only.
    superseded_by: str | None = Field(default=None, min_length=1, max_length=64)
    # ``supersede`` of a twin (the same lesson written twice at once): the superseded policy's source feedback
    # become evidence of the successor.
    merge: bool = False


class PolicyEdit(BaseModel):
    """The content fields a reviewer changed; fields left out (or null) keep their value.

    Null means "unchanged" rather than "remove" because events travel as JSON with every field present; the one
    optional field, ``correct_mapping``, is removed with an empty string.
    """

    model_config = EVENT_MODEL_CONFIG

    category: PolicyCategory | None = None
    priority: PolicyPriority | None = None
    rule: SafeText | None = Field(default=None, min_length=1, max_length=2000)
    correct_mapping: SafeText | None = Field(default=None, max_length=1000)
    missing_knowledge: SafeText | None = Field(default=None, max_length=2000)
    examples: list[SafeText] | None = Field(default=None, max_length=10)
    rationale: SafeText | None = Field(default=None, max_length=2000)

    def updates(self) -> dict:
        """The columns to set: the fields given, with an empty ``correct_mapping`` meaning none."""
        fields = self.model_dump(mode="json", exclude_none=True)
        if fields.get("correct_mapping") == "":
            fields["correct_mapping"] = None
        return fields


def edited(policy: Policy, event: PolicyEdited) -> Policy:
    """``policy`` with an edit applied: the new version's content."""
    return policy.model_validate({**policy.model_dump(mode="json"), **event.changes.updates(),
                                  "version": event.version, "updated_at": event.edited_at})


class PolicyEdited(BaseModel):
    """A reviewer rewrote part of a policy: a new version of the same policy, published by policy-store."""

    model_config = EVENT_MODEL_CONFIG

    ce_type: ClassVar[str] = "PolicyEdited"
    topic: ClassVar[str] = POLICY_REVIEWS_TOPIC
    schema_version: ClassVar[int] = 1

    policy_id: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=2, description="the version this edit creates")
    changes: PolicyEdit
    editor: str = Field(min_length=1, max_length=256)
    reason: str | None = Field(default=None, max_length=2000)
    edited_at: datetime


class PolicyImported(BaseModel):
    """An operator brought a policy in from an export (another environment, or a backup); published by
    policy-store on ``POST /v1/policies/import`` so that a replay rebuilds it and the generator deduplicates
    against it. The policy keeps its id, version, status and sources; an id the store already has is left alone.
    """

    model_config = EVENT_MODEL_CONFIG

    ce_type: ClassVar[str] = "PolicyImported"
    topic: ClassVar[str] = POLICY_REVIEWS_TOPIC
    schema_version: ClassVar[int] = 1

    policy: Policy
    importer: str = Field(min_length=1, max_length=256)
    imported_at: datetime
    # Where the policy came from, e.g. the exporting store's URL; for the history.
    origin: str | None = Field(default=None, max_length=2000)

    @property
    def partition_key(self) -> str:
        """With the policy's reviews, in order."""
        return self.policy.policy_id


MAX_POLICIES_PER_USE = 50


def _distinct_ids(policy_ids: list[str]) -> list[str]:
    """The ids in their first order, each once: a policy put into a prompt twice was still used once."""
    return list(dict.fromkeys(policy_ids))


# 1 to 50 policy ids, each once; shared by the event and the request that reports the usage.
UsedPolicyIds = Annotated[
    list[Annotated[SafeText, Field(min_length=1, max_length=64)]],
    AfterValidator(_distinct_ids),
    Field(min_length=1, max_length=MAX_POLICIES_PER_USE),
]


class PolicyUsed(BaseModel):
    """The assistant put these policies into the prompt of one answer; feedback on that answer is attributed to them.

    Published by policy-store on ``POST /v1/usage``, so a replay of the topics rebuilds usage like everything else.
    """

    model_config = EVENT_MODEL_CONFIG

    ce_type: ClassVar[str] = "PolicyUsed"
    topic: ClassVar[str] = POLICY_USAGE_TOPIC
    schema_version: ClassVar[int] = 1

    conversation_id: SafeText = Field(min_length=1, max_length=256)
    message_id: SafeText = Field(min_length=1, max_length=256)
    policy_ids: UsedPolicyIds
    # The question of the answer, when the assistant sends it: kept with the usage for comparing similar questions.
    question: SafeText | None = Field(default=None, max_length=MAX_TEXT)
    used_by: str = Field(min_length=1, max_length=256)
    used_at: datetime

    @property
    def partition_key(self) -> str:
        """All usage of one answer on one partition, in order."""
        return f"{self.conversation_id}/{self.message_id}"


DecisionEvent = PolicyGenerated | PolicySkipped | PolicyGenerationFailed
AnyEvent = (FeedbackSubmitted | FeedbackReanalysisRequested | PolicyGenerated | PolicySkipped | PolicyGenerationFailed
            | PolicyReviewed | PolicyEdited | PolicyImported | PolicyUsed)

EVENT_TYPES: dict[str, type[BaseModel]] = {
    model.ce_type: model
    for model in (FeedbackSubmitted, FeedbackReanalysisRequested, PolicyGenerated, PolicySkipped,
                  PolicyGenerationFailed, PolicyReviewed, PolicyEdited, PolicyImported, PolicyUsed)
}

DecisionStatus = Literal["generated", "skipped", "failed"]
