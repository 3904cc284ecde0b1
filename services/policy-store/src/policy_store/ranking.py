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
    score_policy,
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


@dataclass(frozen=True)
class RankedPolicy:
    """One policy of a ranking, with its score and the parts of it."""

    policy_id: str
    parts: ScoreParts


def _trigrams(word: str) -> frozenset[str]:
    padded = f" {word} "
    return frozenset(padded[i:i + 3] for i in range(len(padded) - 2))


def _spellable(word: str) -> bool:
    return len(word) >= SPELLING_MIN_LENGTH and word.isalpha()


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
        for candidate in set().union(*(self._spelling.get(trigram, ()) for trigram in looked_up)):
            other = self._spelled[candidate]
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
        scored = [RankedPolicy(policy_id, score_policy(query, self._policies[policy_id], corpus))
                  for policy_id in candidates]
        kept = [item for item in scored if item.parts.score >= floor and item.parts.score > 0]
        kept.sort(key=lambda item: (-item.parts.score, item.policy_id))
        return kept[:limit]

    def _top_up(self, candidates: set[str], query: Query, common: list[str]) -> None:
        """Add the policies sharing the most (by weight) of the question's common keywords, up to the budget."""
        overlap: dict[str, float] = {}
        walk = TOP_UP_POSTINGS
        for unit in common:  # rarest first
            if len(self._postings[unit]) > walk:
                break
            walk -= len(self._postings[unit])
            weight = query.weights[unit] * query.idf.get(unit, 1.0)
            for policy_id in self._postings[unit]:
                if policy_id not in candidates:
                    overlap[policy_id] = overlap.get(policy_id, 0.0) + weight
        room = CANDIDATE_BUDGET - len(candidates)
        candidates.update(sorted(overlap, key=lambda policy_id: (-overlap[policy_id], policy_id))[:room])

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
