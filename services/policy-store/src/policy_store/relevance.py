"""Ranking active policies for a question: text similarity, with small boosts for priority and support."""

from __future__ import annotations

import math

from policy_store.models import PolicyRecord
from policyloop_common.policy import PolicyPriority
from policyloop_common.text_matching import Document, similarity_docs

PRIORITY_BOOST = {PolicyPriority.HIGH.value: 0.06, PolicyPriority.MEDIUM.value: 0.03, PolicyPriority.LOW.value: 0.0}


def policy_search_text(record: PolicyRecord) -> str:
    """What a question is matched against: the rule, its mapping and the example questions."""
    return " ".join([record.rule, record.correct_mapping or "", *record.examples])


def relevance(question: Document, record: PolicyRecord) -> float:
    """Score in [0, 1]; boosts only reorder policies that the text already matches."""
    text_score = similarity_docs(question, Document.of(policy_search_text(record)))
    if text_score <= 0:
        return 0.0
    support = min(0.05, 0.02 * math.log1p(max(0, record.support_count - 1)))
    return round(min(1.0, text_score + PRIORITY_BOOST.get(record.priority, 0.0) * text_score + support), 4)
