"""The relevant policies as a block of text for the assistant's prompt.

The block is a heading and one numbered entry per policy, most valuable first (the ranking's order: relevance with
priority and support folded in), never longer than the caller's budget. Policies enter whole: an entry is the
rule with its mapping and one example; when that does not fit in what is left, the rule alone; when not even the
rule fits, the policy is left out and the next one is tried. A rule is never cut.

The question's language decides the heading and labels: Vietnamese when the question is written in Vietnamese
(told by its diacritics), English otherwise. Rules are shown as they were written; of a policy's examples, the
first one in the question's language is shown, or else its first example.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyloop_common.policy import PolicyCategory, PolicyPriority

# Letters only Vietnamese writes, once tone marks are set apart: đ, ă, â, ê, ô, ơ, ư.
_VIETNAMESE_LETTERS = frozenset("đăâêôơư")
# Tone marks: grave, acute, tilde, hook above, dot below (the last two are Vietnamese only).
_TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")
# A question is Vietnamese when at least this share of its words carry Vietnamese letters or tone marks; an
# English question naming a place ("systems in Đà Nẵng") stays English.
VIETNAMESE_WORD_SHARE = 0.5
_WORD = re.compile(r"[^\W\d_]+")


def question_language(text: str) -> str:
    """``"vi"`` for a question written in Vietnamese, ``"en"`` otherwise."""
    words = _WORD.findall(unicodedata.normalize("NFC", text).lower())
    if not words:
        return "en"
    marked = sum(1 for word in words if _is_vietnamese(word))
    return "vi" if marked / len(words) >= VIETNAMESE_WORD_SHARE else "en"


def _is_vietnamese(word: str) -> bool:
    decomposed = unicodedata.normalize("NFD", word)
    return any(char in _VIETNAMESE_LETTERS for char in word) or any(char in _TONE_MARKS for char in decomposed)


@dataclass(frozen=True)
class Labels:
    """The words of the block in one language."""

    heading: str
    mapping: str
    example: str
    categories: Mapping[str, str]
    priorities: Mapping[str, str]


LABELS = {
    "en": Labels(
        heading="Rules learned from feedback on earlier answers; apply those that fit this question:",
        mapping="Mapping", example="Example",
        categories={PolicyCategory.SCHEMA_MAPPING: "schema mapping", PolicyCategory.BUSINESS_LOGIC: "business logic",
                    PolicyCategory.QUERY_CONSTRUCTION: "query construction",
                    PolicyCategory.DATA_INTERPRETATION: "data interpretation",
                    PolicyCategory.RESPONSE_FORMAT: "response format", PolicyCategory.OTHER: "other"},
        priorities={PolicyPriority.HIGH: "high priority", PolicyPriority.MEDIUM: "medium priority",
                    PolicyPriority.LOW: "low priority"}),
    "vi": Labels(
        heading="Các quy tắc rút ra từ phản hồi về những câu trả lời trước; hãy áp dụng các quy tắc phù hợp với "
                "câu hỏi này:",
        mapping="Ánh xạ", example="Ví dụ",
        categories={PolicyCategory.SCHEMA_MAPPING: "ánh xạ lược đồ", PolicyCategory.BUSINESS_LOGIC: "quy tắc nghiệp vụ",
                    PolicyCategory.QUERY_CONSTRUCTION: "cách viết truy vấn",
                    PolicyCategory.DATA_INTERPRETATION: "diễn giải dữ liệu",
                    PolicyCategory.RESPONSE_FORMAT: "cách trình bày câu trả lời", PolicyCategory.OTHER: "khác"},
        priorities={PolicyPriority.HIGH: "ưu tiên cao", PolicyPriority.MEDIUM: "ưu tiên trung bình",
                    PolicyPriority.LOW: "ưu tiên thấp"}),
}


def preferred_example(examples: Sequence[str], language: str) -> str | None:
    """The first example in ``language``, or the first example, or None."""
    for example in examples:
        if question_language(example) == language:
            return example
    return examples[0] if examples else None


def _entries(number: int, policy: Mapping[str, Any], labels: Labels, language: str) -> tuple[str, str]:
    """The full entry of a policy (rule, mapping, example) and the short one (the rule alone)."""
    category = labels.categories.get(policy["category"], policy["category"])
    priority = labels.priorities.get(policy["priority"], policy["priority"])
    short = f"{number}. [{category}, {priority}] {' '.join(policy['rule'].split())}"
    lines = [short]
    if policy.get("correct_mapping"):
        lines.append(f"   {labels.mapping}: {' '.join(policy['correct_mapping'].split())}")
    example = preferred_example(policy.get("examples") or [], language)
    if example:
        lines.append(f"   {labels.example}: {' '.join(example.split())}")
    return "\n".join(lines), short


def prompt_block(question: str, policies: Sequence[Mapping[str, Any]], max_chars: int) -> str:
    """The block for ``policies`` (contract documents, most valuable first) within ``max_chars`` characters;
    empty when no policy is given or none fits."""
    language = question_language(question)
    labels = LABELS[language]
    lines = [labels.heading]
    used = len(labels.heading) + 1  # every line ends with a newline
    for policy in policies:
        for entry in _entries(len(lines), policy, labels, language):
            if used + len(entry) + 1 <= max_chars:
                lines.append(entry)
                used += len(entry) + 1
                break
    if len(lines) == 1:
        return ""
    return "\n".join(lines) + "\n"
