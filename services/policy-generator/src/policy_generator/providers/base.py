"""The one interface every provider implements, and the decision it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from policy_generator.context import GenerationContext
from policyloop_common.events import TokenUsage
from policyloop_common.policy import Policy, PolicyContent


class Verdict(StrEnum):
    """What a provider concluded about one feedback."""

    NEW = "NEW"
    DUPLICATE = "DUPLICATE"
    # Refines candidate ``target``: the same policy, next version.
    UPDATE = "UPDATE"
    # Contradicts candidate ``target``: a new policy replaces it; the old one is superseded, not deleted.
    SUPERSEDE = "SUPERSEDE"
    NOT_ACTIONABLE = "NOT_ACTIONABLE"


@dataclass(frozen=True)
class Candidate:
    """An existing policy similar to the feedback, shown to the provider under a short integer id."""

    index: int
    policy: Policy
    similarity: float


@dataclass(frozen=True)
class DecisionRequest:
    """Everything a provider may use to decide: the bounded context and the candidates."""

    context: GenerationContext
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True)
class ProviderDecision:
    """A provider's answer. ``duplicate_of`` (DUPLICATE) and ``target`` (UPDATE, SUPERSEDE) are candidate
    indexes; ``policy`` is set for NEW, UPDATE and SUPERSEDE."""

    verdict: Verdict
    reasoning: str
    policy: PolicyContent | None = None
    duplicate_of: int | None = None
    target: int | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    llm_calls: int = 0


class ProviderError(Exception):
    """A provider could not decide; ``retriable`` says whether trying again later may help."""

    def __init__(self, message: str, *, retriable: bool, attempts: int = 1) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.attempts = attempts


class PolicyProvider(Protocol):
    """Decides what one feedback teaches.

    The generator calls ``decide`` from several threads at once (GENERATOR_MAX_IN_FLIGHT), so a provider keeps no
    per-call state on itself.
    """

    name: str
    model: str

    def decide(self, request: DecisionRequest) -> ProviderDecision:
        """Return the decision for ``request`` or raise ProviderError."""
        ...
