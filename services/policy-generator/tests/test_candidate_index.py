"""The candidate index ranks exactly as ``dedup.rank_candidates`` does, through every change the index applies."""

from __future__ import annotations

import heapq
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.workload import TEMPLATES, VAGUE_COMMENT, Lesson, feedback_event, policy_for
from policy_generator.candidate_index import SCAN_AT_MOST, CandidateIndex
from policy_generator.context import build_context
from policy_generator.decision import DecisionMaker
from policy_generator.dedup import feedback_document, policy_document, rank_candidates, ranking_key
from policy_generator.evaluation import load_cases
from policy_generator.policy_index import PolicyIndex, laid_over
from policy_generator.providers.base import DecisionRequest, Verdict
from policy_generator.providers.offline import OfflineProvider
from policyloop_common.events import (
    DecisionDetails,
    DecisionKind,
    FeedbackContext,
    FeedbackSubmitted,
    PolicyEdit,
    PolicyEdited,
    PolicyGenerated,
    PolicyImported,
    PolicyReviewed,
    PolicySkipped,
    ReviewAction,
    SkipReason,
)
from policyloop_common.policy import GeneratorInfo, Policy, PolicyContent, PolicyStatus
from policyloop_common.text_matching import Document, similarity_docs

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
START = datetime(2026, 1, 1, tzinfo=UTC)
DETAILS = DecisionDetails(kind=DecisionKind.NEW, provider="offline", model="offline-rules-v1")
STATUSES = [PolicyStatus.PENDING_REVIEW] * 4 + [PolicyStatus.ACTIVE] * 4 + [
    PolicyStatus.REJECTED, PolicyStatus.RETIRED, PolicyStatus.SUPERSEDED]
KS = (1, 5, 20)


def labelled_feedback() -> list[FeedbackSubmitted]:
    """The labelled feedback of tests/data: lesson cases, their paraphrases, and the injection attempts."""
    feedbacks = [FeedbackSubmitted(feedback_id=case["case_id"], user_id="u", submitted_at=START, **case["feedback"])
                 for name in ("feedback-cases.jsonl", "feedback-cases-extra.jsonl")
                 for case in load_cases(DATA / name)]
    feedbacks += [FeedbackSubmitted(feedback_id=case["id"], user_id="u", conversation_id="c", message_id="m",
                                    rating="negative", comment=case["comment"],
                                    context=FeedbackContext(**case["context"]), submitted_at=START)
                  for case in load_cases(DATA / "injection-corpus.jsonl")]
    return feedbacks


def questions() -> list[str]:
    """The questions of the retrieval evaluation: other settings for the same comments."""
    return [case["question"] for case in load_cases(DATA / "retrieval-eval-questions.jsonl")]


def retold(rng: random.Random, feedbacks: list[FeedbackSubmitted], asked: list[str],
           number: int) -> FeedbackSubmitted:
    """A labelled comment told again: on another question, with another case's query, or with words around it."""
    base = rng.choice(feedbacks)
    other = rng.choice(feedbacks)
    comment = base.comment or ""
    question = rng.choice([base.context.question, other.context.question, rng.choice(asked)])
    context = base.context.model_copy(update={"question": question})
    match rng.randrange(4):
        case 0:
            comment = f"{comment} {other.comment or ''}"
        case 1:
            context = other.context.model_copy(update={"question": question})
        case 2:
            comment = f"Again: {comment}"
    return base.model_copy(update={"feedback_id": f"retold-{number}", "comment": comment or "Wrong.",
                                   "context": context})


def drafted(rng: random.Random, feedbacks: list[FeedbackSubmitted], asked: list[str], count: int) -> list[Policy]:
    """Policies the offline provider drafts from labelled feedback told in many ways, with random statuses and
    ages (some equal: the tie rule matters), examples from the evaluation's questions."""
    provider = OfflineProvider()
    policies: list[Policy] = []
    number = 0
    while len(policies) < count:
        number += 1
        feedback = retold(rng, feedbacks, asked, number)
        decision = provider.decide(DecisionRequest(context=build_context(feedback)))
        if decision.verdict is not Verdict.NEW or decision.policy is None:
            continue
        content = decision.policy
        if rng.random() < 0.5:
            content = content.model_copy(update={"examples": rng.sample(asked, rng.randrange(4))})
        policies.append(policy_of(content, f"drafted-{number}", rng.choice(STATUSES),
                                  START + timedelta(seconds=rng.randrange(count // 2))))
    return policies


def policy_of(content: PolicyContent, policy_id: str, status: PolicyStatus, created_at: datetime) -> Policy:
    return Policy(**content.model_dump(), policy_id=policy_id, version=1, status=status,
                  source_feedback_ids=[policy_id], support_count=1, created_at=created_at, updated_at=created_at,
                  generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))


def lessons(rng: random.Random, count: int) -> list[Policy]:
    """Policies of the benchmark's synthetic lessons: many distinct lessons on one schema, random statuses."""
    policies = []
    for number in range(count):
        policy = policy_for(Lesson.number(number), feedback_id=f"lesson-{number}", policy_id=f"lesson-{number}",
                            status=rng.choice(STATUSES))
        created = START + timedelta(seconds=rng.randrange(count))
        policies.append(policy.model_copy(update={"created_at": created, "updated_at": created}))
    return policies


def active_policies(rng: random.Random, feedbacks: list[FeedbackSubmitted], asked: list[str], *, drafts: int,
                    lesson_count: int) -> list[Policy]:
    """Drafts from ``feedbacks`` (with ``asked`` questions) and the benchmark's lessons, all active."""
    policies = [*drafted(rng, feedbacks, asked, drafts), *lessons(rng, lesson_count)]
    return [policy.model_copy(update={"status": PolicyStatus.ACTIVE}) for policy in policies]


def probes(rng: random.Random, feedbacks: list[FeedbackSubmitted], asked: list[str], known_lessons: int,
           count: int) -> list[FeedbackSubmitted]:
    """Feedback to rank for: labelled cases as they are and retold, questions as comments, and lessons of the
    benchmark repeated, told in another template, vague, or new."""
    found = list(feedbacks)
    while len(found) < count:
        number = len(found)
        match rng.randrange(5):
            case 0 | 1:
                found.append(retold(rng, feedbacks, asked, number))
            case 2:
                found.append(rng.choice(feedbacks).model_copy(update={"feedback_id": f"asked-{number}",
                                                                       "comment": rng.choice(asked)}))
            case 3:
                lesson = Lesson.number(rng.randrange(known_lessons))
                other_template = TEMPLATES[(lesson.index + 1) % len(TEMPLATES)].format(
                    table=lesson.table, column=lesson.column, wrong=lesson.wrong, concept=lesson.concept)
                comment = rng.choice([f"Again: {lesson.comment}", lesson.comment, other_template, VAGUE_COMMENT])
                found.append(feedback_event(lesson, feedback_id=f"again-{number}").model_copy(
                    update={"comment": comment}))
            case _:
                found.append(feedback_event(Lesson.number(known_lessons + number), feedback_id=f"new-{number}"))
    return found


def generated(policy: Policy, supersedes: list[str] | None = None) -> PolicyGenerated:
    return PolicyGenerated(feedback_id=f"f-{policy.policy_id}-{policy.version}", policy=policy,
                           decision=DETAILS.model_copy(update={"supersedes": supersedes or []}))


def imported(policy: Policy) -> PolicyImported:
    return PolicyImported(policy=policy, importer="admin", imported_at=START)


def reviewed(policy_id: str, action: ReviewAction) -> PolicyReviewed:
    return PolicyReviewed(policy_id=policy_id, action=action, reviewer="admin", reviewed_at=START)


def assert_ranks_as_rank_candidates(index: PolicyIndex, feedbacks: list[FeedbackSubmitted],
                                    made: list[Policy] | None = None) -> None:
    """For every feedback and k: the index's candidates are rank_candidates' over every known policy, exactly."""
    made = made or []
    known = laid_over(index.policies(), made)
    for feedback in feedbacks:
        context = build_context(feedback)
        # The k best of a total order are the first k of the 20 best: one scan serves the three k.
        expected = rank_candidates(context, known, k=max(KS))
        for k in KS:
            found = index.rank_candidates(context, k, made)
            assert found == expected[:k], (feedback.feedback_id, k)


def changes(rng: random.Random, index: PolicyIndex, asked: list[str], count: int) -> list:
    """Random events on known policies: new versions, edits, reviews, supersedes, evidence, imports."""
    events: list = []
    known = index.policies()
    for number in range(count):
        policy = rng.choice(known)
        match rng.randrange(7):
            case 0:
                text = f"{policy.rule} Also check {rng.choice(asked)}"[:2000]
                events.append(generated(policy.model_copy(update={"version": policy.version + 1, "rule": text,
                                                                  "status": PolicyStatus.PENDING_REVIEW})))
            case 1:
                examples = rng.sample(asked, 2)
                events.append(PolicyEdited(policy_id=policy.policy_id, version=policy.version + 1,
                                           changes=PolicyEdit(examples=examples, missing_knowledge="Edited."),
                                           editor="admin", edited_at=START))
            case 2:
                events.append(reviewed(policy.policy_id, rng.choice(list(ReviewAction))))
            case 3:
                successor = policy.model_copy(update={"policy_id": f"successor-{number}",
                                                      "status": PolicyStatus.ACTIVE})
                events.append(generated(successor, supersedes=[policy.policy_id, rng.choice(known).policy_id]))
            case 4:
                events.append(PolicySkipped(feedback_id=f"evidence-{number}", reason=SkipReason.DUPLICATE_POLICY,
                                            duplicate_of=policy.policy_id, decision=DETAILS))
            case 5:
                # An id already known keeps what it has; a new one joins.
                twin = policy if rng.random() < 0.5 else policy.model_copy(update={"policy_id": f"import-{number}"})
                events.append(imported(twin.model_copy(update={"status": rng.choice(STATUSES)})))
            case _:
                events.append(reviewed(policy.policy_id, ReviewAction.APPROVE))
    return events


def test_ranks_exactly_as_rank_candidates_through_every_change() -> None:
    rng = random.Random(20260101)
    feedbacks, asked = labelled_feedback(), questions()
    index = PolicyIndex()
    policies = [*drafted(rng, feedbacks, asked, 600), *lessons(rng, 1800)]
    rng.shuffle(policies)
    for policy in policies:
        index.apply(generated(policy))
    for case in load_cases(DATA / "retrieval-eval-policies.jsonl"):
        content = PolicyContent.model_validate(case)
        index.apply(imported(policy_of(content, case["policy_id"], rng.choice(STATUSES), START)))
    # The same lesson written three times at the same moment: equal scores, equal ages, the id decides.
    for copy in range(3):
        index.apply(generated(policies[0].model_copy(update={"policy_id": f"copy-{copy}",
                                                             "status": PolicyStatus.ACTIVE})))
    comparable = sum(policy.status in (PolicyStatus.PENDING_REVIEW, PolicyStatus.ACTIVE)
                     for policy in index.policies())
    assert comparable > 1500

    asked_for = probes(rng, feedbacks, asked, 1800, 260)
    assert_ranks_as_rank_candidates(index, asked_for)

    for event in changes(rng, index, asked, 600):
        index.apply(event)
    assert_ranks_as_rank_candidates(index, rng.sample(asked_for, 80))

    # Decisions of an open transaction count as known; dropped on abort, kept on commit.
    for event in changes(rng, index, asked, 40):
        index.stage(event)
    assert_ranks_as_rank_candidates(index, rng.sample(asked_for, 40))
    # Events committed by others while the transaction is open change what its staged decisions apply to.
    for event in changes(rng, index, asked, 40):
        index.apply(event)
    assert_ranks_as_rank_candidates(index, rng.sample(asked_for, 40))
    index.discard_staged()
    assert_ranks_as_rank_candidates(index, rng.sample(asked_for, 20))
    for event in changes(rng, index, asked, 40):
        index.stage(event)
    index.commit_staged()
    assert_ranks_as_rank_candidates(index, rng.sample(asked_for, 20))

    # Policies made earlier in a batch lie over the known ones, a new version replacing the old.
    known = rng.sample(index.policies(), 20)
    made = [policy.model_copy(update={"version": policy.version + 1, "status": PolicyStatus.PENDING_REVIEW,
                                      "rule": f"{policy.rule} Revised."}) for policy in known[:10]]
    made += drafted(rng, feedbacks, asked, 10)
    assert_ranks_as_rank_candidates(index, rng.sample(asked_for, 30), made)


def test_an_open_transaction_applies_its_decisions_to_what_was_committed_since() -> None:
    # A duplicate staged for policy x, then x edited by a reviewer (committed elsewhere) while the transaction is
    # open: rankings see the edited text with the staged evidence, not the text x had when the evidence was staged.
    index = PolicyIndex()
    for number in range(30):
        index.apply(generated(policy_for(Lesson.number(number), feedback_id=f"f{number}", policy_id=f"p{number}")))
    before, after = (feedback_event(Lesson.number(number)) for number in (3, 40))
    index.stage(PolicySkipped(feedback_id="again", reason=SkipReason.DUPLICATE_POLICY, duplicate_of="p3",
                              decision=DETAILS))
    assert_ranks_as_rank_candidates(index, [before, after])
    edited_rule = policy_for(Lesson.number(40), feedback_id="f40").rule
    index.apply(PolicyEdited(policy_id="p3", version=2, changes=PolicyEdit(rule=edited_rule), editor="admin",
                             edited_at=START))
    assert_ranks_as_rank_candidates(index, [before, after])
    best = index.rank_candidates(build_context(after), 1)[0]
    assert (best.policy.policy_id, best.policy.rule, best.policy.support_count) == ("p3", edited_rule, 2)


def test_only_decisions_applied_at_a_commit_are_passed_over_once_and_few_are_held(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("policy_generator.policy_index.READ_BACK_HELD", 3)
    index = PolicyIndex()
    decision = generated(policy_for(Lesson.number(1), feedback_id="f1", policy_id="p1"))
    index.stage(decision, "aborted")
    index.discard_staged()
    for number in range(5):
        index.stage(decision, f"committed-{number}")
    assert not index.applied_at_commit("committed-4")  # staged only: the feed cannot read it yet
    index.commit_staged()
    assert not index.applied_at_commit("aborted")
    # The three newest are held, each passed over once.
    assert [index.applied_at_commit(f"committed-{number}") for number in (0, 1, 2, 3, 4, 4)] == [
        False, False, True, True, True, False]


def test_scores_are_those_of_similarity_docs_to_the_last_bit() -> None:
    rng = random.Random(7)
    feedbacks, asked = labelled_feedback(), questions()
    policies = [policy for policy in [*drafted(rng, feedbacks, asked, 200), *lessons(rng, 600)]
                if policy.status in (PolicyStatus.PENDING_REVIEW, PolicyStatus.ACTIVE)]
    index = CandidateIndex()
    for policy in policies:
        index.put(policy)
    for feedback in probes(rng, feedbacks, asked, 600, 120):
        probe = feedback_document(build_context(feedback))
        exact = [(similarity_docs(probe, policy_document(policy)), policy) for policy in policies]
        for k in KS:
            assert index.rank(probe, k) == heapq.nsmallest(k, exact, key=ranking_key)


def test_reaches_says_whether_a_policy_asked_for_scores_the_threshold_once_rounded() -> None:
    rng = random.Random(11)
    feedbacks, asked = labelled_feedback(), questions()
    policies = active_policies(rng, feedbacks, asked, drafts=100, lesson_count=300)
    index = CandidateIndex()
    for number, policy in enumerate(policies):
        # Under keys of their own, as the in-batch recheck indexes drafts; a few ids also under their id.
        index.put(policy, key=f"key-{number}")
        if number % 10 == 0:
            index.put(policy)
    keys = [f"key-{number}" for number in range(len(policies))]
    checked = reached = 0
    for feedback in probes(rng, feedbacks, asked, 300, 80):
        probe = feedback_document(build_context(feedback))
        for size in (3, SCAN_AT_MOST + 1, 60, len(keys)):
            chosen = rng.sample(range(len(keys)), size)
            best = max(round(similarity_docs(probe, policy_document(policies[number])), 4) for number in chosen)
            asked_keys = [*(keys[number] for number in chosen), "not-indexed"]
            # Just at, just above and below the best rounded score, and the recheck's own threshold.
            for threshold in (best, best + 0.0001, best - 0.0001, 0.30):
                expected = best >= threshold
                assert index.reaches(probe, threshold, asked_keys) is expected, (feedback.feedback_id, size)
                checked += 1
                reached += expected
    assert index.reaches(feedback_document(build_context(feedbacks[0])), 0.0, ["not-indexed"]) is False
    assert checked > 1000 and 0 < reached < checked


def test_a_ranking_scores_few_policies_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    index = PolicyIndex()
    for policy in lessons(rng, 2000):
        index.apply(generated(policy.model_copy(update={"status": PolicyStatus.ACTIVE})))
    scored = 0

    def counted(a: Document, b: Document) -> float:
        nonlocal scored
        scored += 1
        return similarity_docs(a, b)

    monkeypatch.setattr("policy_generator.candidate_index.similarity_docs", counted)
    for number in range(0, 2000, 40):
        lesson = feedback_event(Lesson.number(number))
        for comment in (f"Again: {lesson.comment}", VAGUE_COMMENT):
            scored = 0
            found = index.rank_candidates(build_context(lesson.model_copy(update={"comment": comment})), 5)
            assert found[0].policy.policy_id == f"lesson-{number}"
            # Estimates settle the five best: a few exact scores where a scan takes 2,000.
            assert scored <= 50, (number, comment, scored)


def test_estimates_are_the_exact_scores_but_for_rounding_through_removals_and_new_versions() -> None:
    # What makes the ranking fast and exact at once: an estimate far from its score would either cost exact
    # scorings (too high) or lose a candidate (too low). Removed and replaced policies must leave nothing behind
    # in the postings that their slots' next holders would inherit.
    rng = random.Random(5)
    feedbacks, asked = labelled_feedback(), questions()
    policies = active_policies(rng, feedbacks, asked, drafts=150, lesson_count=300)
    index = CandidateIndex()
    for policy in policies:
        index.put(policy)
    for policy in rng.sample(policies, 200):
        if rng.random() < 0.5:
            index.remove(policy.policy_id)
        else:
            index.put(policy.model_copy(update={"version": 2, "rule": f"{policy.rule} {rng.choice(asked)}"}))
    for policy in rng.sample(policies, 100):
        index.put(policy.model_copy(update={"policy_id": f"again-{policy.policy_id}"}))
    indexed = {policy_id: index._documents[slot] for policy_id, slot in index._slot_of.items()}
    for feedback in probes(rng, feedbacks, asked, 300, 80):
        probe = feedback_document(build_context(feedback))
        estimates = index._estimates(probe)
        for policy_id, document in indexed.items():
            assert estimates[index._slot_of[policy_id]] == pytest.approx(similarity_docs(probe, document),
                                                                         abs=1e-12, rel=0), policy_id


def test_equal_scores_go_to_the_older_policy_then_the_smaller_id() -> None:
    lesson = policy_for(Lesson.number(3), feedback_id="f", policy_id="x")
    index = PolicyIndex()
    ages = [5, 1, 3, 1, 4, 1, 2]
    for number, age in enumerate(ages * 5):
        created = START + timedelta(minutes=age)
        index.apply(generated(lesson.model_copy(update={"policy_id": f"p{number:02d}", "created_at": created})))
    assert len(index) > SCAN_AT_MOST
    context = build_context(feedback_event(Lesson.number(3)))
    found = index.rank_candidates(context, 20)
    assert len({candidate.similarity for candidate in found}) == 1
    assert [c.policy.policy_id for c in found] == [c.policy.policy_id for c in rank_candidates(
        context, index.policies(), k=20)]
    ordered = [(c.policy.created_at, c.policy.policy_id) for c in found]
    assert ordered == sorted(ordered)


def test_index_follows_adds_new_versions_and_removals() -> None:
    index = CandidateIndex()
    others = [policy_for(Lesson.number(number), feedback_id=f"f{number}", policy_id=f"other-{number}")
              for number in range(10, 10 + SCAN_AT_MOST)]
    first = policy_for(Lesson.number(1), feedback_id="f1", policy_id="one", status=PolicyStatus.PENDING_REVIEW)
    second = policy_for(Lesson.number(2), feedback_id="f2", policy_id="two")
    for policy in [first, second, *others]:
        index.put(policy)
    assert len(index) == 2 + SCAN_AT_MOST and "one" in index and "two" in index

    def ranked(lesson: int, k: int = 3) -> list[tuple[float, Policy]]:
        """The index's k best for the lesson's feedback, checked against scoring every policy indexed."""
        probe = feedback_document(build_context(feedback_event(Lesson.number(lesson))))
        found = index.rank(probe, k)
        assert found == heapq.nsmallest(k, [(similarity_docs(probe, policy_document(policy)), policy)
                                            for policy in indexed], key=ranking_key)
        return found

    indexed = [first, second, *others]
    assert ranked(1)[0][1] == first

    # More evidence and an approval keep the text: the policy is replaced, its postings stay.
    approved = first.model_copy(update={"status": PolicyStatus.ACTIVE, "support_count": 2})
    index.put(approved)
    indexed[0] = approved
    assert len(index) == 2 + SCAN_AT_MOST and ranked(1)[0][1] == approved

    # A new version with another lesson's text ranks for that lesson, and no longer for its old one.
    rewritten = policy_for(Lesson.number(7), feedback_id="f1", policy_id="one").model_copy(update={"version": 2})
    index.put(rewritten)
    indexed[0] = rewritten
    assert len(index) == 2 + SCAN_AT_MOST
    assert ranked(7)[0][1] == rewritten
    assert ranked(1)[0][0] < 0.5

    # Out of service: no longer a candidate. The slots freed go to the next policies, which rank as themselves.
    index.put(rewritten.model_copy(update={"status": PolicyStatus.REJECTED}))
    index.remove("two")
    index.remove("never-indexed")
    indexed = others
    assert len(index) == SCAN_AT_MOST and "one" not in index and "two" not in index
    assert all(policy.policy_id.startswith("other-") for _, policy in ranked(7, k=20))
    third = policy_for(Lesson.number(1), feedback_id="f3", policy_id="three")
    fourth = policy_for(Lesson.number(2), feedback_id="f4", policy_id="four")
    index.put(third)
    index.put(fourth)
    indexed = [*others, third, fourth]
    assert ranked(1)[0][1] == third and ranked(2)[0][1] == fourth


def test_made_policies_replace_the_known_version_of_their_id() -> None:
    index = PolicyIndex()
    for number in range(40):
        index.apply(generated(policy_for(Lesson.number(number), feedback_id=f"f{number}", policy_id=f"p{number}")))
    updated = policy_for(Lesson.number(100), feedback_id="f5", policy_id="p5").model_copy(update={"version": 2})
    context = build_context(feedback_event(Lesson.number(100)))
    found = index.rank_candidates(context, 5, made=[updated])
    assert found[0].policy == updated
    assert [c.policy.policy_id for c in found].count("p5") == 1
    assert found == rank_candidates(context, laid_over(index.policies(), [updated]), k=5)
    # Without it, lesson 100 is known to nobody: its best candidate scores far lower.
    assert index.rank_candidates(context, 1)[0].similarity < found[0].similarity - 0.3


@pytest.mark.parametrize("feedback", labelled_feedback()[:32], ids=lambda feedback: feedback.feedback_id)
def test_decisions_through_the_index_are_those_over_the_list(feedback: FeedbackSubmitted) -> None:
    rng = random.Random(feedback.feedback_id)
    index = PolicyIndex()
    for policy in [*drafted(rng, labelled_feedback(), questions(), 30), *lessons(rng, 60)]:
        index.apply(generated(policy))
    maker = DecisionMaker(index=index, provider=OfflineProvider())
    through_index = maker.decide(feedback)
    over_list = maker.decide(feedback, index.policies())
    assert type(through_index) is type(over_list)
    assert through_index.decision.candidate_policy_ids == over_list.decision.candidate_policy_ids
    assert through_index.decision.best_similarity == over_list.decision.best_similarity
    assert through_index.decision.kind == over_list.decision.kind


def test_rankings_stay_exact_while_events_are_applied_from_another_thread() -> None:
    rng = random.Random(11)
    index = PolicyIndex()
    for policy in lessons(rng, 400):
        index.apply(generated(policy))
    stream = changes(rng, index, questions(), 300)
    contexts = [build_context(feedback_event(Lesson.number(number))) for number in range(0, 400, 7)]
    failures: list[BaseException] = []
    done = threading.Event()

    def rank_until_done() -> None:
        try:
            while not done.is_set():
                for context in contexts:
                    for candidate in index.rank_candidates(context, 5):
                        assert candidate.policy.status in (PolicyStatus.PENDING_REVIEW, PolicyStatus.ACTIVE)
        except BaseException as error:  # reported by the test thread
            failures.append(error)

    rankers = [threading.Thread(target=rank_until_done) for _ in range(4)]
    for ranker in rankers:
        ranker.start()
    for event in stream:
        index.apply(event)
    done.set()
    for ranker in rankers:
        ranker.join()
    assert failures == []
    for context in contexts:
        assert index.rank_candidates(context, 5) == rank_candidates(context, index.policies(), k=5)
