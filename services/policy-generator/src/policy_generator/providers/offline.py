"""The offline provider: decides from the feedback itself, with no network and no key.

It reads a comment as a reviewer would, together with the query that was run and the error it raised: which
identifier the query used that does not exist (or was the wrong choice), which one the comment names instead,
which value, bound, filter, join, DISTINCT key, unit or answer language it states. When it finds such a
structure it writes the rule from it, in English around the identifiers and values, so the English and the
Vietnamese telling of one lesson give the same rule and the same mapping. Otherwise the rule is the comment's
own instructive sentences, in the comment's language (Vietnamese stays Vietnamese), so nothing is invented.
A comment that names nothing to correct is not actionable.

Similarity decides which candidates may be the same lesson; structure decides whether they are. A candidate at
the duplicate threshold is a duplicate unless the policy this feedback yields contradicts it (another mapping
target, other values, another kind of lesson). Below the threshold a candidate is still a duplicate when it
maps to the same target, when the drafted rule nearly restates it, or when it teaches the same kind of lesson
and comes close to the threshold.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from policy_generator.context import GenerationContext
from policy_generator.dedup import DUPLICATE_THRESHOLD, error_messages, find_duplicate, policy_document
from policy_generator.providers.base import Candidate, DecisionRequest, ProviderDecision, Verdict
from policyloop_common.lessons import mapping_target, may_be_one_lesson
from policyloop_common.policy import PolicyCategory, PolicyContent, PolicyPriority
from policyloop_common.text_matching import (
    DOMAIN_TERMS,
    fold,
    normalize,
    schema_objects,
    similarity_docs,
    terms,
)

_IDENT = r"[a-z_][a-z0-9_]*"
_QUALIFIED_OR_PLAIN = rf"{_IDENT}(?:\.{_IDENT})?"
# An identifier in running text; a dot ends it unless a word character follows ("read agencies.name.").
_IDENTIFIER_IN_TEXT = re.compile(rf"(?<![\w.'])({_QUALIFIED_OR_PLAIN})(?!\w|\.\w)")
_MISSING_IDENTIFIER = [
    re.compile(rf'(?:column|relation|table)\s+"?({_QUALIFIED_OR_PLAIN})"?\s+does not exist'),
    re.compile(rf"unknown column '({_QUALIFIED_OR_PLAIN})'"),
    re.compile(rf"no such (?:column|table):\s*({_QUALIFIED_OR_PLAIN})"),
]
# Where a comment rejects an identifier; the candidate counts only if the failed SQL used it.
_REJECTED_IDENTIFIER = [
    re.compile(rf"\bthere is no (?:column |table |field )?[`\"']?({_IDENT})[`\"']?"),
    re.compile(rf"\bno ({_IDENT}) (?:column|table|field)\b"),
    re.compile(rf"\b(?:the )?({_IDENT}) (?:column |table )?"
               r"(?:is not a (?:column|table|field)|isn't a (?:column|table)|does not exist|doesn't exist)"),
    re.compile(rf"\b(?:not|instead of|rather than) (?:the )?(?:column )?[`\"']?({_IDENT})\b"),
    re.compile(rf"\b(?:khong phai|thay vi|khong co cot|khong co bang) (?:la )?(?:cot )?[`\"']?({_IDENT})\b"),
]
_SQL_CONDITION = re.compile(
    rf"({_QUALIFIED_OR_PLAIN})\s*(>=|<=|<>|!=|=|>|<|\bis\b|\bla\b)\s*('[^']{{1,60}}'|-?\d+(?:\.\d+)?)")
_SQL_FROM = re.compile(rf"\b(?:from|join)\s+({_IDENT})(?:\s+(?:as\s+)?({_IDENT}))?", re.IGNORECASE)
_JOIN_CONDITION = re.compile(
    rf"({_IDENT}\.{_IDENT})\s*(?:=|\bto\b|\bwith\b|\bvoi\b)\s*({_IDENT}\.{_IDENT})")
_READ_VERBS = "read|take|get|select|return|show|give|output|display|use|lay|doc|dung|tra ve|hien thi"
_DISTINCT_KEY = re.compile(rf"\bdistinct\s*\(?\s*({_QUALIFIED_OR_PLAIN})")
_AGGREGATED = re.compile(
    rf"\b(?:sum|avg|min|max)\s*\(\s*(?:distinct\s+)?(?:{_IDENT}\.)?({_IDENT})\s*\)", re.IGNORECASE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_SQL_WORDS = frozenset(
    "select from where and or not in is null like ilike join on as by group order limit count sum avg min "
    "max distinct desc asc having between true false case when then else end".split())

# Cues that a sentence instructs or defines rather than complains (folded text).
_INSTRUCTION = re.compile(
    r"\b(use|using|join|filter|count|read|take|reply|respond|answer in|must|should|need to|needs to|"
    r"is stored|stored in|is in|are in|belongs? to|means?|includes?|excludes?|corresponds?|is defined|"
    r"defined as|refers? to|instead|only|always|never|round|format|group|sort|convert|report|give|show|"
    r"present|display|write|list|multiply|divide|dung|su dung|phai|hay|can|nen|trinh bay|hien thi|nhan|"
    r"chia|tuong ung|bao gom|nam o|la cot|thay vi|loc|noi|ghep|lay|tra loi|chi|luon|khong tinh|"
    r"nghia la)\b|>=|<=|=")
_COMPLAINT_START = re.compile(
    r"^(zero is wrong|wrong|incorrect|not correct|that is wrong|this is wrong|it is wrong|sai|khong dung|"
    r"again|you (searched|used|queried|counted|reported|answered|returned|gave)|the (query|answer|sql) "
    r"(used|says|said|searched|counted|returned|reported|is wrong)|it used|toi hoi)\b")
_DEFINITION = re.compile(r"\b(is|are|means?|la|nghia la|tuc la)\b")
# Terms that only say the answer was bad: no lesson in them.
_COMPLAINT_TERMS = frozenset(
    "bad wrong correct terrible useless awful poor answer result good okay ok fix again error mistake "
    "nonsense garbage sense totally completely really check careful try redo accurate inaccurate "
    "disappointing disappointed unhappy happy satisfied help helpful unhelpful right true false seem look "
    "off weird strange broken work slow fast sai te kem lam lai di sao vay chinh xac hai long vo ly linh "
    "tinh tam bay ket qua khong chang ca the that su hoan toan kiem tra expect expected think know like "
    "love hate quality bug".split())
# Terms too general to be a lesson's subject on their own.
_GENERIC_TERMS = frozenset("system query column table row count value data question answer user name sql "
                           "number total result use need must".split())

_SCHEMA = PolicyCategory.SCHEMA_MAPPING
_LOGIC = PolicyCategory.BUSINESS_LOGIC
_QUERY = PolicyCategory.QUERY_CONSTRUCTION
_UNITS = PolicyCategory.DATA_INTERPRETATION
_FORMAT = PolicyCategory.RESPONSE_FORMAT
# (category, pattern on the folded comment, weight): how strongly a phrase points to a kind of lesson.
_SIGNALS: list[tuple[PolicyCategory, re.Pattern[str], float]] = [
    (_SCHEMA, re.compile(r"\b(columns?|cot|fields?|tables?|bang|schema|relation)\b"), 1.0),
    (_SCHEMA, re.compile(
        r"\b(is stored in|are stored in|stored in|lives in|is kept in|comes from|nam o|nam trong|luu o|"
        r"luu trong|lay tu|is in the \w+ (table|column)|is in column|has the column|table has)\b"), 2.0),
    (_SCHEMA, re.compile(
        r"\bthere is no (column|table)\b|\bno (\w+ ){1,3}(column|table)\b|\bis not a column\b|"
        r"\bkhong co (cot|bang)\b|\bkhong phai (la )?cot\b"), 1.0),
    (_SCHEMA, re.compile(r"\bjoin\b.{0,80}\b(read|take|get|select|lay|doc)\b"), 1.5),
    (_SCHEMA, re.compile(rf"\b(read|take|get|lay|doc)\s+(the )?(column )?{_IDENT}\.{_IDENT}"), 1.5),
    (_LOGIC, re.compile(
        r"\b(or above|or more|or higher|and above|at least|or below|or less|at most|tro len|tro xuong|"
        r"toi thieu|inclusive|includes? (level|the bound|it)|bao gom)\b"), 2.5),
    (_LOGIC, re.compile(
        r"\b(means?|meaning|refers? to|is defined as|defined as|definition|counts? as|is considered|"
        r"are considered|corresponds?|corresponding|tuong ung|nghia la|tuc la|duoc hieu la|dinh nghia|"
        r"chi nhung)\b"), 2.5),
    (_LOGIC, re.compile(
        rf"\b{_QUALIFIED_OR_PLAIN}\s*(=|\bis\b|\bla\b)\s*'[^']+'|\b(status|trang thai) '[^']+'"), 2.5),
    (_LOGIC, re.compile(r"\b(status|statuses|trang thai|value|values|gia tri)\b"), 1.0),
    (_LOGIC, re.compile(r"\b(is|are) the [\w ]{1,30} (for|of)\b|\bla \w+ (cua|cho)\b"), 1.0),
    (_LOGIC, re.compile(
        r"\b(are|is) (the )?(ones|those|an? \w+|\w+) (with|whose|where|having)\b|"
        r"\b(la|la nhung) \w+ (co|voi)\b"), 2.0),
    (_LOGIC, re.compile(
        r"\bthere is no (status|value)\b|\bkhong co gia tri\b|\bis not a (valid )?value\b|"
        r"\bgia tri dung\b"), 2.0),
    (_QUERY, re.compile(
        r"\b(distinct|khong trung|rieng biet|duplicates?|duplicated|trung lap|counted (twice|more than once)|"
        r"several \w* ?rows|multiple \w* ?rows|many \w* ?rows|nhieu dong)\b"), 3.0),
    (_QUERY, re.compile(r"\b(filter|filters|filtering|loc|where clause|condition|dieu kien)\b"), 2.0),
    (_QUERY, re.compile(
        r"\b(group by|grouping|gom nhom|nhom theo|order by|sort|sap xep|limit|top \d+)\b"), 2.0),
    (_QUERY, re.compile(
        rf"\b(join|joins|joined|noi bang|ket hop bang|ghep bang)\b|\bnoi (bang |voi )?{_IDENT}\.?"), 1.0),
    (_QUERY, re.compile(
        r"\bthrough the join\b|\bjoin\b.{0,60}\bfilter\b|\bfilter\b.{0,60}\bjoin\b|\bnoi\b.{0,60}\bloc\b|"
        r"\bloc\b.{0,60}\bnoi\b"), 1.5),
    (_QUERY, re.compile(
        r"\b(exclude|excluding|include only|only count|loai tru|khong tinh|chi tinh|chi dem|is null|"
        r"null)\b"), 2.0),
    (_QUERY, re.compile(r"'\d{4}-\d{2}-\d{2}'|\b(between|date range|khoang thoi gian)\b"), 1.5),
    (_QUERY, re.compile(r"\b(count|sum|avg|max|min)\s*\("), 1.5),
    (_QUERY, re.compile(
        r"\b(matching|matched|searched|search|like|ilike|tim theo)\b.{0,40}\b(name|ten)\b|"
        r"\b(name|ten)\b.{0,40}\b(matching|search)\b"), 1.5),
    # A unit mentioned is context; a unit stated ("is in millions", "tính bằng triệu") is the lesson.
    (_UNITS, re.compile(r"\b(millions?|billions?|thousands?|trieu|ty|ti|nghin)\b(?! le)"), 1.5),
    (_UNITS, re.compile(r"\d\s*%|\b(percent|percentage|phan tram)\b"), 2.0),
    (_UNITS, re.compile(r"\b(units?|don vi( tinh)?|scale|vnd|dong|usd)\b"), 1.0),
    (_UNITS, re.compile(
        r"\b(reported (it )?as|read (it )?as|interpret\w*|misread|hieu sai|hieu la|should be read)\b"), 2.0),
    (_UNITS, re.compile(r"\d (means|is|la) \d|\b(means|la|tuc la|nghia la) \d"), 2.0),
    (_UNITS, re.compile(
        r"\b(is|are|come|comes|stored) (in )?(millions|billions|thousands)\b|"
        r"\bin (millions|billions|thousands) of\b|"
        r"\btinh bang (trieu|ty|nghin)\b|\bdon vi (tinh )?(cua [\w.]+ )?la\b"), 2.5),
    (_UNITS, re.compile(r"\b(ratio|rate|ty le|share|proportion)\b"), 1.0),
    (_FORMAT, re.compile(r"\b(vietnamese|english|tieng viet|tieng anh|ngon ngu|language)\b"), 3.0),
    (_FORMAT, re.compile(r"\b(reply|respond|answer|write|tra loi|viet)\b.{0,25}\b(in|bang)\b"), 1.0),
    (_FORMAT, re.compile(
        r"\b(format|formatted|dinh dang|round|rounded|rounding|lam tron|decimals?|decimal places?|"
        r"thap phan|bullet\w*|markdown|chart|bieu do|gach dau dong|alphabetical|thu tu chu cai|"
        r"comma\W?separated|numbered|per line|one \w+ per line|moi \w+ mot dong|tung dong|"
        r"dang bang)\b"), 2.5),
    (_FORMAT, re.compile(
        r"\b(thousands? separators?|separators?|dau phan cach|phan cach hang nghin|digit grouping)\b"), 3.0),
    (_FORMAT, re.compile(
        r"\b(list|liet ke|show|hien thi|display)\b.{0,40}\b(names?|ten|each|all|every)\b"), 1.5),
    (_FORMAT, re.compile(
        r"\b(too long|too short|concise|ngan gon|brief|verbose|dai dong|"
        r"just (give )?the (number|figure|count)|only the (number|figure|count)|chi can (con )?so|"
        r"just give the)\b"), 2.5),
]
# Equal scores go to the kind of lesson that is more specific about the database.
# A comment whose signals of a kind other than schema reach this teaches that kind, not a column swap the
# database's error alone suggests.
OTHER_LESSON_SCORE = 2.0
_PRECEDENCE = [_SCHEMA, _LOGIC, _QUERY, _UNITS, _FORMAT, PolicyCategory.OTHER]
MINIMUM_CATEGORY_SCORE = 1.5

_RATIONALE = {
    _SCHEMA: "Prevents queries against columns or tables that do not exist or hold something else",
    _LOGIC: "Prevents answers built on the wrong meaning of a term, value or threshold",
    _QUERY: "Prevents queries that run but filter, join, group or count the wrong rows",
    _UNITS: "Prevents correct results from being reported with the wrong unit or meaning",
    _FORMAT: "Keeps answers in the form users asked for",
    PolicyCategory.OTHER: "Keeps a correction users made so the assistant does not repeat the mistake",
}
_LANGUAGES = {"vietnamese": "Vietnamese", "tieng viet": "Vietnamese", "english": "English",
              "tieng anh": "English"}
_SCALES = {"million": "million", "millions": "million", "trieu": "million", "billion": "billion",
           "billions": "billion", "ty": "billion", "ti": "billion", "thousand": "thousand",
           "thousands": "thousand", "nghin": "thousand"}
_FOLLOWS_QUESTION = re.compile(
    r"\b(same language|language of the (question|user)|ngon ngu cua (cau hoi|nguoi dung)|cung ngon ngu|"
    r"when the user writes|when (the question|asked) (is )?in|question was in|hoi bang)\b")

# Two drafted rules are compared like for like (both written from the structure of a feedback), so they must
# agree more than a comment and a rule do before they count as one lesson.
DRAFT_DUPLICATE_THRESHOLD = 0.6
# Agreeing on the kind of lesson is evidence of its own: in the evaluation, two paraphrases of one formatting
# lesson (English and Vietnamese) scored 0.37 and 0.40 against each other's policy, just under the threshold.
SAME_CATEGORY_ALLOWANCE = 0.10
# Close repeats are one lesson whatever category each got. It sits below the fast path (0.90) because it is
# applied only to candidates that do not contradict the drafted policy.
CROSS_CATEGORY_THRESHOLD = 0.75


@dataclass(frozen=True)
class ValueFix:
    """The query compared a column with a value the column does not have; the comment gives the right one."""

    column: str
    wrong: str
    right: str


@dataclass(frozen=True)
class BoundFix:
    """The query used the wrong comparison for a bound: ``security_level > 3`` where ``>= 3`` was meant."""

    column: str
    wrong_operator: str
    right_operator: str
    bound: str


@dataclass(frozen=True)
class Reading:
    """What a comment teaches, read together with the query that was run and the error it raised."""

    category: PolicyCategory
    sentences: list[str]
    objects: list[str]
    table: str | None
    wrong: str | None
    wrong_missing: bool
    right: str | None
    right_condition: str | None
    join_condition: str | None
    value_fix: ValueFix | None
    bound_fix: BoundFix | None
    query_failed: bool


class OfflineProvider:
    """Rule-based decisions from the feedback's own words; no network, no key, no model call."""

    name = "offline"
    model = "offline-rules-v1"

    def __init__(self, duplicate_threshold: float = DUPLICATE_THRESHOLD) -> None:
        self.duplicate_threshold = duplicate_threshold

    def decide(self, request: DecisionRequest) -> ProviderDecision:
        """Duplicate of a candidate, not actionable, or a new policy written from the feedback."""
        reading = read_comment(request.context)
        policy = write_policy(request.context, reading) if reading is not None else None
        duplicate = find_duplicate(request.candidates, self.duplicate_threshold)
        if duplicate is not None and compatible(policy, duplicate):
            return _duplicate_decision(duplicate, f"similarity {duplicate.similarity:.2f}")
        if reading is None or policy is None:
            return ProviderDecision(
                verdict=Verdict.NOT_ACTIONABLE,
                reasoning="The comment says the answer was wrong but names no column, table, value, rule or "
                          "format to correct, so there is nothing specific to learn.")
        same = self._same_lesson(policy, request.candidates)
        if same is not None:
            return _duplicate_decision(same, "the policy this feedback yields states the same lesson")
        return ProviderDecision(verdict=Verdict.NEW, policy=policy,
                                reasoning=f"New {reading.category.value} lesson: {policy.rule}")

    def _same_lesson(self, policy: PolicyContent, candidates: list[Candidate]) -> Candidate | None:
        """A candidate that teaches what the drafted policy would: same target, same rule, same kind."""
        drafted = policy_document(policy)
        for candidate in candidates:
            if not compatible(policy, candidate):
                continue
            if candidate.similarity >= self.duplicate_threshold:
                return candidate
            target = mapping_target(policy.correct_mapping)
            if target and target == mapping_target(candidate.policy.correct_mapping):
                return candidate
            if similarity_docs(drafted, policy_document(candidate.policy)) >= DRAFT_DUPLICATE_THRESHOLD:
                return candidate
            if (candidate.policy.category is policy.category
                    and candidate.similarity >= self.duplicate_threshold - SAME_CATEGORY_ALLOWANCE):
                return candidate
        return None


def _duplicate_decision(candidate: Candidate, why: str) -> ProviderDecision:
    policy = candidate.policy
    reasoning = f"Policy {policy.policy_id} already teaches this ({why}): {policy.rule}"
    return ProviderDecision(verdict=Verdict.DUPLICATE, duplicate_of=candidate.index, reasoning=reasoning)


def compatible(drafted: PolicyContent | None, candidate: Candidate) -> bool:
    """Whether the policy this feedback yields may be the candidate's lesson at all (``may_be_one_lesson``)."""
    return drafted is None or may_be_one_lesson(drafted, candidate.policy, candidate.similarity,
                                                 cross_category_threshold=CROSS_CATEGORY_THRESHOLD)


def read_comment(context: GenerationContext) -> Reading | None:
    """Read the lesson out of the comment and the failed query; None when the comment teaches nothing."""
    comment = context.comment.strip()
    folded = fold(comment)
    if not teaches_something(comment):
        return None
    sql = fold(" ".join(context.sql_queries))
    aliases, table = _tables(sql)
    identifiers = _identifiers_in_order(comment)
    wrong, wrong_missing = _wrong_identifier(context, folded, sql, identifiers)
    # A bare column belongs to the query's table only when the query reads one table, and a column the comment
    # names only when the comment names no other table (platform = 'NDXP' after "join integrations").
    single = table if len(set(aliases.values())) == 1 else None
    named_tables = {name.split(".")[0] for name in identifiers if "." in name}
    home = single if not named_tables - {single} else None
    # A condition replaces only a column that does not exist; a misused column is not a definition.
    right_condition = _right_condition(comment, wrong, home) if wrong_missing else None
    right = _right_identifier(folded, identifiers, wrong, home, aliases)
    value_fix = _value_fix(context, comment, sql, aliases, single)
    bound_fix = _bound_fix(folded, sql, aliases, single)
    join = _JOIN_CONDITION.search(folded)
    join_condition = f"{join.group(1)} = {join.group(2)}" if join else None
    query_failed = bool(error_messages(context))
    scores = _category_scores(folded)
    if right is not None and wrong is not None and right_condition is None and _swaps(folded, wrong, right, scores):
        # The comment swaps one column for another: the most specific schema signal there is.
        scores[_SCHEMA] += 3.0
    if query_failed:
        scores[_SCHEMA] += 1.0
    if value_fix is not None or bound_fix is not None or (right_condition and " = '" in right_condition):
        scores[_LOGIC] += 1.0
    category = max(_PRECEDENCE, key=lambda c: (scores[c], -_PRECEDENCE.index(c)))
    if scores[category] < MINIMUM_CATEGORY_SCORE:
        category = PolicyCategory.OTHER
    return Reading(category=category, sentences=_instructive_sentences(comment, context), objects=identifiers,
                   table=table, wrong=wrong, wrong_missing=wrong_missing, right=right,
                   right_condition=right_condition, join_condition=join_condition, value_fix=value_fix,
                   bound_fix=bound_fix, query_failed=query_failed)


def _swaps(folded_comment: str, wrong: str, right: str, scores: dict[PolicyCategory, float]) -> bool:
    """Whether the comment puts ``right`` in the place of ``wrong``: it speaks of the wrong column, the right one
    shares a word of it (total_users for users), or the comment clearly teaches nothing of another kind.

    The database may name a missing column the comment never mentions: "Budget is budget_vnd in million VND"
    after a query on users teaches the unit of budget_vnd, not that budget_vnd holds the users.
    """
    if re.search(rf"\b{re.escape(wrong)}\b", folded_comment):
        return True
    if set(wrong.split("_")) & set(right.rsplit(".", 1)[-1].split("_")):
        return True
    return all(score < OTHER_LESSON_SCORE for category, score in scores.items() if category is not _SCHEMA)


def teaches_something(comment: str) -> bool:
    """Whether a comment names something to correct: a schema object, a value, a rule or a format."""
    folded = fold(comment)
    named = [o for o in schema_objects(comment)
             if not re.fullmatch(r"value:[\d\s.:-]+", o) and o.removeprefix("value:") not in _COMPLAINT_TERMS]
    if named:
        return True
    content = [t for t in terms(comment) if t not in _COMPLAINT_TERMS and not t.replace(".", "").isdigit()]
    strongest = max(_category_scores(folded).values())
    if strongest >= 3.5 or (strongest >= 2.0 and len(content) >= 2):
        return True
    subjects = [t for t in content if t in DOMAIN_TERMS and t not in _GENERIC_TERMS]
    if subjects and _INSTRUCTION.search(folded) and len(content) >= 2:
        return True
    # A definition in plain words ("Operating is the status value for active systems") names two subjects.
    return len(set(subjects)) >= 2 and _DEFINITION.search(folded) is not None


def _category_scores(folded_comment: str) -> dict[PolicyCategory, float]:
    scores = dict.fromkeys(_PRECEDENCE, 0.0)
    for category, pattern, weight in _SIGNALS:
        if pattern.search(folded_comment):
            scores[category] += weight
    return scores


def _tables(sql: str) -> tuple[dict[str, str], str | None]:
    """Aliases of the query's tables (each table is its own alias too), and the table it reads first."""
    aliases: dict[str, str] = {}
    first = None
    for table, alias in _SQL_FROM.findall(sql):
        if table in _SQL_WORDS:
            continue
        first = first or table
        aliases[table] = table
        if alias and alias not in _SQL_WORDS:
            aliases[alias] = table
    return aliases, first


def _qualify(identifier: str, table: str | None, aliases: dict[str, str]) -> str:
    if "." in identifier:
        qualifier, column = identifier.split(".", 1)
        return f"{aliases.get(qualifier, qualifier)}.{column}"
    return f"{table}.{identifier}" if table else identifier


def _wrong_identifier(context: GenerationContext, folded_comment: str, sql: str,
                      identifiers: list[str]) -> tuple[str | None, bool]:
    """The identifier the query used wrongly, and whether it does not exist at all.

    It does not exist when the database rejected it or the comment says so; it exists but was the wrong
    choice when the comment names it beside another column the query did not use (a swap).
    """
    for message in error_messages(context):
        for pattern in _MISSING_IDENTIFIER:
            match = pattern.search(fold(message))
            if match:
                return match.group(1).rsplit(".", 1)[-1], True
    for pattern in _REJECTED_IDENTIFIER:
        for match in pattern.finditer(folded_comment):
            candidate = match.group(1)
            if candidate not in _SQL_WORDS and _in_sql(candidate, sql):
                return candidate, True
    columns = [name.rsplit(".", 1)[-1] for name in identifiers]
    used = [column for column in columns if _in_sql(column, sql)]
    if len(used) == 1 and len(set(columns)) > 1 and not _is_key(used[0]):
        return used[0], False
    return None, False


def _in_sql(identifier: str, sql: str) -> bool:
    return re.search(rf"(?<![\w']){re.escape(identifier)}(?![\w'])", sql) is not None


def _is_key(identifier: str) -> bool:
    column = identifier.rsplit(".", 1)[-1]
    return column == "id" or column.endswith("_id")


def _identifiers_in_order(comment: str) -> list[str]:
    """The identifiers the comment names (snake_case, qualified or quoted), in order of appearance."""
    named = {o for o in schema_objects(comment) if not o.startswith("value:")}
    without_literals = re.sub(r"(?<![\w'])'[^'\n]{1,60}'(?![\w'])", " ", comment.lower())
    seen: list[str] = []
    for match in _IDENTIFIER_IN_TEXT.finditer(without_literals):
        name = match.group(1)
        if name in named and name not in seen and ("_" in name or "." in name or _quoted(name, comment)):
            seen.append(name)
    return seen


def _quoted(name: str, comment: str) -> bool:
    return bool(re.search(rf"[`\"“]{re.escape(name)}[`\"”]", comment, re.IGNORECASE))


def _right_identifier(folded: str, identifiers: list[str], wrong: str | None, table: str | None,
                      aliases: dict[str, str]) -> str | None:
    """The identifier the comment names instead of the wrong one: the one it reads, else the first bare."""
    # Keys (agency_id, agencies.id) say how to join, not what to read: one replaces only a wrong key.
    candidates = [i for i in identifiers if i.rsplit(".", 1)[-1] != wrong
                  and (not _is_key(i) or (wrong is not None and _is_key(wrong)))]
    for name in candidates:
        if re.search(rf"\b({_READ_VERBS})\s+(the )?(column |cot )?{re.escape(name)}\b", folded):
            return _qualify(name, table, aliases)
    join_keys = {key for pair in _JOIN_CONDITION.findall(folded) for key in pair}
    for name in candidates:
        followed_by_operator = re.search(rf"{re.escape(name)}\s*(>=|<=|=|>|<|\bis\s+')", folded)
        if name not in join_keys and not followed_by_operator:
            return _qualify(name, table, aliases)
    return None


def _right_condition(comment: str, wrong: str | None, table: str | None) -> str | None:
    """The conditions the comment gives in place of the wrong identifier: ``agency_type = 'ministry'``.

    All conditions on the first column named this way are kept (a range is two), values as written.
    """
    if wrong is None:
        return None
    folded = fold(comment)
    # Folding keeps the length of NFC text, so a span of the folded text gives the value as the user wrote it.
    original = unicodedata.normalize("NFC", comment) if len(folded) == len(comment) else folded
    chosen, conditions = None, []
    for match in _SQL_CONDITION.finditer(folded):
        column, operator, value = match.groups()
        # "col = 'value'" is SQL written in the comment: its column is an identifier even when a plain word.
        if column.rsplit(".", 1)[-1] == wrong or not value.startswith("'") or column in _SQL_WORDS:
            continue
        if chosen not in (None, column):
            break
        chosen = column
        operator = "=" if operator in ("is", "la") else operator
        conditions.append(f"{_qualify(column, table, {})} {operator} {original[match.start(3):match.end(3)]}")
    return " and ".join(conditions) or None


def _value_fix(context: GenerationContext, comment: str, sql: str, aliases: dict[str, str],
               table: str | None) -> ValueFix | None:
    """The query compared a column with a value the comment rejects, and the comment names the right value."""
    folded = fold(comment)
    comment_values = [fold(v) for v in re.findall(r"(?<![\w'])'([^'\n]{1,60})'(?![\w'])", comment)]
    question = fold(context.question)
    for column, operator, used in _SQL_CONDITION.findall(sql):
        used_value = used.strip("'")
        if operator != "=" or not used.startswith("'"):
            continue
        name = column.rsplit(".", 1)[-1]
        if used_value not in comment_values and not re.search(rf"\b{re.escape(name)}\b", folded):
            continue
        # The comment's own condition on that column is the surest statement of the right value.
        stated = [value.strip("'") for named, op, value in _SQL_CONDITION.findall(folded)
                  if named.rsplit(".", 1)[-1] == name and op in ("=", "is", "la") and value.startswith("'")]
        others = [v for v in comment_values if re.fullmatch(r"[a-z0-9_ -]+", v)
                  and not re.search(rf"\b{re.escape(v)}\b", question)]
        replacements = [v for v in [*stated, *others] if v != used_value]
        if replacements:
            return ValueFix(column=_qualify(column, table, aliases), wrong=used_value, right=replacements[0])
    return None


def _bound_fix(folded: str, sql: str, aliases: dict[str, str], table: str | None) -> BoundFix | None:
    """The query and the comment compare the same column with the same bound but a different operator."""
    bounds = (">", "<", ">=", "<=")
    used = {(column.rsplit(".", 1)[-1], bound): operator
            for column, operator, bound in _SQL_CONDITION.findall(sql) if operator in bounds}
    for column, operator, bound in _SQL_CONDITION.findall(folded):
        key = (column.rsplit(".", 1)[-1], bound)
        if key in used and used[key] != operator and operator in bounds:
            return BoundFix(column=_qualify(key[0], table, aliases), wrong_operator=used[key],
                            right_operator=operator, bound=bound)
    # "use >= 3" without the column: the query's comparison with that bound says which column it is.
    for operator, bound in re.findall(r"(?<![\w<>=!])(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)", folded):
        matching = [(column, used_operator) for (column, used_bound), used_operator in used.items()
                    if used_bound == bound and used_operator != operator]
        if len(matching) == 1:
            column, used_operator = matching[0]
            return BoundFix(column=_qualify(column, table, aliases), wrong_operator=used_operator,
                            right_operator=operator, bound=bound)
    return None


def _instructive_sentences(comment: str, context: GenerationContext) -> list[str]:
    """The comment's sentences that teach, tidied; all of them when none stands out."""
    sentences = [s.strip() for s in _SENTENCE_SPLIT.split(comment) if s.strip()]
    kept = [s for s in sentences if not _is_complaint(s, context)]
    return [_tidy(s) for s in (kept or sentences)]


def _is_complaint(sentence: str, context: GenerationContext) -> bool:
    """A sentence that only says the answer was wrong, or restates its numbers, teaches nothing itself."""
    if schema_objects(sentence) and not re.match(r"^(again|you|the query|it)\b", fold(sentence)):
        return False
    folded = fold(sentence)
    if _COMPLAINT_START.match(folded):
        return True
    shown = " ".join([*context.results, context.answer])
    repeats_result = any(number in shown for number in _NUMBER.findall(folded))
    return repeats_result and not _INSTRUCTION.search(folded)


def _tidy(sentence: str) -> str:
    sentence = re.sub(r"^(again|also|so|but|please|then|và|nhưng)[,:\s]+", "", sentence.strip(), flags=re.I)
    sentence = re.sub(r"\byou (must|should|need to)\s+", "", sentence, flags=re.I).strip()
    sentence = sentence[:1].upper() + sentence[1:]
    return sentence if sentence.endswith((".", "!", "?")) else sentence.rstrip(";,:") + "."


def write_policy(context: GenerationContext, reading: Reading) -> PolicyContent:
    """A specific policy from the reading: rule, mapping, missing knowledge, examples, rationale."""
    lesson = " ".join(reading.sentences)
    rule, mapping = lesson, None
    missing = f"What the assistant did not know, as the feedback put it: {lesson}"
    structured = (_schema_rule(reading) or _value_rule(reading) or _bound_rule(reading)
                  or _filter_rule(reading) or _distinct_rule(context, reading) or _unit_rule(context, reading)
                  or _fraction_rule(context, reading) or _language_rule(context, reading))
    if structured is not None:
        rule, mapping, missing = structured
        if lesson and normalize(lesson) not in normalize(missing):
            missing = f"{missing} Feedback: {lesson}"
    named = [o for o in (reading.objects or sorted(schema_objects(context.comment)))
             if o.rsplit(".", 1)[-1] not in ("id", "name")]
    rationale = _RATIONALE[reading.category] + (f" ({', '.join(named[:5])})." if named else ".")
    return PolicyContent(
        category=reading.category, priority=_priority(context, reading), rule=_bounded(rule, 2000),
        correct_mapping=_bounded(mapping, 1000) if mapping else None,
        missing_knowledge=_bounded(missing, 2000), examples=example_questions(context.question),
        rationale=_bounded(rationale, 2000))


# Each rule writer returns (rule, correct_mapping, missing_knowledge), or None when its structure is absent.
Written = tuple[str, str | None, str]


def _schema_rule(reading: Reading) -> Written | None:
    """A column, or a join path to one, in place of the identifier the query used."""
    wrong, right = reading.wrong, reading.right
    if reading.category is not _SCHEMA or not wrong or not right:
        return None
    table = reading.table or right.split(".")[0]
    if reading.join_condition and "." in right and right.split(".")[0] != table:
        right_table, join = right.split(".")[0], reading.join_condition
        rule = (f"To get {right} for a row of {table}, join {right_table} on {join}; "
                f"{table} has no column {wrong}.")
        missing = (f"The assistant read {wrong} from {table}, which has no such column; "
                   f"{right} is in {right_table} and needs the join {join}.")
        return rule, f"{wrong} -> {right} (join {right_table} on {join})", missing
    if not reading.wrong_missing:
        rule = f"Use the column {right}, not {wrong}: {' '.join(reading.sentences)}"
        missing = f"The assistant read {wrong} where the data asked for is in {right}."
        return rule, f"{wrong} -> {right}", missing
    rule = f"Use the column {right}, not {wrong}: there is no column {wrong} in {table}."
    missing = f"The assistant queried {wrong}, which does not exist in {table}; the data is in {right}."
    return rule, f"{wrong} -> {right}", missing


def _value_rule(reading: Reading) -> Written | None:
    """A value (or a condition) in place of one the column does not have."""
    if reading.category is not _LOGIC:
        return None
    if reading.value_fix is not None:
        fix = reading.value_fix
        rule = (f"Use {fix.column} = '{fix.right}', not '{fix.wrong}': "
                f"'{fix.wrong}' is not a value of {fix.column}.")
        missing = f"The assistant filtered on {fix.column} = '{fix.wrong}', a value the column does not have."
        return rule, f"'{fix.wrong}' -> {fix.column} = '{fix.right}'", missing
    if reading.right_condition is not None and reading.wrong is not None:
        where = f" in {reading.table}" if reading.table else ""
        rule = (f"Use the condition {reading.right_condition}, not the column {reading.wrong}: "
                f"there is no column {reading.wrong}{where}.")
        missing = (f"The assistant queried {reading.wrong}, which does not exist; "
                   f"the condition is {reading.right_condition}.")
        return rule, f"{reading.wrong} -> {reading.right_condition}", missing
    return None


def _bound_rule(reading: Reading) -> Written | None:
    """An inclusive bound where the query used an exclusive one, or the reverse."""
    fix = reading.bound_fix
    if fix is None or reading.category not in (_LOGIC, _QUERY):
        return None
    included = "=" in fix.right_operator
    right = f"{fix.column} {fix.right_operator} {fix.bound}"
    wrong = f"{fix.column} {fix.wrong_operator} {fix.bound}"
    rule = f"Use {right}, not {wrong}: the bound {fix.bound} itself is {'in' if included else 'ex'}cluded."
    missing = (f"The assistant compared {wrong}, which {'leaves out' if included else 'takes in'} "
               f"{fix.bound} itself.")
    return rule, f"{wrong} -> {right}", missing


def _filter_rule(reading: Reading) -> Written | None:
    """Conditions (through a join where the comment gives one) in place of a column that does not exist."""
    condition, wrong = reading.right_condition, reading.wrong
    if reading.category is not _QUERY or not condition or not wrong:
        return None
    table = reading.table or "the table"
    condition_table = condition.split(".")[0]
    if reading.join_condition and condition_table != table:
        action = f"Join {condition_table} on {reading.join_condition} and filter on {condition}"
    else:
        action = f"Filter on {condition}"
    rule = f"{action} instead of {wrong}: there is no column {wrong} in {table}."
    missing = (f"The assistant queried {wrong}, which does not exist in {table}; "
               f"the rows are selected by {condition}.")
    return rule, f"{wrong} -> {condition}", missing


def _distinct_rule(context: GenerationContext, reading: Reading) -> Written | None:
    """Counting distinct keys where a join or a table repeats the thing counted."""
    if reading.category is not _QUERY:
        return None
    match = _DISTINCT_KEY.search(fold(context.comment))
    if match is None:
        return None
    aliases, first = _tables(fold(" ".join(context.sql_queries)))
    tables = list(dict.fromkeys(aliases.values()))
    key = match.group(1)
    if "." not in key and "_" not in key and len(tables) != 1:
        return None  # a bare word such as "systems" is not a key we can name
    key = _qualify(key, tables[0] if len(tables) == 1 else None, aliases)
    key_table, column = key.split(".", 1) if "." in key else (None, key)
    repeating = next((t for t in tables if t != key_table), key_table or first)
    if not repeating:
        return None
    named_by_key = column.removesuffix("_id").replace("_", " ")
    entity = _singular(key_table) if column == "id" and key_table else named_by_key
    rule = (f"Count with count(DISTINCT {key}), not count(*): {repeating} can hold several rows per "
            f"{entity}, so counting rows counts some {entity} more than once.")
    missing = f"The assistant counted rows of {repeating}, which repeat each {entity} once per row."
    return rule, f"count(*) -> count(DISTINCT {key})", missing


def _singular(table: str) -> str:
    if table.endswith("ies"):
        return table[:-3] + "y"
    return table[:-1] if table.endswith("s") else table


def _fraction_rule(context: GenerationContext, reading: Reading) -> Written | None:
    """A fraction between 0 and 1 reported as if it were already a percentage."""
    if reading.category is not _UNITS:
        return None
    comment = context.comment.replace(",", ".")
    fractions = re.findall(r"(?<![\d.])(0\.\d+)(?!\d)", comment)
    percents = re.findall(r"(\d+(?:\.\d+)?)\s*%", comment)
    pair = next(((f, p) for f in fractions for p in percents if abs(float(f) * 100 - float(p)) < 1e-6), None)
    if pair is None:
        return None
    fraction, percent = pair
    rule = (f"Shares computed as fractions (0 to 1) must be multiplied by 100 before they are reported as "
            f"percentages: {fraction} is {percent}%, not {fraction}%.")
    missing = f"The assistant reported the fraction {fraction} as {fraction}% instead of {percent}%."
    return rule, f"{fraction}% -> {percent}%", missing


def _unit_rule(context: GenerationContext, reading: Reading) -> Written | None:
    """The unit a numeric column is stored in, when the answer reported its values as plain units."""
    if reading.category is not _UNITS:
        return None
    folded = fold(context.comment)
    scale = next((_SCALES[w] for w in re.findall(r"[a-z]+", folded) if w in _SCALES), None)
    currency = "VND" if re.search(r"\b(vnd|dong)\b", folded) else "USD" if "usd" in folded else None
    columns = [i for i in reading.objects if "." not in i] or [
        match.group(1).lower() for query in context.sql_queries for match in _AGGREGATED.finditer(query)]
    if scale is None or currency is None or not columns:
        return None
    column, unit = columns[0], f"{scale} {currency}"
    rule = (f"Values of {column} are in {unit}: report them in {unit} (or converted to a larger unit), "
            f"never as plain {currency}.")
    missing = f"The assistant reported values of {column} as plain {currency}; the column is in {unit}."
    return rule, f"{column} ({currency}) -> {column} ({unit})", missing


def _language_rule(context: GenerationContext, reading: Reading) -> Written | None:
    """The language answers must be written in."""
    if reading.category is not _FORMAT:
        return None
    folded = fold(context.comment)
    named = [_LANGUAGES[m] for m in re.findall(r"vietnamese|english|tieng viet|tieng anh", folded)]
    if not named and not re.search(r"\b(language|ngon ngu)\b", folded):
        return None
    asked_in = "Vietnamese" if fold(context.question) != context.question.lower() else "English"
    if _FOLLOWS_QUESTION.search(folded) or asked_in in named:
        rule = ("Answer in the language of the question: a question in Vietnamese gets an answer in "
                "Vietnamese, a question in English an answer in English.")
        return rule, None, f"The assistant answered a question asked in {asked_in} in another language."
    if named:
        return f"Answer in {named[0]}.", None, f"The user wants answers in {named[0]}."
    return None


def _priority(context: GenerationContext, reading: Reading) -> PolicyPriority:
    """High when the query fails or the numbers are wrong without the rule; lower for presentation."""
    if reading.query_failed:
        return PolicyPriority.HIGH
    if reading.category is _FORMAT:
        language = re.search(r"\b(vietnamese|english|tieng viet|tieng anh|language|ngon ngu)\b",
                             fold(context.comment))
        return PolicyPriority.MEDIUM if language else PolicyPriority.LOW
    if reading.category is PolicyCategory.OTHER:
        return PolicyPriority.LOW
    # The query ran and the user saw figures: without the rule those figures are wrong.
    shown_figures = bool(context.results) or bool(_NUMBER.search(context.answer))
    return PolicyPriority.HIGH if shown_figures else PolicyPriority.MEDIUM


def example_questions(question: str) -> list[str]:
    """The question, and one with its first number changed when it has one (the lesson holds for it too)."""
    match = re.search(r"(?<![\w.,])(\d+)(?![\w.,]\d)", question)
    if match is None:
        return [question]
    number = int(match.group(1))
    if 1900 <= number <= 2100:
        other = number - 1  # a year: the one before, which has data
    elif number <= 10:
        other = number + 1
    else:
        other = number * 2
    return [question, question[: match.start()] + str(other) + question[match.end():]]


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
