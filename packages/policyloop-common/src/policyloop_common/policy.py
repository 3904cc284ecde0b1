"""The policy object of the contract and its closed vocabularies."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from policyloop_common.safe_text import SafeText

# Counts and versions are stored as 32-bit integers.
MAX_INT32 = 2**31 - 1


class PolicyStatus(StrEnum):
    """Lifecycle of a policy: pending_review -> active -> superseded | retired | rejected."""

    PENDING_REVIEW = "pending_review"
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    RETIRED = "retired"
    REJECTED = "rejected"


class PolicyCategory(StrEnum):
    """What kind of lesson a policy teaches; a closed set documented in docs/policies.md."""

    SCHEMA_MAPPING = "schema_mapping"
    BUSINESS_LOGIC = "business_logic"
    QUERY_CONSTRUCTION = "query_construction"
    DATA_INTERPRETATION = "data_interpretation"
    RESPONSE_FORMAT = "response_format"
    OTHER = "other"


class PolicyPriority(StrEnum):
    """How strongly the assistant should weigh a policy."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


_PRIORITY_ORDER = {PolicyPriority.LOW: 0, PolicyPriority.MEDIUM: 1, PolicyPriority.HIGH: 2}
# A lesson users keep teaching matters more than its first telling said: this many reports raise the priority to
# at least the level beside it (never lower it).
PRIORITY_BY_SUPPORT = ((5, PolicyPriority.HIGH), (3, PolicyPriority.MEDIUM))


def priority_with_support(priority: PolicyPriority | str, support_count: int) -> PolicyPriority:
    """``priority``, raised to what ``support_count`` reports of the lesson call for."""
    current = PolicyPriority(priority)
    for reports, floor in PRIORITY_BY_SUPPORT:
        if support_count >= reports and _PRIORITY_ORDER[floor] > _PRIORITY_ORDER[current]:
            return floor
    return current


# Policies travel in events: like the events, they ignore fields added by a newer producer.
class GeneratorInfo(BaseModel):
    """Which provider and model produced a policy."""

    model_config = ConfigDict(extra="ignore")

    provider: SafeText = Field(max_length=64)
    model: SafeText = Field(max_length=128)
    # What the decision that wrote this version spent; the store fills them in, null where not known.
    prompt_tokens: int | None = Field(default=None, ge=0, le=MAX_INT32)
    completion_tokens: int | None = Field(default=None, ge=0, le=MAX_INT32)
    cost_usd: float | None = Field(default=None, ge=0)


class PolicyContent(BaseModel):
    """The part of a policy a provider writes: the lesson itself."""

    model_config = ConfigDict(extra="ignore")

    category: PolicyCategory
    priority: PolicyPriority
    rule: SafeText = Field(min_length=1, max_length=2000)
    correct_mapping: SafeText | None = Field(default=None, max_length=1000)
    missing_knowledge: SafeText = Field(default="", max_length=2000)
    examples: list[SafeText] = Field(default_factory=list, max_length=10)
    rationale: SafeText = Field(default="", max_length=2000)


class Policy(PolicyContent):
    """A policy as events carry it and the store serves it (CONTRACT.md, "The policy object")."""

    policy_id: SafeText = Field(min_length=1, max_length=64)
    version: int = Field(ge=1, le=MAX_INT32)
    status: PolicyStatus
    source_feedback_ids: list[Annotated[SafeText, Field(max_length=64)]] = Field(default_factory=list)
    support_count: int = Field(ge=0, le=MAX_INT32)
    created_at: datetime
    updated_at: datetime
    generator: GeneratorInfo
    # Set by the store: when the policy is (or was) in force, and what it replaced or was replaced by.
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    supersedes: list[Annotated[SafeText, Field(max_length=64)]] = Field(default_factory=list)
    superseded_by: SafeText | None = Field(default=None, max_length=64)
