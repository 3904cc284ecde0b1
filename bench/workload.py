"""Synthetic feedback and policies: many distinct lessons on one schema, as a busy assistant would collect them.

Lesson ``i`` is always the same (a pure function of ``i``), so runs compare like with like. Two different lessons
name different columns, so they are different lessons to the generator's matching as well: the benchmarks then
measure distinct decisions, not the fast path folding everything into one policy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from policyloop_common.events import (
    DecisionDetails,
    DecisionKind,
    FeedbackContext,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicySkipped,
    Rating,
    SkipReason,
)
from policyloop_common.policy import GeneratorInfo, Policy, PolicyCategory, PolicyPriority, PolicyStatus

TABLES = ("systems", "agencies", "budgets", "projects", "contracts", "servers", "licenses", "incidents",
          "vendors", "datasets", "trainings", "audits", "devices", "tickets", "invoices", "permits")
# Made-up measure names, three syllables each (27,000 of them): real schemas have that many distinct words, and a
# shared English word between two lessons would make them look alike to the matching for no reason of theirs.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch")
_VOWELS = ("a", "e", "i", "o")
_SYLLABLES = tuple(onset + vowel for onset in _ONSETS for vowel in _VOWELS)[:30]


def made_up_word(index: int) -> str:
    """A pronounceable word unique to ``index`` (for 0 <= index < 27,000)."""
    count = len(_SYLLABLES)
    return (_SYLLABLES[index % count] + _SYLLABLES[(index // count) % count]
            + _SYLLABLES[(index // count ** 2) % count] + "n")


TEMPLATES = (
    "Wrong column: {table} has {column}, not {wrong}",
    "The {concept} is stored in {table}.{column}; there is no column {wrong}",
    "Use {table}.{column} for the {concept}, the query read {wrong} which does not exist",
    "{wrong} is not a column of {table}; the {concept} is {column}",
)


@dataclass(frozen=True)
class Lesson:
    """One thing the assistant got wrong: it read ``wrong`` where ``table.column`` holds ``concept``."""

    index: int
    table: str
    column: str
    wrong: str
    concept: str
    threshold: int

    @classmethod
    def number(cls, index: int) -> Lesson:
        """Lesson ``index``; no two lessons name the same measure or column."""
        # A stride coprime with 27,000 spreads consecutive lessons over the word space.
        word = made_up_word((index * 7919) % 27_000)
        return cls(index=index, table=TABLES[index % len(TABLES)], column=f"{word}_total", wrong=word,
                   concept=f"{word} total", threshold=100 + (index * 37) % 900)

    @property
    def comment(self) -> str:
        """What the user wrote."""
        return TEMPLATES[self.index % len(TEMPLATES)].format(table=self.table, column=self.column,
                                                           wrong=self.wrong, concept=self.concept)

    @property
    def question(self) -> str:
        """What the user had asked."""
        return f"How many {self.table} have a {self.concept} above {self.threshold}?"

    @property
    def sql(self) -> str:
        """What the assistant ran."""
        return f"SELECT count(*) FROM {self.table} WHERE {self.wrong} > {self.threshold}"

    @property
    def rule(self) -> str:
        """The rule a model writes for this lesson."""
        return f"Use the column {self.table}.{self.column} for the {self.concept}; there is no column {self.wrong}."


def feedback_body(lesson: Lesson, message_id: str = "m-1") -> dict:
    """The JSON body of ``POST /v1/feedback`` for ``lesson``."""
    return {
        "conversation_id": f"c-{lesson.index}",
        "message_id": message_id,
        "rating": "negative",
        "comment": lesson.comment,
        "context": {
            "question": lesson.question,
            "answer": f"There are {lesson.threshold % 17 + 3} {lesson.table}.",
            "steps": ["list tables", f"inspect columns of {lesson.table}", "run query"],
            "sql_queries": [lesson.sql],
            "results": [{"error": f'column "{lesson.wrong}" does not exist'}],
            "model": "gpt-4o-mini",
        },
    }


def feedback_event(lesson: Lesson, *, feedback_id: str | None = None, user_id: str = "bench-user",
                   submitted_at: datetime | None = None) -> FeedbackSubmitted:
    """The FeedbackSubmitted event feedback-api would publish for ``lesson``."""
    body = feedback_body(lesson)
    return FeedbackSubmitted(feedback_id=feedback_id or str(uuid.uuid4()), user_id=user_id,
                             conversation_id=body["conversation_id"], message_id=body["message_id"],
                             rating=Rating.NEGATIVE, comment=body["comment"],
                             context=FeedbackContext(**body["context"]),
                             submitted_at=submitted_at or datetime.now(UTC))


def policy_for(lesson: Lesson, *, feedback_id: str, policy_id: str | None = None,
               status: PolicyStatus = PolicyStatus.ACTIVE) -> Policy:
    """The policy a model drafts from ``lesson``."""
    now = datetime.now(UTC)
    return Policy(
        policy_id=policy_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-policy-{feedback_id}")), version=1,
        status=status, category=PolicyCategory.SCHEMA_MAPPING,
        priority=(PolicyPriority.HIGH, PolicyPriority.MEDIUM, PolicyPriority.LOW)[lesson.index % 3],
        rule=lesson.rule, correct_mapping=f"{lesson.wrong} -> {lesson.table}.{lesson.column}",
        missing_knowledge=f"The assistant did not know the {lesson.concept} is {lesson.table}.{lesson.column}.",
        examples=[lesson.question, f"List the {lesson.table} by {lesson.concept}"],
        rationale="Prevents queries against a column that does not exist.",
        source_feedback_ids=[feedback_id], support_count=1, created_at=now, updated_at=now,
        generator=GeneratorInfo(provider="openai", model="gpt-4o-mini"),
    )


def _details(kind: DecisionKind, explanation: str) -> DecisionDetails:
    return DecisionDetails(kind=kind, provider="openai", model="gpt-4o-mini", explanation=explanation,
                           llm_calls=1)


def decision_events(count: int) -> list[tuple[FeedbackSubmitted, PolicyGenerated | PolicySkipped]]:
    """``count`` feedbacks with their decisions, in the mix a running system sees.

    Of every ten: six teach something new, three repeat an earlier lesson (a duplicate, folded in as evidence),
    one has nothing to act on.
    """
    pairs: list[tuple[FeedbackSubmitted, PolicyGenerated | PolicySkipped]] = []
    created: list[str] = []
    for number in range(count):
        lesson = Lesson.number(number)
        feedback = feedback_event(lesson)
        slot = number % 10
        decision: PolicyGenerated | PolicySkipped
        if slot < 6 or not created:
            policy = policy_for(lesson, feedback_id=feedback.feedback_id)
            created.append(policy.policy_id)
            decision = PolicyGenerated(feedback_id=feedback.feedback_id, policy=policy,
                                       decision=_details(DecisionKind.NEW, "a lesson no policy states yet"))
        elif slot < 9:
            original = created[(number * 7) % len(created)]
            decision = PolicySkipped(feedback_id=feedback.feedback_id, reason=SkipReason.DUPLICATE_POLICY,
                                     duplicate_of=original, explanation=f"Already covered by policy {original}",
                                     decision=_details(DecisionKind.DUPLICATE, "same lesson"))
        else:
            decision = PolicySkipped(feedback_id=feedback.feedback_id, reason=SkipReason.NOT_ACTIONABLE,
                                     explanation="nothing concrete to correct",
                                     decision=_details(DecisionKind.NOT_ACTIONABLE, "nothing concrete"))
        pairs.append((feedback, decision))
    return pairs


VAGUE_COMMENT = "This answer is wrong, please fix it."


def mixed_feedback(number: int, *, known: int) -> tuple[dict, str]:
    """Feedback ``number`` of a steady stream, and what it is: of every ten, five repeat one of the ``known``
    lessons almost word for word ("repeat"), four teach a new lesson ("new"), one names nothing ("vague")."""
    slot = number % 10
    if slot < 5:
        lesson = Lesson.number((number * 7_919) % known)
        body = feedback_body(lesson, message_id=f"m-{number}")
        body["comment"] = f"Again: {lesson.comment}"
        return body, "repeat"
    if slot < 9:
        return feedback_body(Lesson.number(known + number), message_id=f"m-{number}"), "new"
    body = feedback_body(Lesson.number(known + number), message_id=f"m-{number}")
    body["comment"] = VAGUE_COMMENT
    return body, "vague"
