"""The active policies, prepared and indexed, ranked for a question by scoring only those it is about.

Inverted indexes map each keyword, each schema object and each multi-word object's set of words to the policies
that have it, and a trigram index over the policies' words finds the near spellings of a question's words. The
policies scored (exactly, by ``relevance.score_policy``) are those that share with the question

- a schema object, named or spelled out in words, or
- a distinctive keyword: one that at most 5 % of the active policies have (and never fewer than 200 policies
  count as few, so a small set is scored in full).

Keywords most policies use ("system", "how many") cannot tell one policy from another, and with thousands of
policies they would make every question a full scan; but a plain question may have nothing else ("Count systems
with more than 1000 users" once hundreds of policies mention users). So when the policies found above are fewer
than ``TOP_UP_BELOW``, up to ``CANDIDATE_BUDGET`` more go to the policies sharing the most of the question's common
keywords (weighted as the score weighs them), walking their postings rarest first and at most ``TOP_UP_POSTINGS``
entries in all, so a keyword nearly every policy has costs nothing and prefers nothing.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

from policy_store.relevance import (
    MENTION_WORDS,
    SPELLING_SIMILARITY,
    Corpus,
    PolicyFeatures,
    Query,
    QuestionFeatures,
    ScoreParts,
    combine,
    combined_score,
    text_parts,
)

# A keyword is distinctive when at most this share of the active policies has it, or at most COMMON_MINIMUM.
COMMON_SHARE = 0.05
COMMON_MINIMUM = 200
# A question whose distinctive matches are fewer than this is topped up with common-word overlap, to this budget.
TOP_UP_BELOW = 20
CANDIDATE_BUDGET = 50
# Postings read to top the candidates up: a bound on the work a question of common words costs.
TOP_UP_POSTINGS = 3000
# Words shorter than this have too few trigrams to be told apart by spelling.
SPELLING_MIN_LENGTH = 4
# Question words whose near spellings are remembered (until a word enters or leaves the index).
SPELLING_CACHE_WORDS = 20_000
# Beyond this many object words in one question, mentions are found word by word instead of by word sets.
MENTION_SUBSET_LIMIT = 12


@dataclass(frozen=True, slots=True)
class RankedPolicy:
    """One policy of a ranking, with its score and the parts of it."""

    policy_id: str
    parts: ScoreParts


def _trigrams(word: str) -> frozenset[str]:
    padded = f" {word} "
    return frozenset(padded[i:i + 3] for i in range(len(padded) - 2))


def _spellable(word: str) -> bool:
    return len(word) >= SPELLING_MIN_LENGTH and word.isalpha()


_NONE: frozenset[str] = frozenset()


def _alike_with_one_hit(size: int, needed: int) -> int:
    """The most trigrams a word sharing at most ``needed`` of a word's ``size`` trigrams can have and still be
    spelled like it (the similarity test itself, so the bound is exact); 0 when no such word can be."""
    most = 0
    while needed / (size + most + 1 - needed) >= SPELLING_SIMILARITY:
        most += 1
    return most


class RankingIndex:
    """Prepared policies and their inverted indexes; add and remove keep every index in step.

    Not thread-safe on its own: the caller serializes changes and rankings (``ActivePolicies`` holds a lock).
    """

    def __init__(self) -> None:
        self._policies: dict[str, PolicyFeatures] = {}
        self._postings: dict[str, dict[str, int]] = {}
        self._objects: dict[str, dict[str, float]] = {}
        self._mentions: dict[frozenset[str], dict[str, float]] = {}
        self._mention_words: dict[str, set[frozenset[str]]] = {}
        self._spelling: dict[str, set[str]] = {}  # trigram -> the indexed words that have it
        self._spelled: dict[str, frozenset[str]] = {}  # indexed word -> its trigrams
        # Near spellings found per question word; valid until a word enters or leaves the index.
        self._spelling_cache: dict[str, dict[str, float]] = {}
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._policies)

    def __contains__(self, policy_id: object) -> bool:
        return policy_id in self._policies

    def get(self, policy_id: str) -> PolicyFeatures | None:
        """The prepared policy, if it is in the index."""
        return self._policies.get(policy_id)

    def ids(self) -> list[str]:
        """Every indexed policy id."""
        return list(self._policies)

    def add(self, policy: PolicyFeatures) -> None:
        """Index ``policy``, replacing the version indexed under its id."""
        self.remove(policy.policy_id)
        policy_id = policy.policy_id
        self._policies[policy_id] = policy
        self._total_length += policy.length
        for unit, frequency in policy.units.items():
            posting = self._postings.setdefault(unit, {})
            if not posting and _spellable(unit):
                self._spelling_cache.clear()
                self._spelled[unit] = grams = _trigrams(unit)
                for trigram in grams:
                    self._spelling.setdefault(trigram, set()).add(unit)
            posting[policy_id] = frequency
        for name, weight in policy.objects.items():
            self._objects.setdefault(name, {})[policy_id] = weight
        for words, weight in policy.mentions.items():
            self._mentions.setdefault(words, {})[policy_id] = weight
            for word in words:
                self._mention_words.setdefault(word, set()).add(words)

    def remove(self, policy_id: str) -> None:
        """Forget a policy; nothing happens if it is not indexed."""
        policy = self._policies.pop(policy_id, None)
        if policy is None:
            return
        self._total_length -= policy.length
        for unit in policy.units:
            posting = self._postings[unit]
            del posting[policy_id]
            if not posting:
                del self._postings[unit]
                if _spellable(unit):
                    self._spelling_cache.clear()
                    for trigram in self._spelled.pop(unit):
                        spelled = self._spelling[trigram]
                        spelled.discard(unit)
                        if not spelled:
                            del self._spelling[trigram]
        for name in policy.objects:
            _discard(self._objects, name, policy_id)
        for words in policy.mentions:
            if _discard(self._mentions, words, policy_id):
                for word in words:
                    sets = self._mention_words[word]
                    sets.discard(words)
                    if not sets:
                        del self._mention_words[word]

    def corpus(self) -> Corpus:
        """The statistics the keyword part needs."""
        size = len(self._policies)
        return Corpus(size=size, document_frequency=_Frequencies(self._postings),
                      average_length=self._total_length / size if size else 1.0)

    def spellings(self, question: QuestionFeatures) -> dict[str, float]:
        """Indexed words spelled like the question's words (trigram Jaccard ≥ SPELLING_SIMILARITY), with the
        similarity; the question's own keywords excluded.

        Prefix filtering keeps this cheap: a word that shares a Jaccard ``t`` with one of ``n`` trigrams shares at
        least ``ceil(t·n)`` of them, hence at least one of any ``n − ceil(t·n) + 1``; the rarest are looked up.
        """
        found: dict[str, float] = {}
        for word in question.terms:
            if not _spellable(word):
                continue
            for candidate, similarity in self._spelled_like(word).items():
                if candidate not in question.units and similarity > found.get(candidate, 0.0):
                    found[candidate] = similarity
        return found

    def _spelled_like(self, word: str) -> dict[str, float]:
        cached = self._spelling_cache.get(word)
        if cached is not None:
            return cached
        grams = _trigrams(word)
        needed = math.ceil(SPELLING_SIMILARITY * len(grams))
        rarest = sorted(grams, key=lambda trigram: len(self._spelling.get(trigram, ())))
        similar: dict[str, float] = {}
        looked_up = rarest[:len(grams) - needed + 1]
        # A word found under one looked-up trigram only shares the others at most: ``needed`` in all. It can be
        # alike only when it has few trigrams itself, so the words found once are compared only if that short;
        # the words found more than once (the pairwise intersections) always are.
        postings = [self._spelling.get(trigram, _NONE) for trigram in looked_up]
        repeated = set().union(*(first & second for first, second in combinations(postings, 2)))
        found_once_limit = _alike_with_one_hit(len(grams), needed)
        for candidate in set().union(*(self._spelling.get(trigram, ()) for trigram in looked_up)):
            other = self._spelled[candidate]
            if len(other) > found_once_limit and candidate not in repeated:
                continue
            shared = len(grams & other)
            similarity = shared / (len(grams) + len(other) - shared)
            if similarity >= SPELLING_SIMILARITY and candidate != word:
                similar[candidate] = similarity
        if len(self._spelling_cache) >= SPELLING_CACHE_WORDS:
            self._spelling_cache.clear()
        self._spelling_cache[word] = similar
        return similar

    def rank(self, question: QuestionFeatures, *, limit: int, floor: float) -> list[RankedPolicy]:
        """The ``limit`` best policies scoring at least ``floor``, best first (ties by policy id)."""
        if not self._policies:
            return []
        corpus = self.corpus()
        query = Query.of(question, corpus, self.spellings(question))
        common_above = max(COMMON_MINIMUM, COMMON_SHARE * corpus.size)
        shared = sorted((len(posting), unit) for unit in query.weights if (posting := self._postings.get(unit)))
        candidates = self._schema_candidates(question)
        distinctive = [unit for frequency, unit in shared if frequency <= common_above]
        for unit in distinctive:
            candidates.update(self._postings[unit])
        if len(candidates) < TOP_UP_BELOW:
            self._top_up(candidates, query, [unit for frequency, unit in shared if frequency > common_above])
            if not candidates and shared:
                candidates.update(self._postings[shared[0][1]])
        # Only the winners get their parts as objects: the others are told apart by their score alone.
        kept: list[tuple[float, str, tuple[float, float, float]]] = []
        for policy_id in candidates:
            policy = self._policies[policy_id]
            parts = text_parts(query, policy, corpus)
            score = combined_score(*parts, policy)
            if score >= floor and score > 0:
                kept.append((-score, policy_id, parts))
        return [RankedPolicy(policy_id, combine(*parts, self._policies[policy_id]))
                for _, policy_id, parts in heapq.nsmallest(limit, kept, key=_best_first)]

    def _top_up(self, candidates: set[str], query: Query, common: list[str]) -> None:
        """Add the policies sharing the most (by weight) of the question's common keywords, up to the budget.

        A policy's overlap is the sum of the weights of the common keywords it has, added rarest keyword first.
        Policies are kept in groups of equal overlap, split and merged with set operations as each keyword's
        postings are read: the sums are the very ones a policy-by-policy walk would add up, in the same order,
        without a Python step per posting.
        """
        by_overlap: dict[float, set[str]] = {}
        walk = TOP_UP_POSTINGS
        for unit in common:  # rarest first
            posting = self._postings[unit]
            if len(posting) > walk:
                break
            walk -= len(posting)
            weight = query.weights[unit] * query.idf.get(unit, 1.0)
            having = posting.keys() - candidates
            regrouped: dict[float, set[str]] = {}
            for overlap, group in by_overlap.items():
                gaining = group & having if having else having
                if len(gaining) == len(group):  # often so: common keywords go together ("users", "how many users")
                    _merge(regrouped, overlap + weight, group)
                    having = having - group if len(having) > len(group) else set()
                    continue
                if gaining:
                    having -= gaining
                    _merge(regrouped, overlap + weight, gaining)
                    group = group - gaining
                _merge(regrouped, overlap, group)
            if having:  # policies met for the first time: 0.0 + weight
                _merge(regrouped, weight, having)
            by_overlap = regrouped
        room = CANDIDATE_BUDGET - len(candidates)
        chosen: list[str] = []
        for overlap in sorted(by_overlap, reverse=True):  # most overlap first, ties by policy id
            if len(chosen) >= room:
                break
            chosen.extend(sorted(by_overlap[overlap])[:room - len(chosen)])
        candidates.update(chosen)

    def _schema_candidates(self, question: QuestionFeatures) -> set[str]:
        """Policies that share a schema object with the question, named or spelled out in words."""
        found: set[str] = set()
        for name in question.document.objects:
            found.update(self._objects.get(name, ()))
        words = sorted(word for word in question.terms if word in self._mention_words)
        if len(words) <= MENTION_SUBSET_LIMIT:
            for size in range(MENTION_WORDS[0], min(MENTION_WORDS[1], len(words)) + 1):
                for subset in combinations(words, size):
                    found.update(self._mentions.get(frozenset(subset), ()))
        else:
            for word in words:
                for object_words in self._mention_words[word]:
                    if object_words <= question.terms:
                        found.update(self._mentions[object_words])
        return found


def _best_first(item: tuple[float, str, tuple[float, float, float]]) -> tuple[float, str]:
    """Highest score first, ties by policy id: equal requests get equal answers."""
    return item[0], item[1]


def _merge(groups: dict[float, set[str]], overlap: float, policies: set[str]) -> None:
    """Add ``policies`` to the group of ``overlap``; two ways to one sum make one group."""
    groups[overlap] = groups[overlap] | policies if overlap in groups else policies


def _discard(index: dict, key: object, policy_id: str) -> bool:
    """Drop ``policy_id`` from ``index[key]``; True when the key is gone with it."""
    entries = index[key]
    del entries[policy_id]
    if not entries:
        del index[key]
        return True
    return False


class _Frequencies(Mapping[str, int]):
    """Document frequencies read off the postings, without copying them."""

    def __init__(self, postings: Mapping[str, Mapping[str, int]]) -> None:
        self._postings = postings

    def __getitem__(self, unit: str) -> int:
        return len(self._postings[unit])

    def get(self, unit: str, default: int = 0) -> int:  # type: ignore[override]
        posting = self._postings.get(unit)
        return len(posting) if posting is not None else default

    def __iter__(self):
        return iter(self._postings)

    def __len__(self) -> int:
        return len(self._postings)
