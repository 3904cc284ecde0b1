"""Varied feedback for the run: the labelled cases as templates, plus generated lessons, each message unique.

The mix sends decisions down every path of the generator: new policies (the first case of each lesson, and a
steady trickle of generated schema lessons), duplicates (later cases of a lesson, paraphrases and translations),
not actionable (comments that teach nothing) and positive feedback.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASE_FILES = (ROOT / "tests" / "data" / "feedback-cases.jsonl", ROOT / "tests" / "data" / "feedback-cases-extra.jsonl")
NOT_ACTIONABLE_PREFIX = "NA"

# Shares of each kind; the rest are the labelled lessons.
POSITIVE_SHARE = 0.15
NOT_ACTIONABLE_SHARE = 0.10
GENERATED_LESSON_SHARE = 0.20
# A generated lesson comes back this many times on average: once new, then duplicates.
GENERATED_REPEATS = 3

_TABLES = ("systems", "agencies", "projects", "servers", "contracts", "incidents", "licenses", "vendors")
_NOUNS = ("budget", "owner", "region", "capacity", "deadline", "uptime", "vendor", "cost", "tier", "score", "email",
          "phone", "address", "license", "version", "priority", "category", "revenue", "rack", "quota", "warranty",
          "sla", "backup", "domain")
_SUFFIXES = ("code", "ref", "amount", "label", "value", "key", "text", "total")
_NOT_ACTIONABLE_EXTRA = ("bad answer", "wrong", "this is useless", "không đúng", "terrible, try again",
                         "Câu trả lời tệ quá")


@dataclass(frozen=True)
class Template:
    """A labelled case: its lesson group and the feedback body."""

    group: str
    body: dict

    @property
    def actionable(self) -> bool:
        """False for the groups that teach nothing."""
        return not self.group.startswith(NOT_ACTIONABLE_PREFIX)


def load_templates(paths: tuple[Path, ...] = CASE_FILES) -> list[Template]:
    """The labelled cases of ``tests/data``."""
    templates = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                case = json.loads(line)
                templates.append(Template(case["group"], case["feedback"]))
    return templates


class FeedbackMix:
    """Deterministic for a seed: ``body(n)`` is the n-th feedback of the run, with a unique message id."""

    def __init__(self, total: int, seed: int) -> None:
        self._rng = random.Random(seed)
        templates = load_templates()
        self._lessons = [t for t in templates if t.actionable]
        self._not_actionable = [t for t in templates if not t.actionable]
        self._generated = max(1, int(total * GENERATED_LESSON_SHARE / GENERATED_REPEATS))
        self._bodies = [self._draw(n) for n in range(total)]

    def __len__(self) -> int:
        return len(self._bodies)

    def body(self, n: int) -> dict:
        """The n-th feedback body."""
        return self._bodies[n]

    def _draw(self, n: int) -> dict:
        roll = self._rng.random()
        if roll < POSITIVE_SHARE:
            body = copy.deepcopy(self._rng.choice(self._lessons).body)
            body.update(rating="positive", comment=None)
        elif roll < POSITIVE_SHARE + NOT_ACTIONABLE_SHARE:
            body = copy.deepcopy(self._rng.choice(self._lessons).body)
            comments = [t.body["comment"] for t in self._not_actionable] + list(_NOT_ACTIONABLE_EXTRA)
            body["comment"] = self._rng.choice(comments)
        elif roll < POSITIVE_SHARE + NOT_ACTIONABLE_SHARE + GENERATED_LESSON_SHARE:
            body = generated_lesson(self._rng.randrange(self._generated))
        else:
            body = copy.deepcopy(self._rng.choice(self._lessons).body)
        body["conversation_id"] = f"chaos-c-{n // 4}"
        body["message_id"] = f"chaos-m-{n}"
        return body


def generated_lesson(index: int) -> dict:
    """A schema-mapping lesson of its own for each ``index``: a column the query used and the one it should."""
    table = _TABLES[index % len(_TABLES)]
    noun = _NOUNS[(index // len(_TABLES)) % len(_NOUNS)]
    suffix = _SUFFIXES[(index // (len(_TABLES) * len(_NOUNS))) % len(_SUFFIXES)]
    wrong, right = f"{noun}", f"{noun}_{suffix}"
    round_ = index // (len(_TABLES) * len(_NOUNS) * len(_SUFFIXES))
    if round_:
        wrong, right = f"{wrong}_{round_}", f"{right}_{round_}"
    return {
        "conversation_id": "",
        "message_id": "",
        "rating": "negative",
        "comment": f"Wrong column name. The {table} table has {right}, there is no {wrong} column.",
        "context": {"question": f"What is the {noun} of each of the {table}?",
                    "sql_queries": [f"SELECT {wrong} FROM {table}"],
                    "results": [{"error": f'column "{wrong}" does not exist'}]},
    }
