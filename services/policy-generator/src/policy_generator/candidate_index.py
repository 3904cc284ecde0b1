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
from collections.abc import Container, Iterable, Iterator, Mapping

import numpy as np

from policy_generator.dedup import COMPARABLE_STATUSES, SCORE_PLACES, policy_document, ranking_key
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


class _PostingTable:
    """For each key (a term, schema object or trigram), the slots (policies) holding it, with a weight for each
    where the table has weights; order not kept.

    Kept as Python lists, which take an entry for a fraction of what a numpy array's item assignment costs, and
    read as numpy arrays built on first use after a change: the lists change in bursts (a committed batch's
    policies, a batch's drafts), between which they are read by many rankings. One call adds or removes all the
    keys of a policy, a loop without a call per key.
    """

    __slots__ = ("_arrays", "_slots", "_weights")

    def __init__(self, weighted: bool) -> None:
        self._slots: dict[str, list[int]] = {}
        self._weights: dict[str, list[float]] | None = {} if weighted else None
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # built from the lists, by key

    def __contains__(self, key: str) -> bool:
        return key in self._slots

    def add(self, slot: int, keys: Iterable[str], weights: Iterable[float] = ()) -> None:
        """Append ``slot`` to the lists of ``keys`` (with its weight in each, for a weighted table)."""
        slots, arrays = self._slots, self._arrays
        for key in keys:
            held = slots.get(key)
            if held is None:
                slots[key] = [slot]
            else:
                held.append(slot)
                arrays.pop(key, None)
        if self._weights is not None:
            table = self._weights
            for key, weight in zip(keys, weights, strict=True):
                weighed = table.get(key)
                if weighed is None:
                    table[key] = [weight]
                else:
                    weighed.append(weight)

    def discard(self, slot: int, keys: Iterable[str]) -> None:
        """Remove ``slot`` from the lists of ``keys`` (the last entry of each takes its place)."""
        for key in keys:
            held = self._slots[key]
            position = held.index(slot)
            last = held.pop()
            weighed = self._weights[key] if self._weights is not None else None
            weight = weighed.pop() if weighed is not None else 0.0
            if not held:
                del self._slots[key]
                if self._weights is not None:
                    del self._weights[key]
            elif position < len(held):
                held[position] = last
                if weighed is not None:
                    weighed[position] = weight
            self._arrays.pop(key, None)

    def held(self, key: str) -> np.ndarray:
        """The slots holding ``key``, as an array not to be changed."""
        return self._array(key)[0]

    def weighed(self, key: str) -> np.ndarray:
        """Their weights, in the order of ``held``, as an array not to be changed."""
        weights = self._array(key)[1]
        assert weights is not None
        return weights

    def _array(self, key: str) -> tuple[np.ndarray, np.ndarray | None]:
        arrays = self._arrays.get(key)
        if arrays is None:
            weights = np.array(self._weights[key], dtype=np.float64) if self._weights is not None else None
            arrays = self._arrays[key] = (np.array(self._slots[key], dtype=np.intp), weights)
        return arrays


class CandidateIndex:
    """The comparable (pending or active) policies with their documents and postings; ranks them exactly."""

    def __init__(self) -> None:
        self._slot_of: dict[str, int] = {}
        # By slot; a freed slot (None) is given to the next policy added.
        self._keys: list[str | None] = []
        self._policies: list[Policy | None] = []
        self._documents: list[Document | None] = []
        self._free: list[int] = []
        self._in_use = np.zeros(0, dtype=bool)
        self._object_mass = np.zeros(0, dtype=np.float64)
        self._trigram_count = np.zeros(0, dtype=np.float64)
        self._terms = _PostingTable(weighted=True)  # weights: the policy's weight of the term ÷ its vector's norm
        self._objects = _PostingTable(weighted=True)  # weights: the policy's weight of the object
        self._trigrams = _PostingTable(weighted=False)

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    def put(self, policy: Policy, key: str | None = None) -> None:
        """Index the current version of ``policy`` under ``key`` (its id unless given): added, replaced, or removed
        when it is no longer comparable."""
        key = policy.policy_id if key is None else key
        if policy.status not in COMPARABLE_STATUSES:
            self.remove(key)
            return
        document = policy_document(policy)
        slot = self._slot_of.get(key)
        if slot is not None:
            current = self._documents[slot]
            if current is document or current == document:
                self._policies[slot] = policy  # the same text (more evidence, approved): the postings stand
                return
            self.remove(key)
        self._add(key, policy, document)

    def remove(self, key: str) -> None:
        """Forget the policy indexed under ``key`` (nothing happens for a key not indexed)."""
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        document = self._documents[slot]
        assert document is not None
        if document.norm:
            self._terms.discard(slot, document.vector)
        self._objects.discard(slot, document.objects)
        self._trigrams.discard(slot, document.trigrams)
        self._keys[slot] = self._policies[slot] = self._documents[slot] = None
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

    def reaches(self, probe: Document, threshold: float, keys: Container[str]) -> bool:
        """Whether any policy indexed under one of ``keys`` scores at least ``threshold`` against ``probe``, its
        score rounded as candidates show it (``dedup.SCORE_PLACES``)."""
        if len(self._slot_of) <= SCAN_AT_MOST:
            near = [slot for slot, key in enumerate(self._keys) if key is not None]
        else:
            # The estimate is the score but for rounding, or above it: only a policy estimated within rounding
            # of the threshold can reach it, and there are rarely any.
            estimates = self._estimates(probe)
            estimates[~self._in_use[:len(estimates)]] = -np.inf
            near = np.flatnonzero(estimates >= threshold - 0.5 * 10 ** -SCORE_PLACES - EPSILON).tolist()
        return any(self._keys[slot] in keys
                   and round(similarity_docs(probe, self._documents[slot]), SCORE_PLACES) >= threshold
                   for slot in near)

    def _estimates(self, probe: Document) -> np.ndarray:
        """``similarity_docs(probe, ·)`` of every slot, but for rounding (free slots hold nonsense)."""
        slots = len(self._policies)
        object_mass, trigram_count = self._object_mass[:slots], self._trigram_count[:slots]
        postings = self._terms
        terms = [(weight, term) for term, weight in probe.vector.items() if term in postings]
        if terms and probe.norm:
            dot = np.bincount(np.concatenate([postings.held(term) for _, term in terms]),
                              weights=np.concatenate([weight * postings.weighed(term) for weight, term in terms]),
                              minlength=slots)
            term = np.minimum(1.0, dot / probe.norm)
        else:
            term = np.zeros(slots)
        trigrams = [self._trigrams.held(trigram) for trigram in probe.trigrams if trigram in self._trigrams]
        if trigrams:
            shared = np.bincount(np.concatenate(trigrams), minlength=slots)
            # Never 0 where something is shared; elsewhere the Jaccard is 0 (and so is trigram_similarity's).
            union = np.maximum(len(probe.trigrams) + trigram_count - shared, 1.0)
            trigram = shared / union
        else:
            trigram = np.zeros(slots)
        base = 0.8 * term + 0.2 * trigram
        postings = self._objects
        objects = [(weight, name) for name, weight in probe.objects.items() if name in postings]
        if objects:
            held = np.concatenate([postings.held(name) for _, name in objects])
            common = np.bincount(held, weights=np.concatenate([np.minimum(weight, postings.weighed(name))
                                                               for weight, name in objects]), minlength=slots)
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

    def _add(self, key: str, policy: Policy, document: Document) -> None:
        slot = self._free.pop() if self._free else self._new_slot()
        self._slot_of[key] = slot
        self._keys[slot] = key
        self._policies[slot] = policy
        self._documents[slot] = document
        self._in_use[slot] = True
        self._object_mass[slot] = document.object_mass
        self._trigram_count[slot] = len(document.trigrams)
        if document.norm:
            norm = document.norm
            self._terms.add(slot, document.vector, [weight / norm for weight in document.vector.values()])
        self._objects.add(slot, document.objects, document.objects.values())
        self._trigrams.add(slot, document.trigrams)

    def _new_slot(self) -> int:
        slot = len(self._policies)
        self._keys.append(None)
        self._policies.append(None)
        self._documents.append(None)
        if slot == len(self._in_use):
            capacity = max(64, 2 * slot)
            self._in_use = np.resize(self._in_use, capacity)
            self._in_use[slot:] = False
            self._object_mass = np.resize(self._object_mass, capacity)
            self._trigram_count = np.resize(self._trigram_count, capacity)
        return slot


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
