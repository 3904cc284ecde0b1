"""Evaluating decisions against labelled cases: do equal lessons end as one policy and different ones apart?

``python -m policy_generator.evaluation [cases.jsonl]`` prints the figures; the cases format is that of
``shared/data/feedback-cases.jsonl`` (case_id, group, category, feedback; groups starting with NA teach nothing).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

from policy_generator.decision import DecisionMaker
from policy_generator.policy_index import PolicyIndex
from policy_generator.providers.base import PolicyProvider
from policyloop_common.events import FeedbackSubmitted, PolicyGenerated, PolicySkipped, SkipReason


@dataclass
class EvaluationReport:
    """The figures of one evaluation run."""

    cases: int = 0
    actionable_groups: int = 0
    policies: int = 0
    pairwise_precision: float = 0.0
    pairwise_recall: float = 0.0
    category_accuracy: float = 0.0
    not_actionable_leaks: int = 0  # policies made from cases that teach nothing
    decisions_without_llm: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)  # case_id -> policy id, or the skip reason

    def lines(self) -> list[str]:
        """The report as printable lines."""
        return [
            f"cases                     {self.cases}",
            f"policies / actionable     {self.policies} / {self.actionable_groups}",
            f"pairwise precision        {self.pairwise_precision:.3f}",
            f"pairwise recall           {self.pairwise_recall:.3f}",
            f"category accuracy         {self.category_accuracy:.3f}",
            f"policies from NA cases    {self.not_actionable_leaks}",
            f"decisions without an LLM  {self.decisions_without_llm} / {self.cases}",
        ]


def load_cases(path: Path) -> list[dict]:
    """The cases of a JSONL file, in file order."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluate_cases(cases: list[dict], provider: PolicyProvider, fast_path_threshold: float = 0.75) -> EvaluationReport:
    """Decide every case in order, as the generator would, and compare the outcome with the labels."""
    index = PolicyIndex()
    decider = DecisionMaker(index=index, provider=provider, fast_path_threshold=fast_path_threshold)
    report = EvaluationReport(cases=len(cases))
    policy_of: dict[str, str] = {}
    categories: dict[str, str] = {}
    for case in cases:
        feedback = FeedbackSubmitted(feedback_id=case["case_id"], user_id="evaluation",
                                     submitted_at=datetime.now(UTC), **case["feedback"])
        decision = decider.decide(feedback)
        index.apply(decision)
        if getattr(decision, "decision", None) is not None and decision.decision.llm_calls == 0:
            report.decisions_without_llm += 1
        if isinstance(decision, PolicyGenerated):
            policy_of[case["case_id"]] = decision.policy.policy_id
            categories[decision.policy.policy_id] = decision.policy.category.value
        elif isinstance(decision, PolicySkipped) and decision.reason is SkipReason.DUPLICATE_POLICY:
            policy_of[case["case_id"]] = decision.duplicate_of or ""
        report.outcomes[case["case_id"]] = policy_of.get(case["case_id"]) or getattr(decision, "reason", "failed")
    actionable = [case for case in cases if not case["group"].startswith("NA")]
    report.actionable_groups = len({case["group"] for case in actionable})
    report.policies = len(categories)
    report.not_actionable_leaks = sum(1 for case in cases if case["group"].startswith("NA")
                                      and case["case_id"] in policy_of)
    true_pairs = predicted_pairs = both = 0
    for a, b in combinations(actionable, 2):
        same_group = a["group"] == b["group"]
        same_policy = (a["case_id"] in policy_of and policy_of[a["case_id"]] == policy_of.get(b["case_id"]))
        true_pairs += same_group
        predicted_pairs += same_policy
        both += same_group and same_policy
    report.pairwise_precision = both / predicted_pairs if predicted_pairs else 1.0
    report.pairwise_recall = both / true_pairs if true_pairs else 1.0
    right = sum(1 for case in actionable if case["case_id"] in policy_of
                and categories.get(policy_of[case["case_id"]]) == case["category"])
    report.category_accuracy = right / len(actionable) if actionable else 1.0
    return report


def main() -> int:
    """Evaluate the offline provider on a cases file and print the figures."""
    from policy_generator.providers.offline import OfflineProvider

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[4] / "tests" / "data" \
        / "feedback-cases.jsonl"
    report = evaluate_cases(load_cases(path), OfflineProvider())
    print(f"evaluation of the offline provider on {path}")
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
