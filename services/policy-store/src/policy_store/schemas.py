"""Request and response bodies of policy-store's API, for the OpenAPI document and validation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from policyloop_common.errors import error_responses
from policyloop_common.events import MAX_TEXT, UsedPolicyIds
from policyloop_common.policy import Policy
from policyloop_common.safe_text import SafeText

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
    # Present when the decision shown is that of a re-analysis run (docs/operations.md, "Re-analysis").
    reanalysis_run_id: str | None = None


class PolicyPage(BaseModel):
    """One page of policies and the cursor of the next, if any."""

    items: list[Policy]
    next_cursor: str | None


class RelevanceParts(BaseModel):
    """What a relevance score is made of, each part in [0, 1] (the formula: docs/retrieval.md)."""

    model_config = ConfigDict(populate_by_name=True)

    semantic: float = Field(ge=0, le=1, description="cosine of the bilingual term vectors")
    keyword: float = Field(ge=0, le=1, description="BM25 of the question's words and phrases, normalized")
    # "schema" is the name in the JSON; as a Python attribute it would shadow BaseModel.schema.
    schema_objects: float = Field(alias="schema", ge=0, le=1, description="shared schema objects")
    priority: float = Field(ge=0, le=1, description="high 1, medium 0.5, low 0")
    support: float = Field(ge=0, le=1, description="how often the lesson was reported, saturating at ten")


class ScoredPolicy(BaseModel):
    """A policy and how relevant it is to the question, in [0, 1], with the parts of the score."""

    policy: Policy
    score: float = Field(ge=0, le=1)
    scores: RelevanceParts


class RelevantPolicies(BaseModel):
    """The active policies most relevant to a question, best first."""

    items: list[ScoredPolicy]


class ReviewRequest(BaseModel):
    """Optional reason of a review action."""

    reason: str | None = Field(default=None, max_length=2000)


class SupersedeRequest(ReviewRequest):
    """The policy that replaces this one, and optionally why."""

    superseded_by: str = Field(min_length=1, max_length=64)


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


class ImportResult(BaseModel):
    """Whether an imported policy was new here, and the policy as the store now has it."""

    imported: bool
    policy: Policy


class UsageRequest(BaseModel):
    """``POST /v1/usage``: the policies put into the prompt of one answer; the caller comes from the token."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: SafeText = Field(min_length=1, max_length=256)
    message_id: SafeText = Field(min_length=1, max_length=256)
    policy_ids: UsedPolicyIds
    question: SafeText | None = Field(default=None, max_length=MAX_TEXT)


class UsageAccepted(BaseModel):
    """``202``: the usage is durably in Kafka; ``usage_id`` is its event id."""

    usage_id: str
    policy_ids: list[str]
    # Ids of the report this store does not have (recorded all the same); empty normally.
    unknown_policy_ids: list[str] = Field(default_factory=list)


class FeedbackAfterUse(BaseModel):
    """Rated feedback on the answers that used the policy."""

    positive: int
    negative: int
    negative_rate: float | None


class FeedbackTallyBody(BaseModel):
    """Rated feedback on one side of the comparison, and its negative share (null without feedback)."""

    feedback: int
    negative: int
    negative_rate: float | None


class SimilarQuestions(BaseModel):
    """Feedback on questions similar to the policy, before its activation and while active."""

    threshold: float
    before: FeedbackTallyBody
    after: FeedbackTallyBody


class PolicyEffectiveness(BaseModel):
    """How a policy does since it is used: the figures, whether they mark it harmful, and why."""

    policy_id: str
    status: str
    uses: int
    feedback_after_use: FeedbackAfterUse
    similar_questions: SimilarQuestions
    activated_at: datetime | None
    harmful: bool
    retirement_suggested: bool
    signals: list[str]


MAX_REANALYSIS_IDS = 1000
MAX_REANALYSIS_PAGE = 1000


class ReanalysisRunRequest(BaseModel):
    """``POST /v1/reanalysis``: which feedback to decide again, in which run, one page per call.

    Without a filter ``all`` must be true, so that an empty body never re-runs everything.
    """

    model_config = ConfigDict(extra="forbid")

    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$",
                               description="the run to add to (repeat or resume); a new one when absent")
    feedback_ids: list[Annotated[SafeText, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=MAX_REANALYSIS_IDS)
    statuses: list[Literal["pending", "generated", "skipped", "failed"]] | None = Field(default=None, min_length=1)
    reasons: list[Annotated[SafeText, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=50, description="not_actionable, duplicate_policy, an error class, …")
    submitted_after: AwareDatetime | None = Field(default=None, description="inclusive")
    submitted_before: AwareDatetime | None = Field(default=None, description="exclusive")
    all: bool = Field(default=False, description="required when no filter is given")
    reason: SafeText | None = Field(default=None, max_length=2000, description="why the run is made")
    limit: int = Field(default=500, ge=1, le=MAX_REANALYSIS_PAGE)
    cursor: str | None = Field(default=None, max_length=512)

    @model_validator(mode="after")
    def _says_what_to_reanalyse(self) -> ReanalysisRunRequest:
        filters = (self.feedback_ids, self.statuses, self.reasons, self.submitted_after, self.submitted_before)
        if not self.all and all(value is None for value in filters):
            raise ValueError("name what to re-analyse (feedback_ids, statuses, reasons, submitted_after, "
                             "submitted_before), or set all: true for every feedback that can be")
        return self


class ReanalysisAccepted(BaseModel):
    """``202``: one page of the selection is requested (in Kafka and recorded here); ``next_cursor`` continues."""

    run_id: str
    requested: int
    selected: int = Field(description="feedback matching the selection now, every page together")
    next_cursor: str | None
    status_url: str
    skipped_ids: list[str] = Field(default_factory=list, description=(
        "ids asked for that cannot be re-analysed (unknown, positive, submission not stored), on the first page; "
        "and rows of this page whose stored submission is no longer valid"))


class ReanalysisOutcomes(BaseModel):
    """How the decided requests of a run came out."""

    generated: int
    skipped: int
    failed: int


class ReanalysisRunStatus(BaseModel):
    """``GET /v1/reanalysis/{run_id}``: how far a run is."""

    run_id: str
    requested: int
    decided: int
    outcomes: ReanalysisOutcomes
    policies_created: list[str] = Field(description="policies first written by a decision of this run (up to 1000)")
    done: bool
