"""Candidate policies for a feedback, and the similarity at which a feedback is a known lesson."""

from __future__ import annotations

import re
from collections.abc import Iterable

from policy_generator.context import GenerationContext
from policy_generator.providers.base import Candidate
from policyloop_common.policy import Policy, PolicyStatus
from policyloop_common.text_matching import Document, schema_objects, similarity_docs

# Measured on shared/data/feedback-cases.jsonl (see tests/test_dedup.py): paraphrases of one lesson score
# 0.45–0.9 against its policy, different lessons on the same tables stay below 0.35. 0.45 keeps a margin on
# both sides; a provider that sees the candidates can still call a lower-scoring one a duplicate.
DUPLICATE_THRESHOLD = 0.45

_COMPARABLE = {PolicyStatus.PENDING_REVIEW, PolicyStatus.ACTIVE}


def policy_text(policy: Policy) -> str:
    """The text of a policy that feedback is compared with."""
    return " ".join(filter(None, [policy.rule, policy.correct_mapping or "", policy.missing_knowledge]))


def policy_objects(policy: Policy) -> set[str]:
    """Schema objects of a policy: those its text names, and both sides of its correct mapping."""
    objects = schema_objects(policy_text(policy))
    if policy.correct_mapping:
        for side in policy.correct_mapping.split("->"):
            objects |= {token for token in re.findall(r"[a-z_][a-z0-9_.]*", side.lower())
                        if "_" in token or "." in token or len(token) > 2 and side.strip().lower() == token}
            objects |= schema_objects(side)
    return objects


def feedback_text(context: GenerationContext) -> str:
    """The text of a feedback compared with policies: the comment is the lesson, the question its setting."""
    return context.comment


def feedback_objects(context: GenerationContext) -> set[str]:
    """Schema objects the lesson is about: those the comment names and those the failed query's error names."""
    objects = schema_objects(context.comment)
    for result in context.results:
        if "does not exist" in result or "error" in result.lower():
            # Rendered as JSON, the error's quotes arrive escaped; unescape so the quoted identifier is found.
            objects |= schema_objects(result.replace('\\"', '"'))
    return objects


def rank_candidates(context: GenerationContext, policies: Iterable[Policy], k: int = 5) -> list[Candidate]:
    """The ``k`` pending or active policies most similar to the feedback, best first, indexed 0..k-1."""
    probe = Document.of(feedback_text(context), feedback_objects(context))
    scored = []
    for policy in policies:
        if policy.status not in _COMPARABLE:
            continue
        scored.append((similarity_docs(probe, Document.of(policy_text(policy), policy_objects(policy))), policy))
    scored.sort(key=lambda pair: (-pair[0], pair[1].created_at))
    return [Candidate(index=i, policy=policy, similarity=round(score, 4))
            for i, (score, policy) in enumerate(scored[:k])]


def find_duplicate(candidates: list[Candidate], threshold: float = DUPLICATE_THRESHOLD) -> Candidate | None:
    """The best candidate if it reaches ``threshold``."""
    if candidates and candidates[0].similarity >= threshold:
        return candidates[0]
    return None
