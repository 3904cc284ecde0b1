"""The generator's own view of existing policies, rebuilt from the decision and review topics.

Services share no tables: the generator learns which policies exist by reading the events that created
and changed them. Decisions of the current transaction are staged, visible to later feedback of the same
batch, and either kept on commit or dropped on abort.

The committed pending and active policies are also kept in a ``CandidateIndex``, updated with every change, so
that ranking a feedback's candidates does not score every known policy (``rank_candidates``).
"""

from __future__ import annotations

import threading
from collections import ChainMap
from collections.abc import Iterable, MutableMapping, Sequence

from policy_generator.candidate_index import CandidateIndex
from policy_generator.context import GenerationContext
from policy_generator.dedup import as_candidates, feedback_document
from policy_generator.providers.base import Candidate
from policyloop_common.events import (
    REVIEW_OUTCOME,
    PolicyEdited,
    PolicyGenerated,
    PolicyGenerationFailed,
    PolicyImported,
    PolicyReviewed,
    PolicySkipped,
    SkipReason,
    edited,
)
from policyloop_common.policy import Policy, PolicyStatus

# Taken out of service by a person.
OUT_OF_SERVICE = (PolicyStatus.REJECTED, PolicyStatus.RETIRED)

IndexedEvent = (PolicyGenerated | PolicySkipped | PolicyGenerationFailed | PolicyReviewed | PolicyImported
                | PolicyEdited)


# How many ids of events applied at their commit are kept until the feed reads them back (see ``applied_at_commit``).
READ_BACK_HELD = 65_536


class PolicyIndex:
    """Policies by id and the feedback ids already decided; safe to read and write from several threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._policies: MutableMapping[str, Policy] = {}
        # None in a view with staged changes applied (see ``_with_staged``): only committed policies are indexed.
        self._candidates: CandidateIndex | None = CandidateIndex()
        self._decided: set[str] = set()
        self._decided_in_runs: set[tuple[str, str]] = set()  # (feedback id, re-analysis run id)
        self._staged: list[IndexedEvent] = []
        # The policies the staged events change, as they stand with them applied; built when first asked for and
        # dropped at each change, since every ranking while a transaction is open lays them over the index.
        self._staged_layer: dict[str, Policy] | None = None
        # The CloudEvent ids of the staged events, and of those applied at their commit and not read back yet.
        self._staged_ids: list[str] = []
        self._applied_ids: dict[str, bool] = {}
        self._superseded: set[str] = set()
        # The rejected and retired policies, few: what a re-analysed feedback is checked against.
        self._out_of_service: dict[str, Policy] = {}

    def apply(self, event: IndexedEvent) -> None:
        """Apply a committed event; applying the same event twice changes nothing."""
        with self._lock:
            self._apply(event)
            self._staged_layer = None

    def stage(self, event: IndexedEvent, event_id: str | None = None) -> None:
        """Apply a decision of the open transaction, remembered so that an abort can drop it; ``event_id`` is the
        id of the CloudEvent that carries it."""
        with self._lock:
            self._staged.append(event)
            if event_id is not None:
                self._staged_ids.append(event_id)
            self._staged_layer = None

    def commit_staged(self) -> None:
        """The transaction committed: its decisions become part of the index."""
        with self._lock:
            for event in self._staged:
                self._apply(event)
            self._staged.clear()
            self._staged_layer = None
            self._applied_ids.update(dict.fromkeys(self._staged_ids, True))
            self._staged_ids.clear()
            # An event the feed read back before it was applied here is never asked for: only the oldest go.
            for _ in range(len(self._applied_ids) - READ_BACK_HELD):
                del self._applied_ids[next(iter(self._applied_ids))]

    def discard_staged(self) -> None:
        """The transaction aborted: forget its decisions."""
        with self._lock:
            self._staged.clear()
            self._staged_ids.clear()
            self._staged_layer = None

    def applied_at_commit(self, event_id: str) -> bool:
        """Whether the event of this id is one this index applied when its transaction committed, and not asked
        about before. The feed then passes it over: decoding and applying it again changes nothing, except where
        an event committed since was applied first (a review read before the decision it follows, from another
        topic), which the second application would undo."""
        with self._lock:
            return self._applied_ids.pop(event_id, False)

    def is_decided(self, feedback_id: str, run_id: str | None = None) -> bool:
        """True when a decision for this feedback is committed or staged; with ``run_id``, a decision of that
        re-analysis run."""
        with self._lock:
            if run_id is None:
                committed = feedback_id in self._decided
            else:
                committed = (feedback_id, run_id) in self._decided_in_runs
            return committed or any(getattr(event, "feedback_id", None) == feedback_id
                                    and (run_id is None or getattr(event, "reanalysis_run_id", None) == run_id)
                                    for event in self._staged)

    def policies(self) -> list[Policy]:
        """Every known policy with the staged changes applied."""
        with self._lock:
            if not self._staged:
                return list(self._policies.values())
            return list(self._with_staged(dict(self._policies)).values())

    def rank_candidates(self, context: GenerationContext, k: int, made: Sequence[Policy] = ()) -> list[Candidate]:
        """``dedup.rank_candidates(context, policies, k)`` over every known policy, staged changes applied and the
        policies ``made`` (not in the index yet, e.g. earlier in the same batch) laid over them, each replacing
        the known version of its id; found through the candidate index instead of scoring every policy."""
        probe = feedback_document(context)
        with self._lock:
            assert self._candidates is not None
            return as_candidates(self._candidates.rank(probe, k, self._overlay(made)))

    def out_of_service(self, made: Sequence[Policy] = ()) -> list[Policy]:
        """The rejected and retired policies, staged changes applied and ``made`` laid over them (as
        ``policies()`` filtered by status, in policy id order) without copying every known policy."""
        with self._lock:
            found = dict(self._out_of_service)
            for policy_id, policy in self._overlay(made).items():
                if policy.status in OUT_OF_SERVICE:
                    found[policy_id] = policy
                else:
                    found.pop(policy_id, None)
            # Only these are sorted: the overlay holds a whole transaction's policies while one is open.
            return [found[policy_id] for policy_id in sorted(found)]

    def get(self, policy_id: str) -> Policy | None:
        """One committed policy by id."""
        with self._lock:
            return self._policies.get(policy_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._policies)

    def _overlay(self, made: Sequence[Policy]) -> dict[str, Policy]:
        """Only what differs from the committed policies, by id: the staged changes (written to a layer over
        them), then the policies ``made``. Called under the lock."""
        overlay: dict[str, Policy] = {}
        if self._staged:
            if self._staged_layer is None:
                layer: dict[str, Policy] = {}
                self._with_staged(ChainMap(layer, self._policies))
                self._staged_layer = layer
            overlay.update(self._staged_layer)
        overlay.update((policy.policy_id, policy) for policy in made)
        return overlay

    def _with_staged(self, policies: MutableMapping[str, Policy]) -> MutableMapping[str, Policy]:
        """``policies`` (a copy of the committed ones, or a layer over them) with the staged events applied."""
        view = PolicyIndex()
        view._candidates = None
        view._policies = policies
        view._superseded = set(self._superseded)
        for event in self._staged:
            view._apply(event)
        return view._policies

    def _put(self, policy: Policy) -> None:
        """Every change of a policy comes through here, so that the candidate index follows each one."""
        self._policies[policy.policy_id] = policy
        if policy.status in OUT_OF_SERVICE:
            self._out_of_service[policy.policy_id] = policy
        else:
            self._out_of_service.pop(policy.policy_id, None)
        if self._candidates is not None:
            self._candidates.put(policy)

    def _apply(self, event: IndexedEvent) -> None:
        if isinstance(event, PolicyReviewed):
            self._apply_review(event)
            return
        if isinstance(event, PolicyEdited):
            current = self._policies.get(event.policy_id)
            if current is not None and event.version > current.version:
                self._put(edited(current, event))
            return
        if isinstance(event, PolicyImported):
            # Like the store: an id already known keeps what it has.
            if event.policy.policy_id not in self._policies:
                self._put(event.policy)
            return
        # A failed generation is not a decision: the feedback may come back from the dead-letter topic.
        if not isinstance(event, PolicyGenerationFailed):
            self._decided.add(event.feedback_id)
            if event.reanalysis_run_id is not None:
                self._decided_in_runs.add((event.feedback_id, event.reanalysis_run_id))
        if isinstance(event, PolicyGenerated):
            current = self._policies.get(event.policy.policy_id)
            if current is None or event.policy.version >= current.version:
                policy = event.policy
                if policy.policy_id in self._superseded:
                    policy = policy.model_copy(update={"status": PolicyStatus.SUPERSEDED})
                self._put(policy)
            for replaced in event.decision.supersedes:
                # Like the store: the contradicted policy stays, superseded, and is no longer a candidate; it may
                # be read after the policy that replaced it (another partition), hence the set.
                self._superseded.add(replaced)
                old = self._policies.get(replaced)
                if old is not None:
                    self._put(old.model_copy(update={"status": PolicyStatus.SUPERSEDED}))
        elif isinstance(event, PolicySkipped) and event.reason is SkipReason.DUPLICATE_POLICY:
            self._add_evidence(event.duplicate_of, event.feedback_id)

    def _apply_review(self, event: PolicyReviewed) -> None:
        policy = self._policies.get(event.policy_id)
        if policy is not None:
            self._put(policy.model_copy(update={"status": REVIEW_OUTCOME[event.action]}))

    def _add_evidence(self, policy_id: str | None, feedback_id: str) -> None:
        policy = self._policies.get(policy_id or "")
        if policy is None or feedback_id in policy.source_feedback_ids:
            return
        sources = [*policy.source_feedback_ids, feedback_id]
        self._put(policy.model_copy(update={"source_feedback_ids": sources, "support_count": len(sources)}))


def laid_over(policies: Iterable[Policy], made: Sequence[Policy]) -> list[Policy]:
    """``policies`` with ``made`` laid over them: each policy of ``made`` replaces the one of its id, or joins."""
    if not made:
        return list(policies)
    return list({policy.policy_id: policy for policy in [*policies, *made]}.values())
