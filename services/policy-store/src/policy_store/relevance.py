"""How relevant one active policy is to one question: the parts of the score and how they combine.

Every part is in [0, 1]::

    semantic  cosine of the bilingual term vectors (text_matching's terms: Vietnamese domain phrases and English
              synonyms meet on canonical terms, so this is the part that carries meaning across the languages);
              the policy's vector is its rule and mapping, with each example question setting the scene at half
              the rule's weight (Document.of_parts)
    keyword   BM25 over the policy's rule, mapping and examples, normalized by what a policy matching every word of
              the question would get: Σ w·idf·sat / Σ w·idf over the question's keywords, where the keywords are
              the terms (w = 1) and the pairs of adjacent words (w = 0.5: "sự cố", "security level"; Vietnamese
              words are written as syllables), idf is the rarity among the active policies and sat the saturated
              term frequency (k1 = 1.2, b = 0.75, capped at 1). Trigram backoff: a question term that is not a
              policy word counts, with weight = similarity, as the policy words it is spelled like (character
              trigram Jaccard ≥ 0.5: resolved / resolve, month / monthly)
    schema    1 − exp(−credit): the shared schema objects, where the policy's objects are its ``schema_objects``
              column and the objects its rule and mapping name; an object the question names itself counts with
              the smaller of the two weights, and a policy object of two to four words that the question spells
              out in words of either language (monthly_active_users ← "người dùng hoạt động hằng tháng";
              'government_cloud' ← "government cloud") counts with its weight
    priority  high 1, medium 0.5, low 0
    support   ln(support_count) / ln(10), capped at 1: ten reports or more give the full part

    text  = 0.5·semantic + 0.3·keyword + 0.2·schema
    score = text · (0.9 + 0.1·(0.6·priority + 0.4·support))

Priority and support only reorder what the text already matches: a policy the text does not match scores 0
whatever its priority, and at equal text a high-priority, often-reported policy is ahead by at most a tenth.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policy_store.models import PolicyRecord
from policyloop_common.policy import PolicyPriority
from policyloop_common.text_matching import Document, normalize, object_weights, terms

SEMANTIC_WEIGHT = 0.5
KEYWORD_WEIGHT = 0.3
SCHEMA_WEIGHT = 0.2
# The share of the score that priority and support can move, and how they split it.
BOOST_SHARE = 0.1
PRIORITY_SHARE = 0.6
PRIORITY_VALUE = {PolicyPriority.HIGH.value: 1.0, PolicyPriority.MEDIUM.value: 0.5, PolicyPriority.LOW.value: 0.0}
SUPPORT_SATURATION = 10
# An example question sets the scene of its rule: half the rule's weight each.
EXAMPLE_SHARE = 0.5
# A pair of adjacent words is a phrase: evidence, but less than a term that names a concept.
PHRASE_WEIGHT = 0.5
BM25_K1 = 1.2
BM25_B = 0.75
# Two spellings at least this alike (character trigram Jaccard) are forms of one word.
SPELLING_SIMILARITY = 0.5
# Schema objects of this many words are matched against the words of a question.
MENTION_WORDS = (2, 4)

# Weights of schema objects that only the schema_objects column names (the text's own objects carry theirs).
_KEY_WEIGHT = 0.5
_TABLE_WEIGHT = 0.2


def policy_search_text(record: PolicyRecord) -> str:
    """What a question is matched against: the rule, its mapping and the example questions."""
    return " ".join([record.rule, record.correct_mapping or "", *record.examples])


def keyword_units(text: str) -> Counter[str]:
    """The keywords of a text: its terms, and its pairs of adjacent words ("sự cố" as ``su co``)."""
    units = Counter(terms(text))
    words = normalize(text).split()
    units.update(f"{first} {second}" for first, second in zip(words, words[1:], strict=False))
    return units


def unit_weight(unit: str) -> float:
    """How much one keyword counts: a term fully, a pair of words as a phrase."""
    return PHRASE_WEIGHT if " " in unit else 1.0


def object_words(name: str) -> frozenset[str]:
    """The words a schema object is spelled with, as terms: ``systems.monthly_active_users`` → monthly, active,
    user; ``value:government_cloud`` → government, cloud."""
    name = name.removeprefix("value:")
    column = name.rsplit(".", 1)[-1]
    return frozenset(terms(column.replace("_", " ")))


def _column_object_weight(name: str) -> float:
    """The weight of an object named only by the ``schema_objects`` column, by the text's rules of evidence."""
    column = name.rsplit(".", 1)[-1]
    if column == "id" or column.endswith("_id"):
        return _KEY_WEIGHT
    if name.startswith("value:") or "." in name or "_" in name:
        return 1.0
    return _TABLE_WEIGHT


def support_value(support_count: int) -> float:
    """The support part: 0 for one report, 1 from ``SUPPORT_SATURATION`` reports on."""
    if support_count <= 1:
        return 0.0
    return min(1.0, math.log(support_count) / math.log(SUPPORT_SATURATION))


@dataclass(frozen=True, slots=True)
class QuestionFeatures:
    """A question prepared once for ranking every policy: term vector, keywords, terms and schema objects."""

    text: str
    document: Document
    units: Mapping[str, float]
    terms: frozenset[str]

    @classmethod
    def of(cls, text: str) -> QuestionFeatures:
        """Prepare ``text``."""
        return cls(text=text, document=Document.of(text),
                   units={unit: unit_weight(unit) for unit in keyword_units(text)}, terms=frozenset(terms(text)))


@dataclass(frozen=True, slots=True)
class PolicyFeatures:
    """What the ranking needs of one policy, prepared once per version."""

    policy_id: str
    vector: Mapping[str, float]
    norm: float
    units: Mapping[str, int]
    length: int
    objects: Mapping[str, float]
    mentions: Mapping[frozenset[str], float]
    priority: float
    support: float

    @classmethod
    def of(cls, policy: Mapping[str, Any], schema_objects: Iterable[str] = ()) -> PolicyFeatures:
        """Prepare a policy from its contract document and the store's ``schema_objects`` column."""
        main = " ".join(filter(None, [policy["rule"], policy.get("correct_mapping") or ""]))
        examples = list(policy.get("examples") or [])
        document = Document.of_parts(main, [(example, EXAMPLE_SHARE) for example in examples])
        units: Counter[str] = Counter()
        for part in (main, *examples):
            units.update(keyword_units(part))
        objects = dict(object_weights(main))
        for name in schema_objects:
            objects.setdefault(name, _column_object_weight(name))
        mentions: dict[frozenset[str], float] = {}
        for name, weight in objects.items():
            words = object_words(name)
            if MENTION_WORDS[0] <= len(words) <= MENTION_WORDS[1]:
                mentions[words] = max(weight, mentions.get(words, 0.0))
        return cls(policy_id=policy["policy_id"], vector=document.vector, norm=document.norm, units=dict(units),
                   length=sum(units.values()), objects=objects, mentions=mentions,
                   priority=PRIORITY_VALUE.get(policy["priority"], 0.0),
                   support=support_value(policy.get("support_count") or 0))

    @property
    def boost(self) -> float:
        """Priority and support together, in [0, 1]."""
        return PRIORITY_SHARE * self.priority + (1 - PRIORITY_SHARE) * self.support


@dataclass(frozen=True, slots=True)
class Corpus:
    """What the keyword part needs of the whole active set: its size, document frequencies, mean length."""

    size: int
    document_frequency: Mapping[str, int]
    average_length: float

    def idf(self, unit: str) -> float:
        """BM25's inverse document frequency, always positive."""
        frequency = self.document_frequency.get(unit, 0)
        return math.log(1.0 + (self.size - frequency + 0.5) / (frequency + 0.5))


@dataclass(frozen=True, slots=True)
class Query:
    """A question with its keywords weighted for one corpus: the near spellings found there included.

    What every policy's score needs of the question alone is worked out here once, so scoring a candidate only
    reads the policy: each keyword's weight times its idf (``keyword_gains``, in the order of ``weights``, the
    order the keyword part adds them in) and the question's vector as pairs.
    """

    question: QuestionFeatures
    weights: Mapping[str, float]
    idf: Mapping[str, float]
    keyword_mass: float
    keyword_gains: tuple[tuple[str, float], ...]
    vector_items: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, question: QuestionFeatures, corpus: Corpus, spellings: Mapping[str, float]) -> Query:
        """Weigh ``question`` against ``corpus``; ``spellings`` maps near spellings to their similarity."""
        weights = {**{unit: similarity for unit, similarity in spellings.items() if unit not in question.units},
                   **question.units}
        idf = {unit: corpus.idf(unit) for unit in weights}
        # The question's own keywords set the scale; near spellings can only add to a match.
        mass = sum(weight * idf[unit] for unit, weight in question.units.items())
        return cls(question=question, weights=weights, idf=idf, keyword_mass=mass,
                   keyword_gains=tuple((unit, weight * idf[unit]) for unit, weight in weights.items()),
                   vector_items=tuple(question.document.vector.items()))


@dataclass(frozen=True, slots=True)
class ScoreParts:
    """The score of one policy for one question and the parts it is made of."""

    semantic: float
    keyword: float
    schema: float
    priority: float
    support: float
    score: float

    def as_dict(self) -> dict[str, float]:
        """The parts as the API shows them (``score`` goes beside them)."""
        return {"semantic": round(self.semantic, 4), "keyword": round(self.keyword, 4),
                "schema": round(self.schema, 4), "priority": round(self.priority, 4),
                "support": round(self.support, 4)}


def semantic_part(question: QuestionFeatures, policy: PolicyFeatures) -> float:
    """Cosine of the term vectors."""
    return _cosine(question.document.vector.items(), question.document.norm, policy)


def _cosine(vector_items: Iterable[tuple[str, float]], norm: float, policy: PolicyFeatures) -> float:
    if not norm or not policy.norm:
        return 0.0
    vector = policy.vector
    # Terms the policy lacks add exactly 0.0 to the sum, so they are left out; the others are added in the
    # question's order, as they always were (float sums depend on the order).
    dot = sum([value * vector[term] for term, value in vector_items if term in vector])
    return min(1.0, dot / (norm * policy.norm))


def keyword_part(query: Query, policy: PolicyFeatures, corpus: Corpus) -> float:
    """Normalized BM25 of the question's keywords (and their near spellings) in the policy."""
    if query.keyword_mass <= 0:
        return 0.0
    scale = BM25_K1 * (1 - BM25_B + BM25_B * policy.length / max(corpus.average_length, 1.0))
    units = policy.units
    total = 0.0
    for unit, gain in query.keyword_gains:
        frequency = units.get(unit)
        if frequency:
            total += gain * min(1.0, frequency * (BM25_K1 + 1) / (frequency + scale))
    return min(1.0, total / query.keyword_mass)


def schema_credit(question: QuestionFeatures, policy: PolicyFeatures) -> float:
    """Evidence that the question is about the policy's schema objects (see the module docstring)."""
    credit = sum(weight for words, weight in policy.mentions.items() if words <= question.terms)
    for name, weight in question.document.objects.items():
        if name in policy.objects:
            credit += min(weight, policy.objects[name])
    return credit


def combined_score(semantic: float, keyword: float, schema: float, policy: PolicyFeatures) -> float:
    """The score from its text parts and the policy's priority and support, rounded as it is shown."""
    text = SEMANTIC_WEIGHT * semantic + KEYWORD_WEIGHT * keyword + SCHEMA_WEIGHT * schema
    score = text * (1 - BOOST_SHARE + BOOST_SHARE * policy.boost)
    return round(max(0.0, min(1.0, score)), 4)


def combine(semantic: float, keyword: float, schema: float, policy: PolicyFeatures) -> ScoreParts:
    """The score from its text parts and the policy's priority and support."""
    return ScoreParts(semantic=semantic, keyword=keyword, schema=schema, priority=policy.priority,
                      support=policy.support, score=combined_score(semantic, keyword, schema, policy))


def text_parts(query: Query, policy: PolicyFeatures, corpus: Corpus) -> tuple[float, float, float]:
    """The semantic, keyword and schema parts of ``policy`` for the question of ``query``."""
    question = query.question
    return (_cosine(query.vector_items, question.document.norm, policy), keyword_part(query, policy, corpus),
            1.0 - math.exp(-schema_credit(question, policy)))


def score_policy(query: Query, policy: PolicyFeatures, corpus: Corpus) -> ScoreParts:
    """The score of ``policy`` for the question of ``query``, with its parts."""
    return combine(*text_parts(query, policy, corpus), policy)
