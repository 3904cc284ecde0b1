"""The k best candidates among many policies, exactly as ``dedup.rank_candidates`` ranks them, for a small part of
its cost.

``rank_candidates`` scores a feedback against every pending or active policy with ``similarity_docs``, one Python
call per policy; with thousands of policies known that loop was most of the generator's CPU. This index keeps
the comparable policies' prepared documents with posting lists, as numpy arrays, of their terms (with each
weight divided by the policy's norm), schema objects (with each weight) and character trigrams, and estimates
the similarity of every policy at once from the postings of the feedback's terms, objects and trigrams:

    T = Σ over shared terms of w_feedback · w_policy / (|feedback| · |policy|)     a sparse dot product
    C = shared trigrams / (|A| + |B| − shared trigrams)                            shared ones counted
    O = Σ over shared objects of min(w_feedback, w_policy) / max(1, min(Σ w_feedback, Σ w_policy))

then ``similarity_docs``' formula on those arrays. Each of these is one ``bincount`` over the postings read, so
the cost grows with the postings of the feedback's own terms and trigrams, and in C, not in Python.

The estimates differ from ``similarity_docs`` only by rounding (the sums run in another order): by far less
than EPSILON. Policies are then scored exactly, by ``similarity_docs`` itself, in decreasing order of estimate,
until the k-th best exact score is strictly above the next estimate plus EPSILON: no policy left can then beat
it or tie with it (ties go to the older policy, then the smaller id). So the result is ``rank_candidates``' own
(the same policies, order and scores) from about k exact scorings instead of one per policy.

Every policy is estimated rather than most of them skipped by upper bounds, because bounds do not skip many
here: the trigram part alone moves a score by up to 0.2, and the k-th best score of a feedback is often within
that of thousands of policies (a lesson on a table many lessons name, a comment that names nothing), so any
bound that does not count the shared trigrams leaves most policies to score one by one.

Not safe for concurrent use by itself: ``PolicyIndex`` holds it under its lock.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping

import numpy as np

from policy_generator.dedup import COMPARABLE_STATUSES, policy_document, ranking_key
from policyloop_common.policy import Policy
from policyloop_common.text_matching import Document, similarity_docs

# How far an estimate may be below the exact score and still count as its bound. The estimates differ from
# ``similarity_docs`` by rounding only (around 1e-16 for values at most 1); 1e-9 is far above that and far below
# any difference of scores that matters (candidates show four decimals).
EPSILON = 1e-9
# With this many comparable policies or fewer, scoring each costs less than estimating them all.
SCAN_AT_MOST = 16
# How many of the best estimates are put in order first; the rest only when those do not settle the k best.
FIRST_ORDERED = 64


class _Postings:
    """The slots (policies) holding one term, object or trigram, with a weight for each where it has weights;
    growable, order not kept."""

    __slots__ = ("size", "slots", "weights")

    def __init__(self, weighted: bool) -> None:
        self.slots = np.empty(4, dtype=np.int32)
        self.weights = np.empty(4, dtype=np.float64) if weighted else None
        self.size = 0

    def add(self, slot: int, weight: float = 0.0) -> None:
        """Append a slot (and its weight)."""
        if self.size == len(self.slots):
            self.slots = np.resize(self.slots, 2 * self.size)
            if self.weights is not None:
                self.weights = np.resize(self.weights, 2 * self.size)
        self.slots[self.size] = slot
        if self.weights is not None:
            self.weights[self.size] = weight
        self.size += 1

    def discard(self, slot: int) -> None:
        """Remove a slot: the last entry takes its place."""
        position = int(np.flatnonzero(self.slots[:self.size] == slot)[0])
        self.size -= 1
        self.slots[position] = self.slots[self.size]
        if self.weights is not None:
            self.weights[position] = self.weights[self.size]

    def held(self) -> np.ndarray:
        """The slots, a view valid until the next change."""
        return self.slots[:self.size]

    def weighed(self) -> np.ndarray:
        """The weights, in the order of ``held``; a view valid until the next change."""
        assert self.weights is not None
        return self.weights[:self.size]


class CandidateIndex:
    """The comparable (pending or active) policies with their documents and postings; ranks them exactly."""

    def __init__(self) -> None:
        self._slot_of: dict[str, int] = {}
        # By slot; a freed slot (None) is given to the next policy added.
        self._policies: list[Policy | None] = []
        self._documents: list[Document | None] = []
        self._free: list[int] = []
        self._in_use = np.zeros(0, dtype=bool)
        self._object_mass = np.zeros(0, dtype=np.float64)
        self._trigram_count = np.zeros(0, dtype=np.float64)
        self._terms: dict[str, _Postings] = {}  # weights: the policy's weight of the term ÷ its vector's norm
        self._objects: dict[str, _Postings] = {}  # weights: the policy's weight of the object
        self._trigrams: dict[str, _Postings] = {}

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, policy_id: object) -> bool:
        return policy_id in self._slot_of

    def put(self, policy: Policy) -> None:
        """Index the current version of ``policy``: added, replaced, or removed when it is no longer comparable."""
        if policy.status not in COMPARABLE_STATUSES:
            self.remove(policy.policy_id)
            return
        document = policy_document(policy)
        slot = self._slot_of.get(policy.policy_id)
        if slot is not None:
            current = self._documents[slot]
            if current is document or current == document:
                self._policies[slot] = policy  # the same text (more evidence, approved): the postings stand
                return
            self.remove(policy.policy_id)
        self._add(policy, document)

    def remove(self, policy_id: str) -> None:
        """Forget a policy (nothing happens for one not indexed)."""
        slot = self._slot_of.pop(policy_id, None)
        if slot is None:
            return
        document = self._documents[slot]
        assert document is not None
        for postings, keys in self._postings_of(document):
            for key in keys:
                held = postings[key]
                held.discard(slot)
                if not held.size:
                    del postings[key]
        self._policies[slot] = self._documents[slot] = None
        self._in_use[slot] = False
        self._free.append(slot)

    def rank(self, probe: Document, k: int, overlay: Mapping[str, Policy] | None = None) -> list[tuple[float, Policy]]:
        """The ``k`` best (score, policy) pairs for ``probe``, best first, as ``dedup.rank_candidates`` orders them.

        ``overlay`` holds versions newer than the indexed ones (by id), or policies not indexed yet: each is
        ranked instead of the indexed policy of its id, and only if it is comparable.
        """
        if k <= 0:
            return []
        overlay = overlay or {}
        ranking = _Ranking(probe, k)
        for policy in overlay.values():
            if policy.status in COMPARABLE_STATUSES:
                ranking.score(policy, policy_document(policy))
        replaced = [self._slot_of[policy_id] for policy_id in overlay if policy_id in self._slot_of]
        if len(self._slot_of) - len(replaced) <= SCAN_AT_MOST:
            for slot, policy in enumerate(self._policies):
                if policy is not None and slot not in replaced:
                    ranking.score(policy, self._documents[slot])
            return ranking.best()
        estimates = self._estimates(probe)
        estimates[~self._in_use[:len(estimates)]] = -np.inf
        estimates[replaced] = -np.inf
        for slot in _best_first(estimates):
            estimate = estimates[slot]
            if estimate == -np.inf or ranking.settled_above(estimate + EPSILON):
                break
            ranking.score(self._policies[slot], self._documents[slot])
        return ranking.best()

    def _estimates(self, probe: Document) -> np.ndarray:
        """``similarity_docs(probe, ·)`` of every slot, but for rounding (free slots hold nonsense)."""
        slots = len(self._policies)
        object_mass, trigram_count = self._object_mass[:slots], self._trigram_count[:slots]
        terms = [(weight, self._terms[term]) for term, weight in probe.vector.items() if term in self._terms]
        if terms and probe.norm:
            dot = np.bincount(np.concatenate([held.held() for _, held in terms]),
                              weights=np.concatenate([weight * held.weighed() for weight, held in terms]),
                              minlength=slots)
            term = np.minimum(1.0, dot / probe.norm)
        else:
            term = np.zeros(slots)
        trigrams = [self._trigrams[trigram].held() for trigram in probe.trigrams if trigram in self._trigrams]
        if trigrams:
            shared = np.bincount(np.concatenate(trigrams), minlength=slots)
            # Never 0 where something is shared; elsewhere the Jaccard is 0 (and so is trigram_similarity's).
            union = np.maximum(len(probe.trigrams) + trigram_count - shared, 1.0)
            trigram = shared / union
        else:
            trigram = np.zeros(slots)
        base = 0.8 * term + 0.2 * trigram
        objects = [(weight, self._objects[name]) for name, weight in probe.objects.items() if name in self._objects]
        if objects:
            held = np.concatenate([held.held() for _, held in objects])
            common = np.bincount(held, weights=np.concatenate([np.minimum(weight, held.weighed())
                                                               for weight, held in objects]), minlength=slots)
            overlap = np.minimum(1.0, common / np.maximum(1.0, np.minimum(probe.object_mass, object_mass)))
            sharing = np.bincount(held, minlength=slots) > 0
        else:
            overlap = np.zeros(slots)
            sharing = np.zeros(slots, dtype=bool)
        # Where a shared object has no weight the exact score takes another branch, lower than this one: the
        # estimate is then above the score, still a bound.
        disjoint = 0.8 * base if probe.object_mass >= 1.0 else base
        score = np.where(sharing, base + (1.0 - base) * 0.6 * overlap,
                         np.where(object_mass >= 1.0, disjoint, base))
        return np.clip(score, 0.0, 1.0)

    def _add(self, policy: Policy, document: Document) -> None:
        slot = self._free.pop() if self._free else self._new_slot()
        self._slot_of[policy.policy_id] = slot
        self._policies[slot] = policy
        self._documents[slot] = document
        self._in_use[slot] = True
        self._object_mass[slot] = document.object_mass
        self._trigram_count[slot] = len(document.trigrams)
        if document.norm:
            for term, weight in document.vector.items():
                self._terms.setdefault(term, _Postings(weighted=True)).add(slot, weight / document.norm)
        for name, weight in document.objects.items():
            self._objects.setdefault(name, _Postings(weighted=True)).add(slot, weight)
        for trigram in document.trigrams:
            self._trigrams.setdefault(trigram, _Postings(weighted=False)).add(slot)

    def _new_slot(self) -> int:
        slot = len(self._policies)
        self._policies.append(None)
        self._documents.append(None)
        if slot == len(self._in_use):
            capacity = max(64, 2 * slot)
            self._in_use = np.resize(self._in_use, capacity)
            self._in_use[slot:] = False
            self._object_mass = np.resize(self._object_mass, capacity)
            self._trigram_count = np.resize(self._trigram_count, capacity)
        return slot

    def _postings_of(self, document: Document) -> list[tuple[dict[str, _Postings], list[str]]]:
        """Which posting lists hold a document."""
        return [(self._terms, list(document.vector) if document.norm else []),
                (self._objects, list(document.objects)), (self._trigrams, list(document.trigrams))]


class _Ranking:
    """The exact scores taken for one ranking, and the k-th best of them."""

    def __init__(self, probe: Document, k: int) -> None:
        self.probe = probe
        self.k = k
        self.scored: list[tuple[float, Policy]] = []
        self._best: list[float] = []  # min-heap of the k best scores

    def score(self, policy: Policy, document: Document) -> None:
        """Score one policy exactly, as ``rank_candidates`` does."""
        value = similarity_docs(self.probe, document)
        self.scored.append((value, policy))
        if len(self._best) < self.k:
            heapq.heappush(self._best, value)
        elif value > self._best[0]:
            heapq.heapreplace(self._best, value)

    def settled_above(self, bound: float) -> bool:
        """True once k scores are strictly above ``bound``: nothing at or below it can be among the k best."""
        return len(self._best) >= self.k and self._best[0] > bound

    def best(self) -> list[tuple[float, Policy]]:
        """The k best, best first, ties to the older policy then the smaller id."""
        return heapq.nsmallest(self.k, self.scored, key=ranking_key)


def _best_first(estimates: np.ndarray) -> Iterator[int]:
    """Slots in decreasing order of estimate: the first ``FIRST_ORDERED`` sorted at once, the rest only if asked."""
    if len(estimates) <= FIRST_ORDERED:
        yield from np.argsort(-estimates, kind="stable").tolist()
        return
    head = np.argpartition(-estimates, FIRST_ORDERED - 1)[:FIRST_ORDERED]
    yield from head[np.argsort(-estimates[head], kind="stable")].tolist()
    # Every estimate left is at most the head's last one (argpartition); in order now.
    taken = set(head.tolist())
    yield from (slot for slot in np.argsort(-estimates, kind="stable").tolist() if slot not in taken)
