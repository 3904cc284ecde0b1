"""Whether two policies may state one lesson: the checks no similarity of wording overrides.

Shared by the generator (a feedback's drafted policy against its candidates) and the store (a policy against the
policies written at the same moment by other generator processes), so both keep apart what the other would.
"""

from __future__ import annotations

import re

from policyloop_common.policy import PolicyContent
from policyloop_common.text_matching import normalize, schema_objects

_IDENT = r"[a-z_][a-z0-9_]*"
_QUALIFIED_OR_PLAIN = rf"{_IDENT}(?:\.{_IDENT})?"


def may_be_one_lesson(mine: PolicyContent, theirs: PolicyContent, similarity: float, *,
                      cross_category_threshold: float) -> bool:
    """Whether ``mine`` may teach what ``theirs`` does, given how alike they read (``similarity``).

    Contradicting mappings never are. Below ``cross_category_threshold``, neither are policies about different
    quoted values, nor policies of another category: the same column often appears in lessons of other kinds.
    """
    if contradicts(mine, theirs):
        return False
    if similarity >= cross_category_threshold:
        return True
    my_values, their_values = lesson_values(mine), lesson_values(theirs)
    if my_values and their_values and not my_values & their_values:
        return False
    return theirs.category is mine.category


def lesson_values(policy: PolicyContent) -> set[str]:
    """The quoted values a policy teaches about: those of its text that its example questions do not contain.

    'operating' in "Active systems have status 'operating'" is the lesson; 'Da Nang' in a rule written for
    "How many systems are in Da Nang?" is only the case it came from.
    """
    text = " ".join(part for part in [policy.rule, policy.correct_mapping, policy.missing_knowledge] if part)
    asked = f" {normalize(' '.join(policy.examples))} "
    values = {name.removeprefix("value:") for name in schema_objects(text) if name.startswith("value:")}
    return {value for value in values if f" {value} " not in asked and not re.fullmatch(r"[\d\s.:-]+", value)}


def mapping_target(mapping: str | None) -> str | None:
    """The right-hand side of a mapping, normalized, without the join it may name."""
    if not mapping or "->" not in mapping:
        return None
    target = re.sub(r"\(join [^)]*\)", "", mapping.split("->", 1)[1])
    return " ".join(target.lower().split()) or None


def mapping_kind(target: str) -> str:
    """What a mapping maps to: a column, a condition, an aggregate, a unit, or something else."""
    if re.fullmatch(_QUALIFIED_OR_PLAIN, target):
        return "column"
    if re.match(r"(count|sum|avg|min|max)\s*\(", target):
        return "aggregate"
    if re.search(r"(>=|<=|<>|!=|=|>|<)", target):
        return "condition"
    if re.search(r"\((million|billion|thousand)\b", target):
        return "unit"
    return "other"


def contradicts(drafted: PolicyContent | None, existing: PolicyContent) -> bool:
    """Whether two mappings cannot be one lesson: different kinds of target, different columns or values.

    "'trial' -> systems.status = 'piloting'" and "'active' -> systems.status = 'operating'" read alike but
    teach different values of one column, and a filter on integrations.platform is not the DISTINCT count of
    integration rows: no similarity of wording makes them one policy.
    """
    if drafted is None:
        return False
    mine, theirs = mapping_target(drafted.correct_mapping), mapping_target(existing.correct_mapping)
    if not mine or not theirs or mine == theirs:
        return False
    my_kind, their_kind = mapping_kind(mine), mapping_kind(theirs)
    if my_kind != their_kind:
        return "other" not in (my_kind, their_kind)
    if my_kind == "column":
        return True
    if my_kind == "condition":
        my_values, their_values = set(re.findall(r"'([^']*)'", mine)), set(re.findall(r"'([^']*)'", theirs))
        return bool(my_values and their_values) and not my_values & their_values
    return False
