"""Candidate policies for a feedback, and the similarity at which a feedback repeats a known lesson.

The feedback side of a comparison is its comment (the lesson) with the question as its setting (at most
QUESTION_WEIGHT of it: different lessons are often taught on the same kind of question). Its schema objects
are those the comment names plus, at half weight, those a database error names (what went wrong). The other
identifiers of the executed SQL are left out on purpose: they say what the question was about, not what the
lesson is, and counting them merged different lessons on the same tables in the evaluation. The policy side is
its rule, correct mapping and missing knowledge, with its example questions as their setting. The score is
``text_matching.similarity_docs`` of the two documents.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from policy_generator.context import GenerationContext
from policy_generator.providers.base import Candidate
from policyloop_common.policy import Policy, PolicyContent, PolicyStatus
from policyloop_common.text_matching import Document, object_weights, similarity_docs

# Measured with the offline provider over the labelled sample, its paraphrase file and the paraphrase cases of
# the generator's tests together (124 cases, 27 lessons on one three-table schema): 65 of the 69 cases that
# repeat a lesson score at least 0.40 against its policy (lowest 0.35); 19 of 99 score 0.40 or more against
# the policy of some other lesson on the same tables. No threshold separates those alone, so 0.40 keeps recall
# and a provider must still judge the candidate (the offline one checks mapping, values and kind of lesson).
DUPLICATE_THRESHOLD = 0.40

# At or above this the generator folds a feedback into its best candidate without asking any provider, so no
# feedback may reach it against a policy of another lesson. Measured over the same 124 cases, each against the
# policy the offline provider drafts from every lesson case (``evaluation.similarity_report``; docs/dedup.md):
# the highest score against another lesson's policy is 0.837 ("level 4 or higher" against "high security", both
# security_level >= 4), the highest of a paraphrase against its own lesson's policy 0.899, and a verbatim repeat
# scores 0.59-0.97 against the policy it created (median 0.90). 0.90 keeps a margin of 0.063 over every other
# lesson and still takes 46 of the 99 verbatim repeats; the rest go to the provider. test_dedup.py holds the
# margin. The generator's FAST_PATH_THRESHOLD setting defaults to this value.
FAST_PATH_THRESHOLD = 0.90

# A NEW decision made concurrently with others of its batch did not see the policies they create. Where one of
# those scores at least this against the feedback, the feedback is decided again with them as candidates (see
# ``batch_decisions``). Over the same 124 cases the lowest score of a case against the policy drafted from
# another case of its lesson is 0.339, and the offline provider calls a candidate of the same kind of lesson a
# duplicate from DUPLICATE_THRESHOLD - 0.10 = 0.30. At 0.30 no measured twin escapes the second look, and it is
# far above the median different-lesson score (0.021), so the second look stays rare.
IN_BATCH_RECHECK_THRESHOLD = 0.30

# The question sets the scene of a comment and the examples that of a rule: each weighs at most this share.
QUESTION_WEIGHT = 0.3
EXAMPLES_WEIGHT = 0.3
# Objects a database error names count half as much as those the comment names.
ERROR_OBJECT_SHARE = 0.5

COMPARABLE_STATUSES = frozenset({PolicyStatus.PENDING_REVIEW, PolicyStatus.ACTIVE})
# Candidates carry their score rounded to this many decimal places; the thresholds apply to the rounded score.
SCORE_PLACES = 4
_ERROR_HINT = re.compile(r"error|does not exist|not found|syntax|invalid|unknown|missing", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?")


def policy_text(policy: PolicyContent) -> str:
    """The text of a policy that feedback is matched against: rule, mapping, missing knowledge, examples."""
    parts = [policy.rule, policy.correct_mapping, policy.missing_knowledge, *policy.examples]
    return "\n".join(part for part in parts if part)


def feedback_text(context: GenerationContext) -> str:
    """The text of a feedback that is matched: the comment, the question, the executed SQL, in that order.

    ``feedback_document`` gives the comment the most weight; this is the same text flat, for display and logs.
    """
    return "\n".join(part for part in [context.comment, context.question, *context.sql_queries] if part)


def error_messages(context: GenerationContext) -> list[str]:
    """The database errors among the results (rendered as JSON rows), unescaped."""
    messages = []
    for result in context.results:
        try:
            row = json.loads(result)
        except ValueError:
            row = result  # clipped or not JSON: search the text as it is
        texts = [v for v in row.values() if isinstance(v, str)] if isinstance(row, dict) else [str(row)]
        messages.extend(text for text in texts if _ERROR_HINT.search(text))
    return messages


def feedback_objects(context: GenerationContext) -> dict[str, float]:
    """Weighted schema objects of the lesson: those the comment names, and those a database error names."""
    objects = object_weights(context.comment)
    for message in error_messages(context):
        for name, weight in object_weights(message).items():
            # "Wrong!" on a failed query shares the failure with a known lesson, not the lesson itself.
            objects[name] = max(ERROR_OBJECT_SHARE * weight, objects.get(name, 0.0))
    return objects


def feedback_document(context: GenerationContext) -> Document:
    """The feedback prepared for matching: the comment, its question as setting, the lesson's objects. Cached by
    the parts it is made of: a feedback's first decision and its in-batch recheck both prepare it, on different
    threads a moment apart."""
    return _feedback_document(context.comment, context.question, tuple(context.results))


# A few batches of feedback in hand at once (GENERATOR_MAX_IN_FLIGHT + GENERATOR_BATCH_SIZE at most ~2,000).
@lru_cache(maxsize=4096)
def _feedback_document(comment: str, question: str, results: tuple[str, ...]) -> Document:
    context = GenerationContext(question=question, comment=comment, results=list(results))
    return Document.of_parts(comment, [(question, QUESTION_WEIGHT)], objects=feedback_objects(context))


def policy_document(policy: PolicyContent) -> Document:
    """The policy prepared for matching; cached, since the same policies are ranked for every feedback."""
    return _policy_document(policy.rule, policy.correct_mapping or "", policy.missing_knowledge,
                            tuple(policy.examples))


@lru_cache(maxsize=20_000)
def _policy_document(rule: str, mapping: str, missing: str, examples: tuple[str, ...]) -> Document:
    lesson = "\n".join(part for part in [rule, mapping, missing] if part)
    objects = object_weights(lesson)
    for side in mapping.split("->"):
        # Each side of "users -> systems.total_users" names an object, even a plain word like users.
        side = side.strip().lower()
        if _IDENTIFIER.fullmatch(side) and side not in objects:
            objects[side] = 0.8
    return Document.of_parts(lesson, [("\n".join(examples), EXAMPLES_WEIGHT)], objects=objects)


def rank_candidates(context: GenerationContext, policies: Iterable[Policy], k: int = 5) -> list[Candidate]:
    """The ``k`` pending or active policies most similar to the feedback, best first, indexed 0..k-1.

    Scores every policy given; ``PolicyIndex.rank_candidates`` finds the same candidates among the policies it
    knows without scoring each (``candidate_index``).
    """
    probe = feedback_document(context)
    scored = ((similarity_docs(probe, policy_document(policy)), policy)
              for policy in policies if policy.status in COMPARABLE_STATUSES)
    return as_candidates(heapq.nsmallest(k, scored, key=ranking_key))


def ranking_key(pair: tuple[float, Policy]) -> tuple[float, datetime, str]:
    """The order of candidates: best score first; ties go to the older policy (the one earlier duplicates were
    folded into), then to the smaller id."""
    score, policy = pair
    return -score, policy.created_at, policy.policy_id


def as_candidates(best: Iterable[tuple[float, Policy]]) -> list[Candidate]:
    """Scored policies, best first, as the candidates a provider sees: indexed 0..k-1, scores to SCORE_PLACES."""
    return [Candidate(index=index, policy=policy, similarity=round(score, SCORE_PLACES))
            for index, (score, policy) in enumerate(best)]


def find_duplicate(candidates: list[Candidate], threshold: float = DUPLICATE_THRESHOLD) -> Candidate | None:
    """The best candidate when it reaches ``threshold``, else None."""
    if candidates and candidates[0].similarity >= threshold:
        return candidates[0]
    return None
