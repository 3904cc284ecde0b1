"""The offline provider: decides from the feedback itself, with no network and no key.

It reads the comment the way a reviewer would: which identifier the failed query used and which one the comment
names instead, which values or definitions it states, which signals point to a category. Rules built from a
recognized structure (a wrong column, a wrong value) are written in English around the identifiers; otherwise
the rule is the comment's own instructive sentences, in the comment's language, so nothing is invented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policy_generator.context import GenerationContext
from policy_generator.dedup import DUPLICATE_THRESHOLD, find_duplicate
from policy_generator.providers.base import Candidate, DecisionRequest, ProviderDecision, Verdict
from policyloop_common.policy import PolicyCategory, PolicyContent, PolicyPriority
from policyloop_common.text_matching import fold, schema_objects, terms

# How much lower the similarity bar is for a candidate of the category this feedback's lesson belongs to.
SAME_CATEGORY_ALLOWANCE = 0.15

# Results are rendered as JSON, so the quotes around the identifier may arrive escaped.
_MISSING_COLUMN = re.compile(r'column \\?"?([a-z_][a-z0-9_.]*)\\?"? does not exist')
_FROM_TABLE = re.compile(r"\bfrom\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)
_INSTRUCTIVE = re.compile(
    r"\b(use|using|join|filter|count|read|take|reply|answer in|respond|must|should|need to|is stored|is in|"
    r"are in|belongs? to|means?|includes?|correspond|is defined|instead|not\b|no\b|there is no|dung|phai|hay|"
    r"tuong ung|bao gom|nam o|la cot|khong co|thay vi|loc|noi|ghep|tra loi)\b|>=|<=|=")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+")

# Signals per category, on the folded comment; weights reflect how specific a signal is.
_SIGNALS: dict[PolicyCategory, list[tuple[str, float]]] = {
    PolicyCategory.RESPONSE_FORMAT: [
        (r"\b(vietnamese|english|tieng viet|tieng anh|ngon ngu|language)\b", 3),
        (r"\b(reply|respond|answer|tra loi)\b.{0,30}\b(in|bang)\b", 1.5),
        (r"\b(format|dinh dang|round|rounding|lam tron|decimal|thap phan|bullet|markdown|chart|bieu do)\b", 2.5)],
    PolicyCategory.DATA_INTERPRETATION: [
        (r"\b(million|millions|billion|billions|trieu|ty dong|thousand|nghin|percent|phan tram)\b", 2.5),
        (r"\b(units?|don vi|scale|reported it as|misread|interpret|hieu sai|nghia la)\b", 2)],
    PolicyCategory.QUERY_CONSTRUCTION: [
        (r"\b(distinct|khong trung|duplicates?|trung lap|rieng biet)\b", 3),
        (r"\b(rows?|dong du lieu|ban ghi)\b", 1.5),
        (r"\b(filter|loc|where clause|group by|order by|sort|sap xep|limit)\b", 2),
        (r"\bthrough the join\b|\bjoin\b.{0,40}\bfilter\b|\bfilter\b.{0,40}\bjoin\b", 1.5),
        (r"\b(matching|searched|search)\b.{0,30}\bname\b", 1)],
    PolicyCategory.BUSINESS_LOGIC: [
        (r"\bor above\b|\bor more\b|\bat least\b|\btro len\b|\btro xuong\b", 3),
        (r">=|<=", 1),
        (r"\b[a-z_][a-z0-9_.]* (=|is) '[^']+'", 1.5),
        (r"\b(includes?|bao gom|means?|corresponds?|tuong ung|is defined|dinh nghia|counts? as)\b", 2),
        (r"\b(status|trang thai|value|gia tri)\b", 1.5)],
    PolicyCategory.SCHEMA_MAPPING: [
        (r"\b(column|cot|table|bang|schema)\b", 1.5),
        (r"\b(is stored in|is in the|nam o|la cot|has no|khong co cot)\b", 1.5),
        (r"\bjoin\b.{0,60}\b(read|take|lay)\b", 2)],
}

_COMPLAINT_ONLY = frozenset(
    "bad wrong incorrect terrible useless awful poor answer response result not good okay ok sai khong dung "
    "kem te qua toi do sao vay lai nua again fix please hmm no nope error mistake nonsense".split())

_RATIONALES = {
    PolicyCategory.SCHEMA_MAPPING: "Prevents queries against columns or tables that do not exist or hold "
                                   "something else",
    PolicyCategory.BUSINESS_LOGIC: "Prevents answers that apply the wrong meaning of a business term or "
                                   "threshold",
    PolicyCategory.QUERY_CONSTRUCTION: "Prevents queries that run but count, filter or join the wrong rows",
    PolicyCategory.DATA_INTERPRETATION: "Prevents correct query results from being reported with the wrong "
                                        "meaning or unit",
    PolicyCategory.RESPONSE_FORMAT: "Keeps answers in the form users asked for",
    PolicyCategory.OTHER: "Records a correction users made so the assistant does not repeat the mistake",
}


@dataclass(frozen=True)
class CommentReading:
    """What the comment and the failed query say, found once and used by every part of the policy."""

    category: PolicyCategory
    objects: set[str]
    instructive: list[str]
    wrong_identifier: str | None
    right_identifier: str | None
    table: str | None
    value_fix: tuple[str, str, str] | None  # (column, wrong value, right value)


class OfflineProvider:
    """Rule-based decisions from the feedback's own words; needs no network."""

    name = "offline"
    model = "offline-rules-v1"

    def __init__(self, duplicate_threshold: float = DUPLICATE_THRESHOLD) -> None:
        self.duplicate_threshold = duplicate_threshold

    def decide(self, request: DecisionRequest) -> ProviderDecision:
        """Duplicate of a candidate, not actionable, or a new policy written from the comment."""
        context = request.context
        reading = read_comment(context)
        duplicate = self._duplicate(request, reading)
        if duplicate is not None:
            return ProviderDecision(
                verdict=Verdict.DUPLICATE, duplicate_of=duplicate.index,
                reasoning=f"The feedback teaches what policy {duplicate.policy.policy_id} already says "
                          f"(similarity {duplicate.similarity:.2f}): {duplicate.policy.rule}")
        if reading is None:
            return ProviderDecision(
                verdict=Verdict.NOT_ACTIONABLE,
                reasoning="The comment says the answer was wrong but names no column, table, value, rule or "
                          "format to correct, so there is nothing specific to learn.")
        policy = write_policy(context, reading)
        return ProviderDecision(verdict=Verdict.NEW, policy=policy,
                                reasoning=f"New {reading.category.value} lesson: {policy.rule}")


    def _duplicate(self, request: DecisionRequest, reading: CommentReading | None) -> Candidate | None:
        """The candidate this feedback repeats: above the threshold, or a little below it in the same category."""
        duplicate = find_duplicate(request.candidates, self.duplicate_threshold)
        if duplicate is not None or reading is None:
            return duplicate
        for candidate in request.candidates:
            # Agreeing on the kind of lesson is evidence of its own, worth a lower bar on the wording.
            if (candidate.policy.category is reading.category
                    and candidate.similarity >= self.duplicate_threshold - SAME_CATEGORY_ALLOWANCE):
                return candidate
        return None


def read_comment(context: GenerationContext) -> CommentReading | None:
    """Read the lesson out of the comment; None when it teaches nothing."""
    comment = context.comment.strip()
    folded = fold(comment)
    objects = schema_objects(comment)
    sentences = [s.strip() for s in _SENTENCE_SPLIT.split(comment) if s.strip()]
    instructive = [s for s in sentences if not _is_complaint(s, context)]
    scores = _category_scores(folded, context)
    content = [t for t in terms(comment) if t not in _COMPLAINT_ONLY and not t.isdigit()]
    # Whether there is a lesson depends on the comment alone: a failed query says what went wrong, not the fix.
    if not objects and max(_comment_scores(folded).values()) < 1.5 and len(content) < 4:
        return None
    if not instructive:
        if not objects and len(content) < 4:
            return None
        instructive = sentences
    category = max(scores, key=lambda c: (scores[c], -_TIE_ORDER.index(c)))
    if scores[category] < 1.5:
        category = PolicyCategory.OTHER
    wrong = _wrong_identifier(context, folded)
    right = _right_identifier(objects, wrong)
    table = _query_table(context)
    return CommentReading(category=category, objects=objects, instructive=instructive, wrong_identifier=wrong,
                          right_identifier=right, table=table, value_fix=_value_fix(context, comment))


def _is_complaint(sentence: str, context: GenerationContext) -> bool:
    """A sentence that only says the answer was wrong (or restates its numbers) teaches nothing itself."""
    if schema_objects(sentence):
        return False
    folded = fold(sentence)
    shown = " ".join([*context.results, context.answer])
    repeats_result = any(number in shown for number in re.findall(r"\d[\d,.]*\d|\d", folded))
    complains = bool(re.match(r"^(zero is wrong|wrong|incorrect|sai|khong dung|again|that is wrong|"
                              r"you (searched|used|queried|counted)|the query used|it used)\b", folded))
    return complains or (repeats_result and not _INSTRUCTIVE.search(folded))


_TIE_ORDER = [PolicyCategory.SCHEMA_MAPPING, PolicyCategory.BUSINESS_LOGIC, PolicyCategory.QUERY_CONSTRUCTION,
              PolicyCategory.DATA_INTERPRETATION, PolicyCategory.RESPONSE_FORMAT, PolicyCategory.OTHER]


def _comment_scores(folded_comment: str) -> dict[PolicyCategory, float]:
    scores = {category: 0.0 for category in _TIE_ORDER}
    for category, signals in _SIGNALS.items():
        for pattern, weight in signals:
            if re.search(pattern, folded_comment):
                scores[category] += weight
    return scores


def _category_scores(folded_comment: str, context: GenerationContext) -> dict[PolicyCategory, float]:
    scores = _comment_scores(folded_comment)
    if any(_MISSING_COLUMN.search(fold(result)) for result in context.results):
        # The database itself said the column is wrong: the strongest schema signal there is.
        scores[PolicyCategory.SCHEMA_MAPPING] += 4
    if re.search(r"'[^']+'", folded_comment):
        scores[PolicyCategory.BUSINESS_LOGIC] += 1
    return scores


def _wrong_identifier(context: GenerationContext, folded_comment: str) -> str | None:
    for result in context.results:
        match = _MISSING_COLUMN.search(fold(result))
        if match:
            return match.group(1).split(".")[-1]
    patterns = [r"\bthere is no (?:column )?([a-z_][a-z0-9_]*)(?: column)?\b", r"\bno ([a-z_][a-z0-9_]*) column\b",
                r"\b([a-z_][a-z0-9_]*) is not a column\b", r"\bnot ([a-z_][a-z0-9_]*)\b",
                r"\bkhong phai (?:cot )?([a-z_][a-z0-9_]*)\b"]
    sql = fold(" ".join(context.sql_queries))
    for pattern in patterns:
        for match in re.finditer(pattern, folded_comment):
            candidate = match.group(1)
            if re.search(rf"\b{re.escape(candidate)}\b", sql):
                return candidate
    return None


def _right_identifier(objects: set[str], wrong: str | None) -> str | None:
    qualified = sorted(o for o in objects if "." in o and not o.startswith("value:"))
    snake = sorted(o for o in objects if "_" in o and "." not in o and not o.startswith("value:") and o != wrong)
    if len(snake) == 1 and not qualified:
        return snake[0]
    if qualified:
        return qualified[-1]
    return snake[0] if snake else None


def _query_table(context: GenerationContext) -> str | None:
    for query in context.sql_queries:
        match = _FROM_TABLE.search(query)
        if match:
            return match.group(1).lower()
    return None


def _value_fix(context: GenerationContext, comment: str) -> tuple[str, str, str] | None:
    """(column, wrong value, right value) when the query compared a column with a value the comment corrects."""
    comment_values = [v for v in re.findall(r"'([^']{1,40})'", comment)]
    for query in context.sql_queries:
        for column, used in re.findall(r"([a-z_][a-z0-9_.]*)\s*=\s*'([^']{1,40})'", query, re.IGNORECASE):
            if fold(used) not in {fold(v) for v in comment_values}:
                continue
            replacements = [v for v in comment_values
                            if fold(v) != fold(used) and re.fullmatch(r"[a-z0-9_]+", v)
                            and v.lower() not in fold(context.question)]
            if replacements:
                return column.split(".")[-1], used, replacements[0]
    return None


def write_policy(context: GenerationContext, reading: CommentReading) -> PolicyContent:
    """A specific policy from the reading: rule, mapping, missing knowledge, examples, rationale."""
    lesson = " ".join(_tidy(s) for s in reading.instructive)
    rule, mapping, missing = lesson, None, f"The assistant did not know: {lesson}"
    if reading.category is PolicyCategory.SCHEMA_MAPPING and reading.wrong_identifier and reading.right_identifier:
        right = reading.right_identifier
        qualified = right if "." in right or not reading.table else f"{reading.table}.{right}"
        table = reading.table or qualified.split(".")[0]
        value = re.search(rf"\b{re.escape(right.split('.')[-1])}\s*(?:=|is)\s*('[^']+')", context.comment)
        if value:
            # The right column alone is not the lesson when the comment says which value of it to use.
            qualified = f"{qualified} = {value.group(1)}"
        mapping = f"{reading.wrong_identifier} -> {qualified}"
        if "." in right and len([o for o in reading.objects if "." in o]) > 1:
            rule = f"There is no column {reading.wrong_identifier} in {table}. {lesson}"
        else:
            rule = (f"Use the column {qualified} where the question asks for {reading.wrong_identifier}; "
                    f"there is no column {reading.wrong_identifier} in {table}.")
        missing = (f"The assistant queried {reading.wrong_identifier}, which does not exist in {table}; "
                   f"the data is in {qualified}.")
    elif reading.value_fix is not None:
        column, wrong, right = reading.value_fix
        mapping = f"'{wrong}' -> {column} = '{right}'"
        rule = (f"Use {column} = '{right}' for what the question calls '{wrong}'; "
                f"'{wrong}' is not a value of {column}.")
        missing = f"The assistant did not know that '{wrong}' means {column} = '{right}'. {lesson}"
    elif reading.category is PolicyCategory.OTHER:
        missing = f"The user corrected the answer: {lesson}"
    rationale = _RATIONALES[reading.category]
    named = sorted(o for o in reading.objects if not o.startswith("value:"))
    if named:
        rationale += f" ({', '.join(named[:5])})"
    return PolicyContent(
        category=reading.category, priority=_priority(context, reading), rule=_bounded(rule, 2000),
        correct_mapping=_bounded(mapping, 1000) if mapping else None, missing_knowledge=_bounded(missing, 2000),
        examples=[context.question], rationale=rationale + ".")


def _priority(context: GenerationContext, reading: CommentReading) -> PolicyPriority:
    failed = any("error" in result.lower() for result in context.results)
    wrong_number = bool(re.search(r"\d", context.comment)) or bool(
        re.search(r"\b(zero|wrong|incorrect|sai|khong dung|more than the number)\b", fold(context.comment)))
    if failed or (reading.category is not PolicyCategory.RESPONSE_FORMAT and wrong_number):
        return PolicyPriority.HIGH
    if reading.category in (PolicyCategory.RESPONSE_FORMAT, PolicyCategory.OTHER):
        return PolicyPriority.MEDIUM if reading.category is PolicyCategory.RESPONSE_FORMAT else PolicyPriority.LOW
    return PolicyPriority.MEDIUM


def _tidy(sentence: str) -> str:
    sentence = re.sub(r"^(again|also|so|but|please|then)[,\s]+", "", sentence.strip(), flags=re.IGNORECASE)
    sentence = re.sub(r"\byou must\b|\byou should\b", "", sentence, flags=re.IGNORECASE).strip()
    sentence = sentence[0].upper() + sentence[1:] if sentence else sentence
    return sentence if sentence.endswith((".", "!", "?")) else sentence.rstrip(";,") + "."


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
