"""The bounded context a provider sees for one feedback: what was asked, done and answered, and what the user said."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from policyloop_common.events import FeedbackSubmitted

# Bounds per part, so one huge answer or result set cannot crowd out the comment or blow the token budget.
MAX_QUESTION_CHARS = 1000
MAX_COMMENT_CHARS = 2000
MAX_ANSWER_CHARS = 1500
MAX_STEPS = 10
MAX_STEP_CHARS = 300
MAX_QUERIES = 5
MAX_QUERY_CHARS = 1500
MAX_RESULTS = 5
MAX_RESULT_CHARS = 400
MAX_RENDERED_CHARS = 8000


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class GenerationContext:
    """The parts of a feedback a decision is made from, each clipped to its bound."""

    question: str
    comment: str
    answer: str = ""
    steps: list[str] = field(default_factory=list)
    sql_queries: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    assistant_model: str | None = None

    def render(self) -> str:
        """The context as labelled text for a prompt, at most MAX_RENDERED_CHARS long."""
        parts = [f"Question: {self.question}", f"User feedback: {self.comment}"]
        if self.answer:
            parts.append(f"Assistant's answer: {self.answer}")
        if self.steps:
            parts.append("Steps taken:\n" + "\n".join(f"- {step}" for step in self.steps))
        if self.sql_queries:
            parts.append("SQL executed:\n" + "\n".join(f"- {query}" for query in self.sql_queries))
        if self.results:
            parts.append("Results:\n" + "\n".join(f"- {result}" for result in self.results))
        return _clip_block("\n\n".join(parts), MAX_RENDERED_CHARS)


def _clip_block(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_context(feedback: FeedbackSubmitted) -> GenerationContext:
    """Extract and bound the context of one feedback."""
    context = feedback.context
    return GenerationContext(
        question=_clip(context.question, MAX_QUESTION_CHARS),
        comment=_clip(feedback.comment or "", MAX_COMMENT_CHARS),
        answer=_clip(context.answer or "", MAX_ANSWER_CHARS),
        steps=[_clip(step, MAX_STEP_CHARS) for step in context.steps[:MAX_STEPS]],
        sql_queries=[_clip(query, MAX_QUERY_CHARS) for query in context.sql_queries[:MAX_QUERIES]],
        results=[_clip(json.dumps(row, ensure_ascii=False, default=str), MAX_RESULT_CHARS)
                 for row in context.results[:MAX_RESULTS]],
        assistant_model=context.model,
    )
