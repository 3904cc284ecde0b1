"""Candidates by meaning through an OpenAI-compatible /embeddings endpoint, over real HTTP to a fake server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from policy_generator.context import build_context
from policy_generator.decision import DecisionMaker
from policy_generator.dedup import rank_candidates
from policy_generator.embeddings import PolicyEmbeddings, cosine, merged_candidates
from policy_generator.policy_index import PolicyIndex
from policy_generator.providers.base import Candidate, DecisionRequest, ProviderDecision, Verdict
from policyloop_common.events import FeedbackContext, FeedbackSubmitted, PolicyGenerated, PolicySkipped
from policyloop_common.policy import GeneratorInfo, Policy
from tests.support.fake_openai import FakeOpenAI

NOW = datetime(2026, 11, 1, tzinfo=UTC)
MONTHLY = "Monthly users of a system are in systems.monthly_active_users, not total_users."
OTHERS = [
    "Count DISTINCT systems when joining integrations; a system has several rows there.",
    "The location of a system is the province of its agency: agencies.province.",
    "budget_vnd is in millions of VND: 45,200 means 45.2 billion.",
    "security_level 3 or above means security_level >= 3.",
    "Answer in Vietnamese when the question is in Vietnamese.",
    "A system is operating when status = 'operating'; 'active' is not a status.",
    "Count systems per ministry through agencies.ministry_id, never by name.",
]


def policy(n: int, rule: str) -> Policy:
    return Policy(policy_id=f"p-{n}", version=1, status="active", category="schema_mapping", priority="high",
                  rule=rule, source_feedback_ids=[f"f-{n}"], support_count=1, created_at=NOW, updated_at=NOW,
                  generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))


KNOWN = [policy(0, MONTHLY), *(policy(i + 1, rule) for i, rule in enumerate(OTHERS))]


def feedback(comment: str) -> FeedbackSubmitted:
    return FeedbackSubmitted(feedback_id="f-new", user_id="u", conversation_id="c", message_id="m",
                             rating="negative", comment=comment,
                             context=FeedbackContext(question="How many folks log on in a typical four-week span?"),
                             submitted_at=NOW)


PARAPHRASE = feedback("It should count the folks who log on within a four-week span, per system.")


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        # "monthly" and "four-week" mean the same thing to this model; the offline lexicon knows neither link.
        fake.concepts = [("monthly", "four-week")]
        yield fake


@dataclass
class Recording:
    """A provider that records the candidates it is shown and answers NOT_ACTIONABLE."""

    name: str = "recording"
    model: str = "recording-1"
    seen: list[list[Candidate]] = field(default_factory=list)

    def decide(self, request: DecisionRequest) -> ProviderDecision:
        self.seen.append(request.candidates)
        return ProviderDecision(verdict=Verdict.NOT_ACTIONABLE, reasoning="recorded", llm_calls=1)


def maker(server: FakeOpenAI, provider: Recording, k: int = 3) -> DecisionMaker:
    index = PolicyIndex()
    for known in KNOWN:
        index.apply(PolicyGenerated(feedback_id=known.source_feedback_ids[0], policy=known,
                                    decision={"kind": "new", "provider": "offline", "model": "offline-rules-v1"}))
    embeddings = PolicyEmbeddings(api_key="k", base_url=server.base_url, model="embed-1")
    return DecisionMaker(index=index, provider=provider, candidate_count=k, embeddings=embeddings)


def calls(outcome: str) -> float:
    return REGISTRY.get_sample_value("policyloop_generator_embedding_calls_total", {"outcome": outcome}) or 0.0


def test_a_paraphrase_the_offline_similarity_misses_becomes_a_candidate(server: FakeOpenAI) -> None:
    offline = rank_candidates(build_context(PARAPHRASE), KNOWN, k=3)
    assert "p-0" not in [c.policy.policy_id for c in offline]  # the premise: no shared words, no shared objects
    provider = Recording()
    maker(server, provider).decide(PARAPHRASE)
    shown = provider.seen[0]
    assert shown[0].policy.policy_id == "p-0" and shown[0].similarity == pytest.approx(1.0)
    assert [c.index for c in shown] == [0, 1, 2]
    # One batch for the known policies, one call for the feedback.
    assert [len(texts) for texts in server.embedding_requests] == [1, len(KNOWN)]


def test_policy_vectors_are_fetched_once_per_version(server: FakeOpenAI) -> None:
    decider = maker(server, Recording())
    decider.decide(PARAPHRASE)
    decider.decide(feedback("Folks over a four-week span again, not the total."))
    assert [len(texts) for texts in server.embedding_requests] == [1, len(KNOWN), 1]


def test_a_down_endpoint_leaves_the_offline_candidates(server: FakeOpenAI) -> None:
    server.embeddings_down = True
    before = calls("error")
    provider = Recording()
    decision = maker(server, provider).decide(PARAPHRASE)
    assert isinstance(decision, PolicySkipped)  # decided all the same
    assert [c.policy.policy_id for c in provider.seen[0]] == \
        [c.policy.policy_id for c in rank_candidates(build_context(PARAPHRASE), KNOWN, k=3)]
    assert calls("error") == before + 1


def test_merging_keeps_the_higher_score_and_the_best_k() -> None:
    offline = [Candidate(index=0, policy=KNOWN[1], similarity=0.5), Candidate(index=1, policy=KNOWN[2], similarity=0.2)]
    semantic = [(0.9, KNOWN[0]), (0.1, KNOWN[1])]
    merged = merged_candidates(offline, semantic, k=2)
    assert [(c.index, c.policy.policy_id, c.similarity) for c in merged] == [(0, "p-0", 0.9), (1, "p-1", 0.5)]
    assert cosine([1.0, 0.0], [0.0, 0.0]) == 0.0
