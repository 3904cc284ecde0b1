"""Screening untrusted feedback and the policies written from it, so that a feedback cannot steer the assistant.

A policy is text the assistant reads as an instruction. Whoever writes feedback could try to smuggle one in:
"ignore your rules", a link to follow, a credential, a statement to run. Such input is still decided (it may
carry a real lesson), but a policy written from it, or a policy whose own text looks like that, is never
activated without a reviewer: the decision carries the findings and the store keeps the policy pending review.
The patterns are deliberately broad; a false alarm costs one review, a miss costs the assistant's integrity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from policy_generator.context import GenerationContext
from policy_generator.literal_cues import literal_cues
from policyloop_common.policy import PolicyContent
from policyloop_common.text_matching import fold

# Matched against text folded to lower-case ASCII, so Vietnamese is matched with or without its diacritics.
# Lessons are instructions by nature ("from now on use total_users"), so what is matched is the attempt to set
# rules aside or to take another role, not the imperative mood; descriptive reports ("it ignored the filter",
# "trợ lý đã bỏ qua điều kiện") do not match.
_OVERRIDE = re.compile(
    r"\b(ignore|disregard|forget|override|bypass)\b\s+(all|any|every|the|your|previous|prior|above|earlier|these"
    r"|those|my)\b.{0,30}\b(instruction|rule|prompt|polic|guideline|directive|constraint)"
    r"|\b(bo qua|phot lo|khong tuan theo|vo hieu hoa)\s+(moi|tat ca|toan bo|het|cac|nhung)\b.{0,25}"
    r"\b(huong dan|chi dan|chi thi|lenh|quy tac|rang buoc|chinh sach)"
    r"|\b(bo qua|phot lo)\b.{0,25}\b(huong dan|chi dan|chi thi|lenh)\s+(truoc|o tren|he thong|cua ban|goc)"
    r"|system prompt|\bjailbreak|developer mode|\bdan mode|\bact as (an?|the|my)\b|\bpretend (to be|you)"
    r"|\bnew instructions?\s*:|\bprompt injection|\bdong vai\b|\bgia vo la\b|huong dan he thong|loi nhac he thong"
    r"|\b(approve|activate|whitelist)\b.{0,30}\b(this|the|my)\s+(policy|rule)"
    r"|\b(set|mark)\b.{0,30}\b(status|policy|rule)\b.{0,20}\b(active|approved)\b"
    r"|\b(kich hoat|phe duyet|duyet)\b.{0,20}\b(chinh sach|quy tac)\s+(nay|cua toi)",
)
_FENCE = re.compile(r"<\s*/?\s*(feedback|candidates|system|assistant|user|instructions?)\s*>")
_DELIMITER = re.compile(r"<\s*/?\s*(feedback|candidates)\s*>", re.IGNORECASE)
ZERO_WIDTH_SPACE = "\u200b"
_FORGED_OUTPUT = re.compile(r"[\"']?(verdict|duplicate_of)[\"']?\s*[:=]\s*[\"']?(new|duplicate|not_actionable|\d)")
_URL = re.compile(r"\b(https?|ftp|file|javascript|data):|\bwww\.[a-z0-9-]+\.[a-z]{2,}|\b[a-z0-9-]+\.(com|net|org|io"
                  r"|ru|cn|xyz|top|vn)(/|\b)")
_CREDENTIAL = re.compile(
    r"\b(sk|pk|rk)-[a-z0-9_-]{16,}|\bakia[0-9a-z]{16}\b|\bghp_[a-z0-9]{20,}|\bxox[abp]-[a-z0-9-]{10,}"
    r"|-----begin [a-z ]*private key-----|\beyj[a-z0-9_-]{10,}\.[a-z0-9_-]{10,}\."
    r"|\b(password|passwd|pwd|secret|api[_ -]?key|token|mat khau)\b\s*(is|la|[:=])\s*\S{4,}",
)
_STATEMENT = re.compile(
    r"\b(drop|truncate|alter|create|grant|revoke)\s+(table|database|schema|user|role|index|view|all|column)\b"
    r"|\bdelete\s+from\b|\binsert\s+into\b|\bupdate\s+[a-z_][a-z0-9_.]*\s+set\b|\bcopy\s+[a-z_].{0,40}\b(to|from)\b"
    r"|\b(exec|execute)\s*\(|;\s*(drop|delete|update|insert|truncate|alter)\b|\bpg_sleep\s*\(|\bxp_cmdshell\b",
)

INPUT_CHECKS = (("instruction_override", _OVERRIDE), ("prompt_fence", _FENCE), ("forged_output", _FORGED_OUTPUT),
                ("url", _URL), ("credential", _CREDENTIAL), ("data_changing_sql", _STATEMENT))
OUTPUT_CHECKS = (("instruction_override", _OVERRIDE), ("prompt_fence", _FENCE), ("url", _URL),
                 ("credential", _CREDENTIAL), ("data_changing_sql", _STATEMENT))


def input_findings(context: GenerationContext) -> list[str]:
    """What looks like an attempt to steer the model or the assistant, as ``"<check> in <field>"``."""
    fields = {"comment": [context.comment], "question": [context.question], "answer": [context.answer],
              "steps": context.steps, "sql_queries": context.sql_queries, "results": context.results}
    return _findings(INPUT_CHECKS, fields)


def output_findings(content: PolicyContent) -> list[str]:
    """What a policy should never say to the assistant, as ``"<check> in policy.<field>"``."""
    fields = {"policy.rule": [content.rule], "policy.correct_mapping": [content.correct_mapping or ""],
              "policy.missing_knowledge": [content.missing_knowledge], "policy.examples": content.examples,
              "policy.rationale": [content.rationale]}
    return _findings(OUTPUT_CHECKS, fields)


def neutralize_fences(text: str) -> str:
    """Untrusted text with anything shaped like a prompt delimiter defused, whatever its case or spacing."""
    # A zero-width space before ">" keeps the text readable to the model but no longer a delimiter.
    return _DELIMITER.sub(lambda match: match.group(0)[:-1] + ZERO_WIDTH_SPACE + ">", text)


# A pattern runs only where one of its cues is in the text (``literal_cues``; None: it always runs). Measured on
# the benchmark's feedback: ``input_findings`` took 0.37–0.54 ms per feedback running every pattern, 0.06 ms so.
_CUES = {pattern: literal_cues(pattern) for _, pattern in (*INPUT_CHECKS, *OUTPUT_CHECKS)}


def _findings(checks: Iterable[tuple[str, re.Pattern[str]]], fields: dict[str, list[str]]) -> list[str]:
    folded = {field: [fold(text) for text in texts if text] for field, texts in fields.items()}
    everything = "\n".join(text for texts in folded.values() for text in texts)
    cued = [(name, pattern) for name, pattern in checks
            if (cues := _CUES.get(pattern)) is None or any(cue in everything for cue in cues)]
    found: list[str] = []
    for field, texts in folded.items():
        for name, pattern in cued:
            if any(pattern.search(text) for text in texts):
                found.append(f"{name} in {field}")
    return found
