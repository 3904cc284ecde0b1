"""Evaluating a provider against labelled cases: do equal lessons end as one policy, different ones apart?

Cases are decided in file order as the generator decides feedback: candidates are ranked among the policies
made so far, the provider decides, a NEW decision adds a policy and a DUPLICATE one adds evidence to the
policy it names; with a fast-path threshold, a candidate at or above it takes the feedback first, with no
provider call, as in the generator. The cases format is that of ``tests/data/feedback-cases.jsonl`` (case_id,
group, category, feedback; groups whose name starts with ``NA`` teach nothing).

The similarity report measures what the fast path relies on: every case is scored, through
``dedup.rank_candidates``, against the policy the provider drafts from every lesson case, and the scores are
split into verbatim repeats (a case against its own policy), the same lesson (another case of its group) and
different lessons (another group; a case that teaches nothing is a different lesson from every policy).

    python -m policy_generator.evaluation [cases.jsonl ...]
    python -m policy_generator.evaluation --similarity-report [--same-lesson H5=G1] cases.jsonl ...

print the figures of the offline provider at the thresholds of ``dedup.py``, the generator's defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

from policy_generator.context import GenerationContext, build_context
from policy_generator.dedup import DUPLICATE_THRESHOLD, FAST_PATH_THRESHOLD, find_duplicate, rank_candidates
from policy_generator.providers.base import (
    DecisionRequest,
    PolicyProvider,
    ProviderDecision,
    ProviderError,
    Verdict,
)
from policyloop_common.events import FeedbackSubmitted
from policyloop_common.policy import GeneratorInfo, Policy, PolicyContent, PolicyStatus

NOT_ACTIONABLE_PREFIX = "NA"


@dataclass(frozen=True)
class CaseOutcome:
    """What happened to one case: the verdict, the policy it created or joined, the best candidate's score."""

    case_id: str
    group: str
    verdict: str
    policy_id: str | None
    best_similarity: float | None


@dataclass
class EvaluationReport:
    """The figures of one evaluation run, and what they were computed from."""

    cases: int = 0
    actionable_groups: int = 0
    policies: int = 0
    pairwise_precision: float = 0.0
    pairwise_recall: float = 0.0
    category_accuracy: float = 0.0
    not_actionable_leaks: int = 0  # policies created by cases of an NA group
    actionable_dropped: int = 0  # cases of a lesson group judged not actionable
    decisions_without_llm: int = 0
    fast_path_folds: int = 0  # feedback folded at the fast-path threshold, without a provider call
    failures: int = 0
    outcomes: list[CaseOutcome] = field(default_factory=list)
    created: dict[str, Policy] = field(default_factory=dict)  # the policies at the end, by id

    def lines(self) -> list[str]:
        """The report as printable lines."""
        return [
            f"cases                        {self.cases}",
            f"policies / actionable groups {self.policies} / {self.actionable_groups}",
            f"pairwise precision           {self.pairwise_precision:.3f}",
            f"pairwise recall              {self.pairwise_recall:.3f}",
            f"category accuracy            {self.category_accuracy:.3f}",
            f"policies from NA cases       {self.not_actionable_leaks}",
            f"lesson cases not actionable  {self.actionable_dropped}",
            f"decisions without an LLM     {self.decisions_without_llm} / {self.cases}",
            f"fast-path folds              {self.fast_path_folds}",
            f"provider failures            {self.failures}",
        ]


def load_cases(path: Path) -> list[dict]:
    """The cases of a JSONL file, in file order."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def is_actionable_group(group: str) -> bool:
    """Groups whose name starts with NA teach nothing."""
    return not group.startswith(NOT_ACTIONABLE_PREFIX)


def _context(case: dict, submitted_at: datetime) -> GenerationContext:
    feedback = FeedbackSubmitted(feedback_id=case["case_id"], user_id="evaluation", submitted_at=submitted_at,
                                 **case["feedback"])
    return build_context(feedback)


def _policy(content: PolicyContent, case_id: str, created_at: datetime, provider: PolicyProvider) -> Policy:
    return Policy(**content.model_dump(), policy_id=f"policy-{case_id}", version=1,
                  status=PolicyStatus.PENDING_REVIEW, source_feedback_ids=[case_id], support_count=1,
                  created_at=created_at, updated_at=created_at,
                  generator=GeneratorInfo(provider=provider.name, model=provider.model))


def evaluate_cases(cases: Iterable[dict], provider: PolicyProvider, candidate_count: int = 5,
                   fast_path_threshold: float | None = None) -> EvaluationReport:
    """Decide every case in order against the policies made so far; compare the outcome with the labels.

    With ``fast_path_threshold``, a best candidate at or above it takes the feedback without a provider call,
    as the generator's fast path does.
    """
    cases = list(cases)
    report = EvaluationReport(cases=len(cases))
    policies: dict[str, Policy] = {}
    creator_of: dict[str, dict] = {}  # policy id -> the case that created it
    policy_of: dict[str, str] = {}  # case id -> the policy it created or joined
    started = datetime.now(UTC)
    for position, case in enumerate(cases):
        context = _context(case, started)
        candidates = rank_candidates(context, policies.values(), k=candidate_count)
        best = candidates[0].similarity if candidates else None
        fast = find_duplicate(candidates, fast_path_threshold) if fast_path_threshold is not None else None
        if fast is not None:
            report.fast_path_folds += 1
            decision = ProviderDecision(verdict=Verdict.DUPLICATE, duplicate_of=fast.index, reasoning="fast path")
        else:
            try:
                decision = provider.decide(DecisionRequest(context=context, candidates=candidates))
            except ProviderError:
                report.failures += 1
                report.outcomes.append(CaseOutcome(case["case_id"], case["group"], "failed", None, best))
                continue
        report.decisions_without_llm += decision.llm_calls == 0
        policy_id = None
        if decision.verdict is Verdict.NEW and decision.policy is not None:
            # Distinct creation times keep the candidates' tie-break (older first) deterministic.
            policy = _policy(decision.policy, case["case_id"], started + timedelta(milliseconds=position),
                             provider)
            policies[policy.policy_id] = policy
            creator_of[policy.policy_id] = case
            policy_id = policy.policy_id
        elif (decision.verdict is Verdict.DUPLICATE and decision.duplicate_of is not None
              and 0 <= decision.duplicate_of < len(candidates)):
            original = candidates[decision.duplicate_of].policy
            sources = [*original.source_feedback_ids, case["case_id"]]
            policies[original.policy_id] = original.model_copy(
                update={"source_feedback_ids": sources, "support_count": len(sources)})
            policy_id = original.policy_id
        if policy_id is not None:
            policy_of[case["case_id"]] = policy_id
        outcome = CaseOutcome(case["case_id"], case["group"], decision.verdict.value, policy_id, best)
        report.outcomes.append(outcome)
    report.created = policies
    _score(report, cases, creator_of, policy_of)
    return report


def _score(report: EvaluationReport, cases: list[dict], creator_of: dict[str, dict],
           policy_of: dict[str, str]) -> None:
    actionable = [case for case in cases if is_actionable_group(case["group"])]
    report.actionable_groups = len({case["group"] for case in actionable})
    report.policies = len(report.created)
    report.not_actionable_leaks = sum(not is_actionable_group(case["group"]) for case in creator_of.values())
    report.actionable_dropped = sum(1 for case in actionable if case["case_id"] not in policy_of)
    true_pairs = predicted_pairs = agreed = 0
    for a, b in combinations(actionable, 2):
        same_group = a["group"] == b["group"]
        same_policy = a["case_id"] in policy_of and policy_of[a["case_id"]] == policy_of.get(b["case_id"])
        true_pairs += same_group
        predicted_pairs += same_policy
        agreed += same_group and same_policy
    report.pairwise_precision = agreed / predicted_pairs if predicted_pairs else 1.0
    report.pairwise_recall = agreed / true_pairs if true_pairs else 1.0
    # A policy's category is judged against the label of the lesson group whose case created it.
    judged = [(report.created[policy_id], case) for policy_id, case in creator_of.items()
              if is_actionable_group(case["group"])]
    right = sum(1 for policy, case in judged if policy.category.value == case["category"])
    report.category_accuracy = right / len(judged) if judged else 1.0


@dataclass(frozen=True)
class PairScore:
    """The similarity of one case's feedback to the policy drafted from another (or the same) case."""

    feedback_case: str
    feedback_group: str
    policy_case: str
    policy_group: str
    similarity: float


@dataclass
class SimilarityReport:
    """Scores of every case against the policy drafted from every lesson case, split by how they relate."""

    cases: int = 0
    policies: int = 0
    repeats: list[PairScore] = field(default_factory=list)  # a case against the policy drafted from it
    same_lesson: list[PairScore] = field(default_factory=list)  # against another case's policy, same group
    different_lesson: list[PairScore] = field(default_factory=list)  # against a policy of another group

    def highest_different(self) -> PairScore | None:
        """The different-lesson pair with the highest score: what a fold threshold must stay above."""
        return max(self.different_lesson, key=lambda pair: pair.similarity, default=None)

    def lines(self, thresholds: Sequence[tuple[str, float]] = (("duplicate", DUPLICATE_THRESHOLD),
                                                                 ("fast path", FAST_PATH_THRESHOLD)),
              top: int = 5) -> list[str]:
        """The report as printable lines: distributions, counts at each threshold, the closest other lessons."""
        kinds = [("verbatim repeats", self.repeats), ("same lesson", self.same_lesson),
                 ("different lesson", self.different_lesson)]
        lines = [f"cases / lesson policies      {self.cases} / {self.policies}"]
        for name, pairs in kinds:
            lines.append(f"{name:<28} {_distribution([pair.similarity for pair in pairs])}")
        for name, threshold in thresholds:
            counts = "  ".join(f"{kind} {sum(pair.similarity >= threshold for pair in pairs)}/{len(pairs)}"
                               for kind, pairs in kinds)
            lines.append(f"at or above {threshold:.2f} ({name})".ljust(29) + counts)
        closest = sorted(self.different_lesson, key=lambda pair: -pair.similarity)[:top]
        lines.append("highest different-lesson pairs (feedback -> policy of):")
        lines.extend(f"  {pair.similarity:.4f}  {pair.feedback_case} ({pair.feedback_group}) -> "
                     f"{pair.policy_case} ({pair.policy_group})" for pair in closest)
        return lines


def _distribution(values: list[float]) -> str:
    if not values:
        return "n=0"
    low, median, high = (statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1
                         else values * 3)
    return (f"n={len(values)}  min {min(values):.3f}  q1 {low:.3f}  median {median:.3f}  q3 {high:.3f}  "
            f"max {max(values):.3f}")


def similarity_report(cases: Iterable[dict], provider: PolicyProvider) -> SimilarityReport:
    """Score every case against the policy ``provider`` drafts from each lesson case, as the generator ranks.

    Each lesson case (a group not starting with NA) is drafted on its own, with no candidates; a case the
    provider finds not actionable, or cannot decide, drafts no policy. The scores are those of
    ``dedup.rank_candidates``, the ones the fast path and the provider see.
    """
    cases = list(cases)
    started = datetime.now(UTC)
    contexts = {case["case_id"]: _context(case, started) for case in cases}
    group_of = {case["case_id"]: case["group"] for case in cases}
    policies: list[Policy] = []
    drafted_from: dict[str, str] = {}  # policy id -> case id
    for position, case in enumerate(cases):
        if not is_actionable_group(case["group"]):
            continue
        try:
            decision = provider.decide(DecisionRequest(context=contexts[case["case_id"]]))
        except ProviderError:
            continue
        if decision.verdict is Verdict.NEW and decision.policy is not None:
            policy = _policy(decision.policy, case["case_id"], started + timedelta(milliseconds=position),
                             provider)
            policies.append(policy)
            drafted_from[policy.policy_id] = case["case_id"]
    report = SimilarityReport(cases=len(cases), policies=len(policies))
    for case in cases:
        for candidate in rank_candidates(contexts[case["case_id"]], policies, k=len(policies)):
            source = drafted_from[candidate.policy.policy_id]
            pair = PairScore(case["case_id"], case["group"], source, group_of[source], candidate.similarity)
            if source == case["case_id"]:
                report.repeats.append(pair)
            elif group_of[source] == case["group"]:
                report.same_lesson.append(pair)
            else:
                report.different_lesson.append(pair)
    return report


def _same_lesson(value: str) -> tuple[str, str]:
    group, _, lesson = value.partition("=")
    if not group or not lesson:
        raise argparse.ArgumentTypeError("expected GROUP=GROUP, e.g. H5=G1")
    return group, lesson


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate the offline provider on cases files (or report similarities) and print the figures."""
    from policy_generator.providers.offline import OfflineProvider

    default = Path(__file__).resolve().parents[4] / "tests" / "data" / "feedback-cases.jsonl"
    parser = argparse.ArgumentParser(prog="python -m policy_generator.evaluation", description=__doc__.split(
        "\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[default],
                        help="JSONL cases files, read together in order (default: the labelled sample)")
    parser.add_argument("--similarity-report", action="store_true",
                        help="score every case against every lesson's policy instead of deciding in order")
    parser.add_argument("--same-lesson", action="append", type=_same_lesson, default=[], metavar="GROUP=GROUP",
                        help="read the first group as the second (files labelled apart may name one lesson "
                             "twice); repeatable")
    args = parser.parse_args(argv)
    renamed = dict(args.same_lesson)
    cases = [{**case, "group": renamed.get(case["group"], case["group"])}
             for path in args.paths for case in load_cases(path)]
    names = ", ".join(str(path) for path in args.paths)
    provider = OfflineProvider(duplicate_threshold=DUPLICATE_THRESHOLD)
    if args.similarity_report:
        print(f"similarities of the offline provider's policies on {names}")
        print("\n".join(similarity_report(cases, provider).lines()))
        return 0
    report = evaluate_cases(cases, provider, fast_path_threshold=FAST_PATH_THRESHOLD)
    print(f"evaluation of the offline provider on {names} "
          f"(duplicate threshold {DUPLICATE_THRESHOLD:.2f}, fast path {FAST_PATH_THRESHOLD:.2f})")
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
