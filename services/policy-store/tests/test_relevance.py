"""The parts of a relevance score, and the index that ranks with them."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from policy_store.ranking import CANDIDATE_BUDGET, COMMON_MINIMUM, TOP_UP_POSTINGS, RankingIndex
from policy_store.relevance import (
    BOOST_SHARE,
    PolicyFeatures,
    Query,
    QuestionFeatures,
    keyword_part,
    schema_credit,
    score_policy,
    semantic_part,
)
from policyloop_common.text_matching import schema_objects

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"


def policy(policy_id: str, rule: str, *, mapping: str | None = None, examples: tuple[str, ...] = (),
           priority: str = "medium", support: int = 1) -> PolicyFeatures:
    """A policy prepared as the store prepares one, its schema_objects column derived as the store derives it."""
    document = {"policy_id": policy_id, "rule": rule, "correct_mapping": mapping, "examples": list(examples),
                "priority": priority, "support_count": support}
    return PolicyFeatures.of(document, sorted(schema_objects(" ".join(filter(None, [rule, mapping or ""])))))


STATUS = policy("status", "'Active' systems are those with status = 'operating'; there is no status 'active'.",
                examples=("How many active systems are there?",))
BUDGET = policy("budget", "budget_vnd is in millions of VND: 45,200 means 45.2 billion VND.",
                examples=("What is the total budget of the Ministry of Finance?",))
MONTHLY = policy("monthly", "Monthly active users are in systems.monthly_active_users; there is no column "
                            "active_users.")
TOTAL = policy("total", "Use systems.total_users for the number of registered users; there is no column users.")
INCIDENTS = policy("incidents", "An incident is still open while incidents.resolved_at IS NULL; resolve time is "
                                "resolved_at - occurred_at.")


def index_of(*policies: PolicyFeatures) -> RankingIndex:
    index = RankingIndex()
    for item in policies:
        index.add(item)
    return index


def parts(index: RankingIndex, question: str, policy_id: str):
    features = QuestionFeatures.of(question)
    corpus = index.corpus()
    return score_policy(Query.of(features, corpus, index.spellings(features)), index.get(policy_id), corpus)


def test_semantic_part_meets_vietnamese_and_english_on_canonical_terms() -> None:
    question = QuestionFeatures.of("Có bao nhiêu hệ thống đang vận hành?")
    assert semantic_part(question, STATUS) > 0.3
    assert semantic_part(question, STATUS) > 2 * semantic_part(question, BUDGET)


def test_keyword_part_weighs_words_by_their_rarity_among_the_policies() -> None:
    index = index_of(STATUS, BUDGET, MONTHLY, TOTAL, INCIDENTS)
    corpus = index.corpus()
    question = QuestionFeatures.of("Which systems have the most monthly active users?")
    query = Query.of(question, corpus, {})
    scores = {item.policy_id: keyword_part(query, item, corpus) for item in (STATUS, BUDGET, MONTHLY, TOTAL)}
    assert max(scores, key=scores.get) == "monthly"
    # "users" is shared with the total_users policy, "monthly" is not: the rarer word decides.
    assert scores["monthly"] > 2 * scores["total"] > 0
    assert all(0 <= value <= 1 for value in scores.values())
    assert corpus.idf("monthly") > corpus.idf("user")


def test_a_word_spelled_like_a_policy_word_counts_as_a_partial_match() -> None:
    index = index_of(STATUS, BUDGET, INCIDENTS)
    question = QuestionFeatures.of("How many incidents have not been resolved yet?")
    spellings = index.spellings(question)
    assert "resolve" in spellings and 0.5 <= spellings["resolve"] < 1
    corpus = index.corpus()
    with_backoff = keyword_part(Query.of(question, corpus, spellings), INCIDENTS, corpus)
    without = keyword_part(Query.of(question, corpus, {}), INCIDENTS, corpus)
    assert with_backoff > without


def test_schema_part_counts_objects_the_question_spells_out_in_words() -> None:
    english = QuestionFeatures.of("Which system has the most monthly active users?")
    vietnamese = QuestionFeatures.of("Hệ thống nào có nhiều người dùng hoạt động hằng tháng nhất?")
    assert schema_credit(english, MONTHLY) >= 1.0
    assert schema_credit(vietnamese, MONTHLY) >= 1.0
    # total_users needs "total" too: "users" alone does not spell it.
    assert schema_credit(english, TOTAL) == 0


def test_schema_part_counts_objects_the_question_names() -> None:
    question = QuestionFeatures.of("Should I filter on systems.total_users or on users?")
    assert schema_credit(question, TOTAL) >= 1.0
    assert schema_credit(question, BUDGET) == 0


def test_priority_and_support_only_reorder_policies_the_text_matches() -> None:
    rule = "Round percentages to one decimal place in the answer."
    strong = policy("strong", rule, priority="high", support=12)
    weak = policy("weak", rule, priority="low", support=1)
    unrelated = policy("unrelated", "Filter launched_at with a date range for a year.", priority="high", support=50)
    index = index_of(strong, weak, unrelated, STATUS)
    question = "How many decimals should percentages have?"
    high, low = parts(index, question, "strong"), parts(index, question, "weak")
    assert high.score > low.score > 0
    assert low.score >= (1 - BOOST_SHARE) * high.score - 1e-4
    assert (high.priority, high.support, low.priority, low.support) == (1.0, 1.0, 0.0, 0.0)
    assert parts(index, question, "unrelated").score == 0


def test_score_and_parts_stay_in_the_unit_interval() -> None:
    policies, questions = _evaluation_set()
    index = index_of(*policies)
    for question in questions:
        for item in policies:
            scored = parts(index, question["question"], item.policy_id)
            values = [scored.score, *scored.as_dict().values()]
            assert all(0 <= value <= 1 for value in values), (question["question_id"], item.policy_id, values)


def test_the_index_ranks_a_small_set_exactly_as_scoring_every_policy() -> None:
    policies, questions = _evaluation_set()
    index = index_of(*policies)
    corpus = index.corpus()
    for question in questions:
        features = QuestionFeatures.of(question["question"])
        query = Query.of(features, corpus, index.spellings(features))
        every = sorted(((score_policy(query, item, corpus).score, item.policy_id) for item in policies),
                       key=lambda pair: (-pair[0], pair[1]))
        expected = [(score, policy_id) for score, policy_id in every if score >= 0.05][:10]
        ranked = index.rank(features, limit=10, floor=0.05)
        assert [(item.parts.score, item.policy_id) for item in ranked] == expected, question["question_id"]


def test_removing_a_policy_leaves_the_index_as_if_it_had_never_been_added() -> None:
    policies, questions = _evaluation_set()
    full = index_of(*policies)
    without = index_of(*policies[1:])
    full.remove(policies[0].policy_id)
    assert policies[0].policy_id not in full and len(full) == len(without)
    assert dict(full.corpus().document_frequency.items()) == dict(without.corpus().document_frequency.items())
    for question in questions[:20]:
        features = QuestionFeatures.of(question["question"])
        assert full.rank(features, limit=5, floor=0.05) == without.rank(features, limit=5, floor=0.05)
    full.add(policies[0])
    assert policies[0].policy_id in full.ids()


def test_a_new_version_replaces_the_old_one_in_every_index() -> None:
    index = index_of(STATUS, BUDGET)
    index.add(policy("budget", "Hosting on the government cloud is hosting = 'government_cloud'."))
    assert index.rank(QuestionFeatures.of("budget_vnd in billions of VND"), limit=5, floor=0.05) == []
    assert index.rank(QuestionFeatures.of("systems on the government cloud"), limit=5, floor=0.05)[0].policy_id \
        == "budget"


def test_in_a_large_set_only_policies_sharing_a_distinctive_keyword_are_ranked() -> None:
    count = COMMON_MINIMUM + 50
    lessons = [policy(f"p{n}", f"Use the column systems.{word}_total for the {word} total; there is no column {word}.")
               for n, word in enumerate(_made_up_words(count))]
    index = index_of(*lessons)
    target, word = lessons[7], _made_up_words(count)[7]
    ranked = index.rank(QuestionFeatures.of(f"How many systems have a {word} total above 300?"), limit=5, floor=0.05)
    # Every policy shares "systems", "column" and "total": common words, which cannot tell them apart; the policy
    # with the distinctive word leads, far ahead of those only sharing the common ones.
    assert ranked[0].policy_id == target.policy_id
    assert all(item.parts.score < ranked[0].parts.score / 2 for item in ranked[1:])
    generic = index.rank(QuestionFeatures.of("Which column holds the total?"), limit=5, floor=0.05)
    assert len(generic) == 5, "a question of common words only still gets the policies sharing its rarest one"


def test_a_question_of_common_words_still_finds_its_policy_among_many() -> None:
    # Hundreds of policies each share one word of the question (count, users, systems): all three are common, none
    # distinctive, and only one policy has them all.
    tails = ["; count the rows per {w}.", "; the users of {w} are listed there.", "; several systems share a {w}."]
    words = _made_up_words(3 * COMMON_MINIMUM + 30)
    crowd = [policy(f"p{n}", f"Join {word}_links on {word}_id" + tails[n % 3].format(w=word))
             for n, word in enumerate(words)]
    index = index_of(*crowd, TOTAL)
    ranked = index.rank(QuestionFeatures.of("Count systems with more than 1000 users"), limit=5, floor=0.05)
    assert ranked and ranked[0].policy_id == "total"


def test_the_top_up_chooses_what_a_walk_over_every_posting_chooses() -> None:
    # Common words shared in overlapping subsets, so policies end with many different overlaps and many ties; the
    # index keeps them in groups of equal overlap, which must choose exactly the policies (and so rank exactly as)
    # a policy-by-policy walk adding each keyword's weight would.
    # Each word is in about half of 600 policies: common, yet all of them fit in the postings walked. "servers"
    # goes with "systems" in the same policies, so whole groups gain together too.
    common = ["users", "systems", "agencies", "budgets", "incidents"]
    crowd = [policy(f"p{n:04d}", f"The {word} field: " + " ".join(
        name for bit, name in enumerate(common) if (n * 2_654_435_761 >> (bit + 3)) % 2 == 0)
        .replace("systems", "systems; servers") + ".")
        for n, word in enumerate(_made_up_words(3 * COMMON_MINIMUM))]
    index = index_of(*crowd)
    # The question's pairs of words ("users or") are in no policy: only the common words are shared.
    for question in ("users or systems or agencies or budgets or incidents or servers", "incidents or users",
                     "budgets or agencies or systems or servers"):
        features = QuestionFeatures.of(question)
        corpus = index.corpus()
        query = Query.of(features, corpus, index.spellings(features))
        expected = _ranked_after_a_plain_walk(index, crowd, query, corpus)
        ranked = index.rank(features, limit=50, floor=0.0001)
        assert len(ranked) > 5, question
        assert [(item.policy_id, item.parts) for item in ranked] == expected, question


def _ranked_after_a_plain_walk(index: RankingIndex, policies: list[PolicyFeatures], query: Query,
                               corpus) -> list[tuple[str, object]]:
    """The candidates as the top-up chooses them, found the plain way, scored and ranked as the index ranks."""
    by_id = {item.policy_id: item for item in policies}
    postings = {unit: [item.policy_id for item in policies if unit in item.units] for unit in query.weights}
    common = sorted((len(found), unit) for unit, found in postings.items() if found)
    assert all(frequency > COMMON_MINIMUM for frequency, _ in common), "every shared keyword is common"
    overlap: dict[str, float] = {}
    walk = TOP_UP_POSTINGS
    for frequency, unit in common:
        if frequency > walk:
            break
        walk -= frequency
        for policy_id in postings[unit]:
            overlap[policy_id] = overlap.get(policy_id, 0.0) + query.weights[unit] * query.idf[unit]
    chosen = sorted(overlap, key=lambda policy_id: (-overlap[policy_id], policy_id))[:CANDIDATE_BUDGET]
    scored = [(policy_id, score_policy(query, by_id[policy_id], corpus)) for policy_id in chosen]
    kept = [(policy_id, parts) for policy_id, parts in scored if parts.score >= 0.0001]
    return sorted(kept, key=lambda pair: (-pair[1].score, pair[0]))


def _made_up_words(count: int) -> list[str]:
    """Words no two of which are spelled alike (else the trigram backoff would rightly relate them)."""
    return ["".join(chr(ord("a") + int(digit, 16)) for digit in hashlib.sha256(str(n).encode()).hexdigest()[:9])
            for n in range(count)]


def _evaluation_set() -> tuple[list[PolicyFeatures], list[dict]]:
    policies = [json.loads(line) for line in (DATA / "retrieval-eval-policies.jsonl").read_text().splitlines()]
    questions = [json.loads(line) for line in (DATA / "retrieval-eval-questions.jsonl").read_text().splitlines()]
    return [policy(item["policy_id"], item["rule"], mapping=item["correct_mapping"], examples=tuple(item["examples"]),
                   priority=item["priority"], support=item["support_count"]) for item in policies], questions


@pytest.mark.parametrize("support, expected", [(0, 0.0), (1, 0.0), (3, math.log(3) / math.log(10)), (10, 1.0),
                                                (100, 1.0)])
def test_support_part_grows_with_reports_and_saturates_at_ten(support: int, expected: float) -> None:
    assert math.isclose(policy("p", "Round percentages.", support=support).support, expected)
