"""From one FeedbackSubmitted to exactly one decision event, using the policy index and a provider."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from policy_generator.context import GenerationContext, build_context
from policy_generator.dedup import (
    COMPARABLE_STATUSES,
    FAST_PATH_THRESHOLD,
    feedback_text,
    find_duplicate,
    rank_candidates,
)
from policy_generator.embeddings import PolicyEmbeddings, merged_candidates
from policy_generator.metrics import LLM_CALLS, LLM_TOKENS
from policy_generator.policy_index import OUT_OF_SERVICE, PolicyIndex, laid_over
from policy_generator.providers.base import Candidate, DecisionRequest, PolicyProvider, ProviderError, Verdict
from policy_generator.schema_catalogue import SchemaCatalogue
from policy_generator.screening import input_findings, output_findings
from policyloop_common.events import (
    DecisionDetails,
    DecisionEvent,
    DecisionKind,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyGenerationFailed,
    PolicySkipped,
    Rating,
    SkipReason,
)
from policyloop_common.policy import GeneratorInfo, Policy, PolicyContent, PolicyStatus
from policyloop_common.text_matching import schema_objects

log = logging.getLogger(__name__)

# Policy ids derive from the feedback that created them, so reprocessing a feedback yields the same id.
_POLICY_NAMESPACE = uuid.UUID("0b8f5f0e-3c1d-4d8e-8f7a-5a2b1c9d7e60")


def policy_id_for(feedback_id: str, run_id: str | None = None) -> str:
    """The id of the policy a feedback creates; a re-analysis run makes its own, so the policy of the first
    decision (perhaps rejected since) is never overwritten."""
    return str(uuid.uuid5(_POLICY_NAMESPACE, feedback_id if run_id is None else f"{feedback_id}\n{run_id}"))


def decision_kind(event: DecisionEvent) -> str:
    """The ``kind`` label of a decision: new, duplicate, not_actionable, positive or failed."""
    return "failed" if isinstance(event, PolicyGenerationFailed) else event.decision.kind.value


@dataclass
class DecisionMaker:
    """Decides one feedback against the index, or against a given view of it; safe to call from several threads."""

    index: PolicyIndex
    provider: PolicyProvider
    candidate_count: int = 5
    fast_path_threshold: float = FAST_PATH_THRESHOLD
    # The database the assistant queries; when given, a policy naming a column it lacks goes to review.
    catalogue: SchemaCatalogue | None = None
    # Candidates by meaning as well, when EMBEDDINGS_MODEL is configured.
    embeddings: PolicyEmbeddings | None = None

    def decide(self, feedback: FeedbackSubmitted, policies: Sequence[Policy] | None = None, *,
               run_id: str | None = None, made: Sequence[Policy] = ()) -> DecisionEvent:
        """The decision event for ``feedback``; provider failures become PolicyGenerationFailed.

        ``policies`` are the known policies to rank candidates from; by default the index's, staged ones included,
        ranked through its candidate index (an explicit list is scored policy by policy). ``made`` are policies
        not in the index yet (made earlier in the same batch): they are known too, each replacing the known
        version of its id. ``run_id`` names the re-analysis run that asked for the decision; the event carries
        it. Deciding again is deciding afresh: the feedback's earlier policy is a candidate like any other, so a
        lesson already learnt comes back as a duplicate of it (evidence it already counts) instead of a second
        policy.
        """
        event = self._decide(feedback, _Known(self.index, policies, made), run_id)
        return event if run_id is None else event.model_copy(update={"reanalysis_run_id": run_id})

    def _decide(self, feedback: FeedbackSubmitted, known: _Known, run_id: str | None) -> DecisionEvent:
        if feedback.rating is Rating.POSITIVE:
            return PolicySkipped(
                feedback_id=feedback.feedback_id, reason=SkipReason.POSITIVE_FEEDBACK,
                explanation="Positive feedback confirms the answer; there is nothing to correct.",
                decision=self._details(DecisionKind.POSITIVE, "positive rating"),
            )
        context = build_context(feedback)
        # Screened before anything else: the findings travel with whatever is decided, for the reviewer's eyes.
        suspicious = input_findings(context)
        offline = known.rank(context, self.candidate_count)
        objects = sorted(schema_objects(" ".join([context.comment, *context.sql_queries])))
        best = offline[0].similarity if offline else None

        # Fast path: a near-verbatim repeat of a known lesson needs no model call (on the measured offline score).
        duplicate = find_duplicate(offline, self.fast_path_threshold)
        candidates = offline
        if duplicate is None and self.embeddings is not None:
            comparable = [p for p in known.policies() if p.status in COMPARABLE_STATUSES]
            nearest = self.embeddings.nearest(feedback_text(context), comparable, self.candidate_count)
            candidates = merged_candidates(offline, nearest, self.candidate_count)
        candidate_ids = [candidate.policy.policy_id for candidate in candidates]
        if duplicate is not None:
            return PolicySkipped(
                feedback_id=feedback.feedback_id, reason=SkipReason.DUPLICATE_POLICY,
                duplicate_of=duplicate.policy.policy_id,
                explanation=f"Already covered by policy {duplicate.policy.policy_id}: {duplicate.policy.rule}",
                decision=self._details(DecisionKind.DUPLICATE, "similarity above the duplicate threshold",
                                       candidate_ids, best, objects, review_reasons=suspicious),
            )
        try:
            verdict = self.provider.decide(DecisionRequest(context=context, candidates=candidates))
        except ProviderError as error:
            log.error("provider failed after its retries", extra={"error": str(error)})
            return PolicyGenerationFailed(feedback_id=feedback.feedback_id, error_class=type(error).__name__,
                                          error_message=str(error)[:4000],
                                          attempts=error.attempts)
        LLM_CALLS.labels(self.provider.name).inc(verdict.llm_calls)
        LLM_TOKENS.labels(self.provider.name, "prompt").inc(verdict.usage.prompt_tokens)
        LLM_TOKENS.labels(self.provider.name, "completion").inc(verdict.usage.completion_tokens)

        details = dict(candidate_ids=candidate_ids, best_similarity=best, schema_objects=objects,
                       llm_calls=verdict.llm_calls, usage=verdict.usage, review_reasons=suspicious)
        if verdict.verdict is Verdict.DUPLICATE and verdict.duplicate_of is not None:
            original = candidates[verdict.duplicate_of].policy
            return PolicySkipped(
                feedback_id=feedback.feedback_id, reason=SkipReason.DUPLICATE_POLICY,
                duplicate_of=original.policy_id, explanation=verdict.reasoning,
                decision=self._details(DecisionKind.DUPLICATE, verdict.reasoning, **details),
            )
        if verdict.verdict is Verdict.UPDATE and verdict.policy is not None and verdict.target is not None:
            refined = self._refined(feedback, candidates[verdict.target].policy, verdict.policy)
            reasons = self._review_reasons(suspicious, refined)
            # A served policy is never rewritten from suspicious input: the refinement waits as a new policy.
            if not reasons:
                return PolicyGenerated(feedback_id=feedback.feedback_id, policy=refined,
                                       decision=self._details(DecisionKind.UPDATE, verdict.reasoning, **details))
        if verdict.verdict in (Verdict.NEW, Verdict.UPDATE, Verdict.SUPERSEDE) and verdict.policy is not None:
            now = datetime.now(UTC)
            policy = Policy(
                **verdict.policy.model_dump(), policy_id=policy_id_for(feedback.feedback_id, run_id), version=1,
                status=PolicyStatus.PENDING_REVIEW, source_feedback_ids=[feedback.feedback_id], support_count=1,
                created_at=now, updated_at=now,
                generator=GeneratorInfo(provider=self.provider.name, model=self.provider.model),
            )
            details["review_reasons"] = (self._review_reasons(suspicious, policy)
                                         + _rejected_before(feedback, known.out_of_service()))
            kind = DecisionKind.NEW
            # A contradiction retires the old rule only through a policy that may be served as it is.
            if verdict.verdict is Verdict.SUPERSEDE and verdict.target is not None and not details["review_reasons"]:
                kind, details["supersedes"] = DecisionKind.SUPERSEDE, [candidates[verdict.target].policy.policy_id]
            return PolicyGenerated(feedback_id=feedback.feedback_id, policy=policy,
                                   decision=self._details(kind, verdict.reasoning, **details))
        return PolicySkipped(
            feedback_id=feedback.feedback_id, reason=SkipReason.NOT_ACTIONABLE, explanation=verdict.reasoning,
            decision=self._details(DecisionKind.NOT_ACTIONABLE, verdict.reasoning, **details),
        )

    def _refined(self, feedback: FeedbackSubmitted, original: Policy, content: PolicyContent) -> Policy:
        """The next version of ``original`` with the refined text; the feedback joins its sources."""
        sources = list(dict.fromkeys([*original.source_feedback_ids, feedback.feedback_id]))
        return original.model_copy(update={
            **content.model_dump(), "version": original.version + 1, "source_feedback_ids": sources,
            "support_count": len(sources), "updated_at": datetime.now(UTC),
            "generator": GeneratorInfo(provider=self.provider.name, model=self.provider.model)})

    def _review_reasons(self, suspicious: list[str], policy: Policy) -> list[str]:
        """Why a reviewer must see this policy first: the input's findings, the policy's own, the schema's."""
        reasons = [*suspicious, *output_findings(policy)]
        if self.catalogue is not None:
            reasons += self.catalogue.problems(policy)
        if reasons:
            log.warning("policy held for review", extra={"reasons": reasons})
        return reasons

    def _details(self, kind: DecisionKind, explanation: str, candidate_ids: list[str] | None = None,
                 best_similarity: float | None = None, schema_objects: list[str] | None = None,
                 **extra) -> DecisionDetails:
        return DecisionDetails(kind=kind, provider=self.provider.name, model=self.provider.model,
                               explanation=explanation[:4000], candidate_policy_ids=candidate_ids or [],
                               best_similarity=best_similarity, schema_objects=schema_objects or [], **extra)


@dataclass(frozen=True)
class _Known:
    """The policies a decision is made against: the index's (ranked through its candidate index) or a given
    list (scored one by one), with the policies ``made`` laid over them."""

    index: PolicyIndex
    given: Sequence[Policy] | None
    made: Sequence[Policy]

    def rank(self, context: GenerationContext, k: int) -> list[Candidate]:
        """The ``k`` best candidates, as ``dedup.rank_candidates`` ranks them."""
        if self.given is None:
            return self.index.rank_candidates(context, k, self.made)
        return rank_candidates(context, laid_over(self.given, self.made), k=k)

    def policies(self) -> list[Policy]:
        """Every one of them; a copy of the index's, so only where a decision needs more than its candidates."""
        return laid_over(self.index.policies() if self.given is None else self.given, self.made)

    def out_of_service(self) -> list[Policy]:
        """Those a person took out of service, in policy id order."""
        if self.given is None:
            return self.index.out_of_service(self.made)
        return sorted((policy for policy in laid_over(self.given, self.made) if policy.status in OUT_OF_SERVICE),
                      key=lambda policy: policy.policy_id)


def _rejected_before(feedback: FeedbackSubmitted, out_of_service: Sequence[Policy]) -> list[str]:
    """A reviewer rejected or retired a policy this feedback gave before: a new one from it (a re-analysis)
    waits for a reviewer too, rather than bring back a lesson someone took out of service."""
    return [f"feedback re-analysed after its policy {policy.policy_id} was {policy.status.value}"
            for policy in out_of_service if feedback.feedback_id in policy.source_feedback_ids][:1]
