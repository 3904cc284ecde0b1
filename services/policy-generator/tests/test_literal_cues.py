"""A pattern's cues are substrings of every match, so looking for them first never hides a match."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from policy_generator import screening
from policy_generator.literal_cues import literal_cues
from policyloop_common.text_matching import fold

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"


@pytest.mark.parametrize(("pattern", "cues"), [
    (r"abc", {"abc"}),
    (r"\bab(c|d)e\b", {"abce", "abde"}),
    (r"x*yz", {"yz"}),
    (r"https?://", {"http"}),
    (r"[:=]\s*(is|la)", {"is", "la"}),
    (r"\bv[0-9]", {"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"}),
    (r"(ignore|forget)\s+(all|every)\b.{0,30}(instruction|rule)", {"ignore", "forget"}),
    (r"(exec|execute)\s*\(", {"exec", "execute"}),
    (r"\b[a-z]+\.(com|io)(/|\b)", {".com", ".io", ".com/", ".io/"}),
    (r"(sk|pk)-[a-z]{16,}", {"sk-", "pk-"}),
    (r"a|bcd", {"a", "bcd"}),
    (r"a|[0-9]", {"a", *"0123456789"}),
    (r"(?:token)+ is", {"token"}),
])
def test_the_cues_are_read_from_the_pattern(pattern: str, cues: set[str]) -> None:
    assert literal_cues(re.compile(pattern)) == cues


@pytest.mark.parametrize("pattern", [
    r"[^a-z]+",       # a negated set: no literal is known
    r"\w+x?",
    r"a|\d",          # one alternative without a cue
    r"(abc)?",        # may match nothing
    r"ab|",           # an empty alternative
    r"(?i)abc",       # case-insensitive: "ABC" matches without containing "abc"
    r"(?i:abc)",
    r"(.)\1",         # a back-reference: what it matches is not spelled in the pattern
])
def test_no_cues_where_none_is_certain(pattern: str) -> None:
    assert literal_cues(re.compile(pattern)) is None


def test_bytes_patterns_have_no_cues() -> None:
    assert literal_cues(re.compile(rb"abc")) is None


def corpus_texts() -> list[str]:
    """Every text of the injection corpus and of the labelled feedback, folded as screening reads them."""
    texts: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, str):
            texts.append(fold(value))
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for name in ("injection-corpus.jsonl", "feedback-cases.jsonl", "feedback-cases-extra.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                collect(json.loads(line))
    return texts


CHECKS = sorted({(name, pattern.pattern): pattern
                 for name, pattern in (*screening.INPUT_CHECKS, *screening.OUTPUT_CHECKS)}.items())


@pytest.mark.parametrize(("check", "pattern"), CHECKS, ids=[name for (name, _), _ in CHECKS])
def test_every_match_of_a_screening_check_contains_one_of_its_cues(check: tuple[str, str],
                                                                     pattern: re.Pattern[str]) -> None:
    cues = literal_cues(pattern)
    assert cues, "each screening check has cues, or it would run on every text"
    matched = [match.group(0) for text in corpus_texts() for match in pattern.finditer(text)]
    assert matched, "the corpus holds matches of every check"
    assert all(any(cue in text for cue in cues) for text in matched)
