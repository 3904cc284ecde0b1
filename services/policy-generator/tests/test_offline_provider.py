"""The offline provider writes specific policies from the feedback itself, in English and Vietnamese, and
keeps one policy per lesson: checked case by case, then measured on labelled cases with ``evaluate_cases``."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_generator.context import GenerationContext
from policy_generator.dedup import DUPLICATE_THRESHOLD
from policy_generator.evaluation import EvaluationReport, evaluate_cases, load_cases
from policy_generator.providers.base import (
    Candidate,
    DecisionRequest,
    ProviderDecision,
    ProviderError,
    Verdict,
)
from policy_generator.providers.offline import OfflineProvider, example_questions
from policyloop_common.events import TokenUsage
from policyloop_common.policy import GeneratorInfo, Policy, PolicyContent

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
USERS_ERROR = '{"error": "column \\"users\\" does not exist"}'


def decide(comment: str, question: str = "How many systems have more than 500 users?", sql: str = "",
           results: list[str] | None = None, answer: str = "", candidates: list[Candidate] | None = None,
           provider: OfflineProvider | None = None) -> ProviderDecision:
    context = GenerationContext(question=question, comment=comment, sql_queries=[sql] if sql else [],
                                results=results or [], answer=answer)
    request = DecisionRequest(context=context, candidates=candidates or [])
    return (provider or OfflineProvider()).decide(request)


def new_policy(comment: str, **context) -> PolicyContent:
    decision = decide(comment, **context)
    assert decision.verdict is Verdict.NEW, decision.reasoning
    assert decision.policy is not None
    return decision.policy


def as_candidate(content: PolicyContent, similarity: float, policy_id: str = "p-1",
                 index: int = 0) -> Candidate:
    policy = Policy(**content.model_dump(), policy_id=policy_id, version=1, status="pending_review",
                    source_feedback_ids=["f-0"], support_count=1, created_at="2026-01-01T00:00:00Z",
                    updated_at="2026-01-01T00:00:00Z",
                    generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))
    return Candidate(index=index, policy=policy, similarity=similarity)


def test_the_report_example_gives_the_contract_policy() -> None:
    decision = decide("Wrong column: the table has total_users, not users",
                      sql="SELECT count(*) FROM systems WHERE users > 500", results=[USERS_ERROR])
    assert decision.verdict is Verdict.NEW
    assert decision.llm_calls == 0 and decision.usage == TokenUsage()
    policy = decision.policy
    assert policy.category.value == "schema_mapping" and policy.priority.value == "high"
    assert policy.rule == ("Use the column systems.total_users, not users: "
                           "there is no column users in systems.")
    assert policy.correct_mapping == "users -> systems.total_users"
    assert "users" in policy.missing_knowledge and "systems.total_users" in policy.missing_knowledge
    assert policy.examples == ["How many systems have more than 500 users?",
                               "How many systems have more than 1000 users?"]
    assert "total_users" in policy.rationale


@pytest.mark.parametrize(("english", "vietnamese", "mapping"), [
    (dict(comment="Wrong column name. The systems table has total_users, there is no users column.",
          sql="SELECT count(*) FROM systems WHERE users > 500", results=[USERS_ERROR]),
     dict(comment="Sai tên cột: số người dùng nằm ở cột total_users chứ không phải users.",
          question="Hệ thống nào có nhiều người dùng nhất?", sql="SELECT name FROM systems ORDER BY users "
                                                                 "DESC",
          results=[USERS_ERROR]),
     "users -> systems.total_users"),
    (dict(comment="Zero is wrong. 'Active' systems are the ones with status 'operating'; there is no status "
                  "'active'.", question="How many active systems are there?",
          sql="SELECT count(*) FROM systems WHERE status = 'active'", results=['{"count": 0}']),
     dict(comment="Trạng thái 'đang hoạt động' tương ứng với status = 'operating', "
                  "không có giá trị 'active'.",
          question="Bao nhiêu hệ thống đang hoạt động?", sql="SELECT count(*) FROM systems WHERE status = "
                                                             "'active'",
          results=['{"count": 0}']),
     "'active' -> systems.status = 'operating'"),
    (dict(comment="'3 or above' includes level 3. Use security_level >= 3, not > 3.",
          question="How many systems have security level 3 or above?",
          sql="SELECT count(*) FROM systems WHERE security_level > 3", results=['{"count": 41}']),
     dict(comment="Từ cấp độ 3 trở lên nghĩa là security_level >= 3, không phải > 3.",
          question="Bao nhiêu hệ thống từ cấp độ 3 trở lên?",
          sql="SELECT count(*) FROM systems WHERE security_level > 3", results=['{"count": 41}']),
     "systems.security_level > 3 -> systems.security_level >= 3"),
])
def test_the_english_and_the_vietnamese_telling_of_a_lesson_give_one_rule(english: dict, vietnamese: dict,
                                                                          mapping: str) -> None:
    from_english, from_vietnamese = new_policy(**english), new_policy(**vietnamese)
    assert from_english.correct_mapping == from_vietnamese.correct_mapping == mapping
    assert from_english.rule == from_vietnamese.rule
    assert from_english.category is from_vietnamese.category
    assert from_english.priority.value == "high"


def test_a_join_path_names_the_join_the_column_and_the_missing_one() -> None:
    policy = new_policy("The agency name is in the agencies table; you must join systems.agency_id to "
                        "agencies.id and read agencies.name.",
                        question="Which agency owns the e-Office system?",
                        sql="SELECT agency FROM systems WHERE name = 'e-Office'",
                        results=['{"error": "column \\"agency\\" does not exist"}'])
    assert policy.category.value == "schema_mapping"
    assert policy.rule == ("To get agencies.name for a row of systems, join agencies on systems.agency_id = "
                           "agencies.id; systems has no column agency.")
    assert policy.correct_mapping == ("agency -> agencies.name "
                                      "(join agencies on systems.agency_id = agencies.id)")


def test_a_value_that_does_not_exist_is_replaced_by_the_one_the_comment_states() -> None:
    policy = new_policy("'On-premise' is hosting = 'on_premise'; 'local' is not a hosting value.",
                        question="How many systems are hosted on premise?",
                        sql="SELECT count(*) FROM systems WHERE hosting = 'local'", results=['{"count": 0}'])
    assert policy.category.value == "business_logic"
    assert policy.correct_mapping == "'local' -> systems.hosting = 'on_premise'"


def test_a_column_that_does_not_exist_can_be_replaced_by_a_condition() -> None:
    policy = new_policy("Ministries are agencies with agency_type = 'ministry'; there is no is_ministry "
                        "column.",
                        question="How many ministries have more than 10 systems?",
                        sql="SELECT count(*) FROM agencies WHERE is_ministry",
                        results=['{"error": "column \\"is_ministry\\" does not exist"}'])
    assert policy.category.value == "business_logic"
    assert policy.correct_mapping == "is_ministry -> agencies.agency_type = 'ministry'"
    assert policy.examples == ["How many ministries have more than 10 systems?",
                               "How many ministries have more than 11 systems?"]


def test_a_misused_column_is_not_called_missing() -> None:
    policy = new_policy("total_users counts registered accounts; people active each month are in "
                        "monthly_active_users, use that for 'active users'.",
                        question="How many active users does VNeID have?",
                        sql="SELECT total_users FROM systems WHERE name = 'VNeID'",
                        results=['{"total_users": 80000000}'])
    assert policy.correct_mapping == "total_users -> systems.monthly_active_users"
    assert "there is no column" not in policy.rule and "registered accounts" in policy.rule


def test_a_failed_query_does_not_turn_a_lesson_of_another_kind_into_a_column_swap() -> None:
    """The database rejected users, but the comment teaches the unit of budget_vnd: no "budget_vnd, not users"."""
    unit = new_policy("Budget is budget_vnd in million VND, not VND",
                      question="How many systems have more than 1000 users?",
                      sql="SELECT count(*) FROM systems WHERE users > 1000", results=[USERS_ERROR])
    assert unit.category.value == "data_interpretation"
    assert unit.correct_mapping == "budget_vnd (VND) -> budget_vnd (million VND)"
    assert "users" not in unit.rule
    swap = new_policy("The number of registered accounts is in total_users.",
                      question="How many systems have more than 1000 users?",
                      sql="SELECT count(*) FROM systems WHERE users > 1000", results=[USERS_ERROR])
    assert swap.correct_mapping == "users -> systems.total_users"


def test_a_count_over_a_join_becomes_a_distinct_count() -> None:
    policy = new_policy("212 is more than the number of systems. A system can have several integration rows; "
                        "count DISTINCT s.id.", question="How many systems are connected to NDXP?",
                        sql="SELECT count(*) FROM systems s JOIN integrations i ON i.system_id = s.id "
                            "WHERE i.platform = 'NDXP'", results=['{"count": 212}'])
    assert policy.category.value == "query_construction"
    assert policy.correct_mapping == "count(*) -> count(DISTINCT systems.id)"
    assert "integrations can hold several rows per system" in policy.rule


def test_units_are_stated_for_the_column_the_answer_misread() -> None:
    english = new_policy("The answer says 45,200 VND but budget_vnd is in millions of VND, so it is 45.2 "
                         "billion VND.",
                         question="What is the total budget of systems of the Ministry of Finance?",
                         sql="SELECT sum(budget_vnd) FROM systems", results=['{"sum": 45200}'])
    vietnamese = new_policy("Ngân sách tính bằng triệu đồng, 830,5 là 830,5 triệu chứ không phải 830,5 đồng.",
                            question="Ngân sách trung bình mỗi hệ thống?",
                            sql="SELECT avg(budget_vnd) FROM systems", results=['{"avg": 830.5}'])
    assert english.category.value == vietnamese.category.value == "data_interpretation"
    unit = "budget_vnd (VND) -> budget_vnd (million VND)"
    assert english.correct_mapping == vietnamese.correct_mapping == unit


def test_answer_language_follows_the_question_whichever_language_the_comment_is_in() -> None:
    vietnamese = new_policy("Tôi hỏi bằng tiếng Việt nhưng câu trả lời lại bằng tiếng Anh. Hãy trả lời bằng "
                            "ngôn ngữ của câu hỏi.", question="Có bao nhiêu hệ thống đang vận hành?",
                            answer="There are 128 operating systems.")
    english = new_policy("Please reply in Vietnamese when the user writes in Vietnamese.",
                         question="Tỉnh nào có nhiều hệ thống nhất?", answer="Hanoi has the most systems.")
    assert vietnamese.rule == english.rule
    assert vietnamese.rule.startswith("Answer in the language of the question")
    assert vietnamese.category.value == "response_format" and vietnamese.priority.value == "medium"


def test_a_lesson_without_structure_keeps_the_users_words_and_language() -> None:
    policy = new_policy("Khi liệt kê hệ thống, hãy trình bày dạng gạch đầu dòng, mỗi hệ thống một dòng.",
                        question="Liệt kê các hệ thống của Bộ Y tế")
    assert policy.rule == "Khi liệt kê hệ thống, hãy trình bày dạng gạch đầu dòng, mỗi hệ thống một dòng."
    assert policy.category.value == "response_format" and policy.priority.value == "low"
    assert policy.correct_mapping is None
    assert policy.examples == ["Liệt kê các hệ thống của Bộ Y tế"]


def test_sentences_that_only_complain_are_left_out_of_the_rule() -> None:
    policy = new_policy("Wrong again!! You searched the system name. Matching the name is not how to find a "
                        "province. Join agencies and filter on agencies.province.",
                        question="Which systems belong to Hue province?",
                        sql="SELECT name FROM systems WHERE name LIKE '%Hue%'", results=['{"name": "Hue-S"}'])
    assert policy.rule == ("Matching the name is not how to find a province. Join agencies and filter on "
                           "agencies.province.")
    assert policy.category.value == "query_construction"


@pytest.mark.parametrize("comment", [
    "bad answer", "wrong", "Wrong!", "This is wrong.", "useless", "", "???", "no", "hmm", "sai rồi", "Sai "
                                                                                                     "bét.",
    "không đúng", "ko dung", "Câu trả lời tệ quá", "Kết quả không chính xác.", "Trả lời linh tinh",
    "I don't trust this number.", "The numbers look off to me.", "Not helpful at all", "please double check",
    "You got it wrong again!!", "Wrong answer. There are more systems than that.", "why 0??",
])
def test_comments_that_teach_nothing_are_not_actionable(comment: str) -> None:
    decision = decide(comment)
    assert decision.verdict is Verdict.NOT_ACTIONABLE and decision.policy is None
    assert decision.reasoning
    # A failed query says what went wrong, not what the fix is.
    failed = decide(comment, sql="SELECT count(*) FROM systems WHERE users > 500", results=[USERS_ERROR])
    assert failed.verdict is Verdict.NOT_ACTIONABLE


@pytest.mark.parametrize(("comment", "category"), [
    ("Please answer in English, the question was in English.", "response_format"),
    ("Round percentages to one decimal place in the answer.", "response_format"),
    ("Số tiền nên có dấu phân cách hàng nghìn, ví dụ 45.200 triệu đồng chứ không phải 45200.",
     "response_format"),
    ("830.5 is in millions of VND; the answer reported it as VND.", "data_interpretation"),
    ("đơn vị của budget_vnd là triệu đồng, đừng báo là đồng.", "data_interpretation"),
    ("Count DISTINCT system_id, a system has several integration rows.", "query_construction"),
    ("Muốn lọc theo tỉnh phải join bảng agencies và lọc agencies.province.", "query_construction"),
    ("LIMIT 1 hides ties - several provinces can share the top count, return all of them.",
     "query_construction"),
    ("Systems of level 3 or above include level 3: security_level >= 3.", "business_logic"),
    ("Operating is the status value for active systems.", "business_logic"),
    ("Hệ thống hoạt động là status = 'operating'.", "business_logic"),
    ("The user count is stored in total_users.", "schema_mapping"),
])
def test_the_category_follows_the_lesson(comment: str, category: str) -> None:
    assert new_policy(comment).category.value == category


def test_a_candidate_at_the_threshold_is_a_duplicate_named_by_index_and_id() -> None:
    known = new_policy("Wrong column name. The systems table has total_users, there is no users column.",
                       sql="SELECT count(*) FROM systems WHERE users > 500", results=[USERS_ERROR])
    candidates = [as_candidate(known, DUPLICATE_THRESHOLD, "p-users", 0),
                  as_candidate(known, 0.05, "p-other", 1)]
    decision = decide("users is not a column, total_users is.", sql="SELECT avg(users) FROM systems",
                      results=[USERS_ERROR], candidates=candidates)
    assert decision.verdict is Verdict.DUPLICATE and decision.duplicate_of == 0
    assert "p-users" in decision.reasoning and decision.policy is None


def test_a_candidate_teaching_another_value_of_the_same_column_is_not_a_duplicate() -> None:
    operating = new_policy("Active systems are status 'operating', not 'active'.",
                           question="How many active systems are there?",
                           sql="SELECT count(*) FROM systems WHERE status = 'active'",
                           results=['{"count": 0}'])
    decision = decide("Systems in trial are stored with status 'piloting', not 'trial'.",
                      question="How many systems are in trial?",
                      sql="SELECT count(*) FROM systems WHERE status = 'trial'", results=['{"count": 0}'],
                      candidates=[as_candidate(operating, 0.6)])
    assert decision.verdict is Verdict.NEW
    assert decision.policy.correct_mapping == "'trial' -> systems.status = 'piloting'"


def test_a_feedback_that_yields_the_same_mapping_is_a_duplicate_below_the_threshold() -> None:
    known = new_policy("Monthly active users are in monthly_active_users, there is no active_users column.",
                       sql="SELECT name FROM systems ORDER BY active_users DESC",
                       results=['{"error": "column \\"active_users\\" does not exist"}'])
    decision = decide("There's no column called mau. Monthly active users live in "
                      "systems.monthly_active_users.",
                      sql="SELECT name FROM systems ORDER BY mau DESC",
                      results=['{"error": "column \\"mau\\" does not exist"}'],
                      candidates=[as_candidate(known, 0.2)])
    assert decision.verdict is Verdict.DUPLICATE and decision.duplicate_of == 0


def test_the_duplicate_threshold_is_the_providers_own() -> None:
    # The rules differ, so only the candidate's similarity (given here) can make it a duplicate.
    known = new_policy("Round percentages to one decimal place in the answer.")
    comment = "When listing systems, give one per line as a bulleted list."
    assert decide(comment, candidates=[as_candidate(known, 0.45)]).verdict is Verdict.DUPLICATE
    strict = OfflineProvider(duplicate_threshold=0.9)
    assert strict.duplicate_threshold == 0.9
    assert decide(comment, candidates=[as_candidate(known, 0.45)], provider=strict).verdict is Verdict.NEW
    # A paraphrase of the same rule stays a duplicate under any threshold: the drafted rule restates it.
    paraphrase = "Percentages should be rounded to one decimal place."
    decision = decide(paraphrase, candidates=[as_candidate(known, 0.2)], provider=strict)
    assert decision.verdict is Verdict.DUPLICATE


@pytest.mark.parametrize(("question", "examples"), [
    ("How many systems have more than 500 users?", ["How many systems have more than 500 users?",
                                                    "How many systems have more than 1000 users?"]),
    ("Which systems were launched in 2024?", ["Which systems were launched in 2024?",
                                              "Which systems were launched in 2023?"]),
    ("Hệ thống cấp độ 3 trở lên là bao nhiêu?", ["Hệ thống cấp độ 3 trở lên là bao nhiêu?",
                                                "Hệ thống cấp độ 4 trở lên là bao nhiêu?"]),
    ("Which agency owns the e-Office system?", ["Which agency owns the e-Office system?"]),
    ("Is VNeID 2.0 operating?", ["Is VNeID 2.0 operating?"]),
])
def test_a_second_example_changes_only_a_number_of_the_question(question: str, examples: list[str]) -> None:
    assert example_questions(question) == examples


# Evaluation ------------------------------------------------------------------------------------------------


def _case(case_id: str, group: str, category: str, comment: str, question: str, sql: str = "", *,
          error: str | None = None, rows: list[dict] | None = None, answer: str | None = None) -> dict:
    """A labelled case in the format of tests/data/feedback-cases.jsonl."""
    context: dict = {"question": question}
    if sql:
        context["sql_queries"] = [sql]
    if error is not None:
        context["results"] = [{"error": error}]
    elif rows is not None:
        context["results"] = rows
    if answer:
        context["answer"] = answer
    return {"case_id": case_id, "group": group, "category": category,
            "feedback": {"conversation_id": f"c-{case_id}", "message_id": "m-1", "rating": "negative",
                         "comment": comment, "context": context}}


class AlwaysNew:
    """A provider that makes every feedback a policy of its own."""

    name, model = "always-new", "none"

    def decide(self, request: DecisionRequest) -> ProviderDecision:
        content = PolicyContent(category="other", priority="low", rule=request.context.comment or "empty")
        return ProviderDecision(verdict=Verdict.NEW, reasoning="new", policy=content)


class AlwaysTheFirst:
    """A provider that folds every feedback into the first policy there is."""

    name, model = "always-the-first", "none"

    def decide(self, request: DecisionRequest) -> ProviderDecision:
        if request.candidates:
            return ProviderDecision(verdict=Verdict.DUPLICATE, reasoning="same", duplicate_of=0)
        content = PolicyContent(category="schema_mapping", priority="high", rule="first")
        return ProviderDecision(verdict=Verdict.NEW, reasoning="new", policy=content, llm_calls=1)


class Unavailable:
    """A provider whose model never answers."""

    name, model = "unavailable", "none"

    def decide(self, request: DecisionRequest) -> ProviderDecision:
        raise ProviderError("timed out", retriable=True, attempts=3)


TINY = [
    _case("a1", "G1", "schema_mapping", "total_users, not users", "How many users?"),
    _case("a2", "G1", "schema_mapping", "Dùng total_users", "Bao nhiêu người dùng?"),
    _case("b1", "G2", "business_logic", "status 'operating'", "How many active systems?"),
    _case("n1", "NA1", "other", "bad answer", "How many agencies?"),
]


def test_evaluation_counts_pairs_policies_and_leaks() -> None:
    separate = evaluate_cases(TINY, AlwaysNew())
    assert (separate.policies, separate.actionable_groups) == (4, 2)
    assert separate.pairwise_precision == 1.0 and separate.pairwise_recall == 0.0
    assert separate.not_actionable_leaks == 1 and separate.category_accuracy == 0.0
    assert separate.decisions_without_llm == 4
    merged = evaluate_cases(TINY, AlwaysTheFirst())
    assert merged.policies == 1 and merged.pairwise_recall == 1.0
    assert merged.pairwise_precision == pytest.approx(1 / 3)  # of a1-a2, a1-b1, a2-b1 only a1-a2 is right
    assert merged.category_accuracy == 1.0 and merged.decisions_without_llm == 3
    assert merged.created["policy-a1"].support_count == 4
    failed = evaluate_cases(TINY, Unavailable())
    assert failed.failures == 4 and failed.policies == 0 and failed.actionable_dropped == 3
    assert [outcome.verdict for outcome in failed.outcomes] == ["failed"] * 4


def assert_one_policy_per_lesson(report: EvaluationReport, precision: float, recall: float,
                                 categories: float) -> None:
    """The figures the evaluation must reach, plus what must hold exactly."""
    assert report.pairwise_precision >= precision, report.lines()
    assert report.pairwise_recall >= recall, report.lines()
    assert report.category_accuracy >= categories, report.lines()
    assert report.not_actionable_leaks == 0, report.lines()
    assert report.actionable_dropped == 0, report.lines()
    assert report.decisions_without_llm == report.cases and report.failures == 0
    for policy in report.created.values():
        assert "Ensure the AI" not in policy.rule and "…" not in policy.rule
        assert policy.examples and policy.rationale and policy.missing_knowledge


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return load_cases(DATA / "feedback-cases.jsonl")


def test_the_labelled_sample_ends_as_one_policy_per_lesson(sample: list[dict]) -> None:
    report = evaluate_cases(sample, OfflineProvider())
    assert_one_policy_per_lesson(report, precision=0.95, recall=0.95, categories=0.9)
    assert report.policies == report.actionable_groups == 8
    na_cases = {case["case_id"] for case in sample if case["group"].startswith("NA")}
    assert all(outcome.policy_id is None for outcome in report.outcomes if outcome.case_id in na_cases)


def test_the_paraphrase_file_ends_as_one_policy_per_lesson() -> None:
    report = evaluate_cases(load_cases(DATA / "feedback-cases-extra.jsonl"), OfflineProvider())
    assert_one_policy_per_lesson(report, precision=0.95, recall=0.95, categories=0.9)
    assert report.policies == report.actionable_groups


def test_paraphrases_written_apart_from_the_sample_generalize() -> None:
    """New lessons and new tellings of the sample's lessons, in English and Vietnamese (also unaccented)."""
    report = evaluate_cases(PARAPHRASES, OfflineProvider())
    assert_one_policy_per_lesson(report, precision=0.85, recall=0.95, categories=0.95)
    assert report.actionable_groups - 2 <= report.policies <= report.actionable_groups + 1


def test_all_lessons_together_stay_apart(sample: list[dict]) -> None:
    """124 cases of 27 lessons on one small schema: where lessons crowd each other, decided in file order."""
    extra = [{**case, "group": "G1" if case["group"] == "H5" else case["group"]}  # H5 teaches what G1 does
             for case in load_cases(DATA / "feedback-cases-extra.jsonl")]
    report = evaluate_cases([*sample, *extra, *PARAPHRASES], OfflineProvider())
    assert_one_policy_per_lesson(report, precision=0.85, recall=0.95, categories=0.95)


# Groups with the same name as in tests/data/feedback-cases.jsonl (G1-G8) or feedback-cases-extra.jsonl (H2)
# teach the same lesson as there; groups starting with NA teach nothing.
PARAPHRASES = [
    _case("q01", "H2", "schema_mapping",
          "There's no column called mau. Monthly active users live in systems.monthly_active_users.",
          "Top 5 systems by monthly active users", "SELECT name FROM systems ORDER BY mau DESC LIMIT 5",
          error='column "mau" does not exist'),
    _case("q02", "P2", "business_logic",
          "Systems in trial are stored with status 'piloting', not 'trial'.",
          "How many systems are in trial?", "SELECT count(*) FROM systems WHERE status = 'trial'",
          rows=[{"count": 0}]),
    _case("q03", "P3", "query_construction",
          "Retired systems should not be counted as in use. Add status <> 'retired' to the filter.",
          "How many systems are in use?", "SELECT count(*) FROM systems", rows=[{"count": 212}]),
    _case("q04", "NA5", "other",
          "This is not what I asked for.", "Which province has the most systems?",
          "SELECT a.province, count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id GROUP BY 1 "
          "ORDER BY 2 DESC LIMIT 1",
          rows=[{"province": "Hanoi", "count": 64}]),
    _case("q05", "P4", "data_interpretation",
          "The share is a fraction between 0 and 1: 0.23 means 23%, not 0.23%.",
          "What share of systems are on government cloud?",
          "SELECT avg((hosting = 'government_cloud')::int) FROM systems", rows=[{"avg": 0.23}],
          answer="The share is 0.23%."),
    _case("q06", "H2", "schema_mapping",
          "Cột mau không tồn tại; số người dùng hoạt động hằng tháng lưu ở monthly_active_users.",
          "5 hệ thống có nhiều người dùng hoạt động hằng tháng nhất",
          "SELECT name FROM systems ORDER BY mau DESC LIMIT 5", error='column "mau" does not exist'),
    _case("q07", "P5", "response_format",
          "When listing systems, give one system per line as a bulleted list, not a long comma-separated "
          "sentence.",
          "List the systems of the Ministry of Health",
          "SELECT s.name FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.name = 'Ministry of "
          "Health'",
          rows=[{"name": "eHealth"}]),
    _case("q08", "P6", "schema_mapping",
          "The launch date column is launched_at, not launch_date.",
          "Which systems were launched after 2022?",
          "SELECT name FROM systems WHERE launch_date > '2022-12-31'",
          error='column "launch_date" does not exist'),
    _case("q09", "P2", "business_logic",
          "Hệ thống đang thí điểm có status = 'piloting'. Không có giá trị 'pilot'.",
          "Có bao nhiêu hệ thống đang thí điểm?", "SELECT count(*) FROM systems WHERE status = 'pilot'",
          rows=[{"count": 0}]),
    _case("q10", "NA6", "other",
          "Sai hết rồi, làm lại đi.", "Tổng ngân sách năm 2024 là bao nhiêu?",
          "SELECT sum(budget_vnd) FROM systems WHERE launched_at >= '2024-01-01'", rows=[{"sum": 1200}]),
    _case("q11", "P7", "query_construction",
          "Connection to NDXP is recorded in the integrations table: join integrations on "
          "integrations.system_id = systems.id and filter integrations.platform = 'NDXP'.",
          "How many systems are connected to NDXP?",
          "SELECT count(*) FROM systems WHERE ndxp_connected = true",
          error='column "ndxp_connected" does not exist'),
    _case("q12", "P8", "business_logic",
          "'On-premise' is hosting = 'on_premise'; 'local' is not a hosting value.",
          "How many systems are hosted on premise?", "SELECT count(*) FROM systems WHERE hosting = 'local'",
          rows=[{"count": 0}]),
    _case("q13", "P3", "query_construction",
          "Phải loại trừ các hệ thống đã ngừng hoạt động (status = 'retired') khi đếm hệ thống đang sử "
          "dụng.",
          "Có bao nhiêu hệ thống đang được sử dụng?", "SELECT count(*) FROM systems", rows=[{"count": 212}]),
    _case("q14", "NA7", "other",
          "The numbers look off to me.", "Average security level of ministry systems?",
          "SELECT avg(security_level) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE "
          "a.agency_type = 'ministry'",
          rows=[{"avg": 3.1}]),
    _case("q15", "P6", "schema_mapping",
          "Không có cột launch_date; ngày triển khai nằm ở cột launched_at.",
          "Hệ thống nào triển khai trong năm 2023?",
          "SELECT name FROM systems WHERE launch_date BETWEEN '2023-01-01' AND '2023-12-31'",
          error='column "launch_date" does not exist'),
    _case("q16", "P4", "data_interpretation",
          "Kết quả 0,23 là tỷ lệ, tức là 23%, không phải 0,23%.",
          "Tỷ lệ hệ thống dùng đám mây chính phủ là bao nhiêu?",
          "SELECT avg((hosting = 'government_cloud')::int) FROM systems", rows=[{"avg": 0.23}],
          answer="Tỷ lệ là 0,23%."),
    _case("q17", "P5", "response_format",
          "Khi liệt kê hệ thống, hãy trình bày dạng gạch đầu dòng, mỗi hệ thống một dòng.",
          "Liệt kê các hệ thống của Bộ Y tế",
          "SELECT s.name FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.name = 'Bộ Y tế'",
          rows=[{"name": "eHealth"}]),
    _case("q18", "NA8", "other",
          "Terrible, please fix.", "How many systems have more than 500 users?",
          "SELECT count(*) FROM systems WHERE users > 500", error='column "users" does not exist'),
    _case("q19", "P7", "query_construction",
          "Việc kết nối NDXP nằm ở bảng integrations: nối integrations.system_id = systems.id rồi lọc "
          "platform = 'NDXP'.",
          "Bao nhiêu hệ thống kết nối NDXP?", "SELECT count(*) FROM systems WHERE ndxp = true",
          error='column "ndxp" does not exist'),
    _case("q20", "P8", "business_logic",
          "Máy chủ tại chỗ tương ứng với hosting = 'on_premise'.", "Bao nhiêu hệ thống đặt máy chủ tại chỗ?",
          "SELECT count(*) FROM systems WHERE hosting = 'onprem'", rows=[{"count": 0}]),
    _case("q21", "NA9", "other",
          "Wrong answer. There are more systems than that.", "How many systems are in Hanoi?",
          "SELECT count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.province = 'Hanoi'",
          rows=[{"count": 12}]),
    _case("q22", "NA10", "other",
          "Kết quả không chính xác.", "Có bao nhiêu cơ quan?", "SELECT count(*) FROM agencies",
          rows=[{"count": 90}]),
    _case("r01", "G1", "schema_mapping",
          "Column users doesn't exist in systems — use total_users.",
          "Which systems have fewer than 100 users?", "SELECT name FROM systems WHERE users < 100",
          error='column "users" does not exist'),
    _case("r02", "G2", "schema_mapping",
          "To show who owns a system, join to agencies via agency_id and return agencies.name.",
          "Who owns the VNeID system?", "SELECT owner FROM systems WHERE name = 'VNeID'",
          error='column "owner" does not exist'),
    _case("r03", "G3", "business_logic",
          "Operating is the status value for active systems.", "List active systems in Hanoi",
          "SELECT s.name FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.province = 'Hanoi' "
          "AND s.status = 'active'",
          rows=[]),
    _case("r04", "G4", "query_construction",
          "Province is a column of agencies, not part of the system name; join and filter "
          "agencies.province.",
          "How many systems does Quang Ninh have?",
          "SELECT count(*) FROM systems WHERE name LIKE '%Quang Ninh%'", rows=[{"count": 1}]),
    _case("r05", "G5", "data_interpretation",
          "budget_vnd values are millions of dong.", "What is the largest budget of a single system?",
          "SELECT max(budget_vnd) FROM systems", rows=[{"max": 120000}],
          answer="The largest budget is 120,000 VND."),
    _case("r06", "G6", "response_format",
          "Sao lại trả lời bằng tiếng Anh? Tôi hỏi tiếng Việt mà.", "Có bao nhiêu hệ thống thí điểm?",
          "SELECT count(*) FROM systems WHERE status = 'piloting'", rows=[{"count": 17}],
          answer="There are 17 piloting systems."),
    _case("r07", "G7", "business_logic",
          "Từ cấp độ 3 trở lên nghĩa là security_level >= 3, không phải > 3.",
          "Bao nhiêu hệ thống từ cấp độ 3 trở lên?", "SELECT count(*) FROM systems WHERE security_level > 3",
          rows=[{"count": 41}]),
    _case("r08", "G8", "query_construction",
          "Joining integrations duplicates systems; use COUNT(DISTINCT s.id).",
          "How many systems use LGSP or NDXP?",
          "SELECT count(*) FROM systems s JOIN integrations i ON i.system_id = s.id WHERE i.platform IN "
          "('LGSP', 'NDXP')",
          rows=[{"count": 260}]),
    _case("r09", "NA11", "other",
          "???", "How many agencies are ministries?",
          "SELECT count(*) FROM agencies WHERE agency_type = 'ministry'", rows=[{"count": 22}]),
    _case("r10", "G1", "schema_mapping",
          "Dùng cột total_users để đếm người dùng.", "Có bao nhiêu người dùng trên hệ thống VNeID?",
          "SELECT users FROM systems WHERE name = 'VNeID'", error='column "users" does not exist'),
    _case("r11", "G2", "schema_mapping",
          "Tên cơ quan lấy từ bảng agencies (agencies.name), nối qua systems.agency_id = agencies.id.",
          "Hệ thống e-Office thuộc cơ quan nào?", "SELECT agency_name FROM systems WHERE name = 'e-Office'",
          error='column "agency_name" does not exist'),
    _case("r12", "G3", "business_logic",
          "Hệ thống hoạt động là status = 'operating'.", "Danh sách hệ thống đang hoạt động của Bộ Tài chính",
          "SELECT s.name FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.name = 'Bộ Tài "
          "chính' AND s.status = 'active'",
          rows=[]),
    _case("r13", "NA12", "other",
          "Not helpful at all", "Which systems were launched in 2021?",
          "SELECT name FROM systems WHERE launched_at >= '2021-01-01' AND launched_at < '2022-01-01'",
          rows=[{"name": "eTax"}]),
    _case("r14", "G4", "query_construction",
          "Muốn lọc theo tỉnh phải join bảng agencies và lọc agencies.province, không tìm trong tên hệ "
          "thống.",
          "Có bao nhiêu hệ thống ở Cần Thơ?", "SELECT count(*) FROM systems WHERE name ILIKE '%Can Tho%'",
          rows=[{"count": 0}]),
    _case("r15", "G5", "data_interpretation",
          "Ngân sách budget_vnd tính bằng triệu đồng, 45.200 nghĩa là 45,2 tỷ đồng.",
          "Tổng ngân sách của Bộ Tài chính?",
          "SELECT sum(budget_vnd) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.name = 'Bộ "
          "Tài chính'",
          rows=[{"sum": 45200}], answer="Tổng ngân sách là 45.200 đồng."),
    _case("r16", "G6", "response_format",
          "Answer me in Vietnamese, I asked in Vietnamese!", "Hệ thống nào có cấp độ bảo mật cao nhất?",
          "SELECT name FROM systems ORDER BY security_level DESC LIMIT 1", rows=[{"name": "VNeID"}],
          answer="VNeID has the highest security level."),
    _case("r17", "NA13", "other",
          "Trả lời linh tinh", "Có bao nhiêu hệ thống dùng đám mây thương mại?",
          "SELECT count(*) FROM systems WHERE hosting = 'commercial_cloud'", rows=[{"count": 30}]),
    _case("r18", "G7", "business_logic",
          "Level 3 and above should use >= 3.", "Count systems with security level 3 and above",
          "SELECT count(*) FROM systems WHERE security_level > 3", rows=[{"count": 41}]),
    _case("r19", "G8", "query_construction",
          "Đếm trùng hệ thống vì một hệ thống có nhiều dòng trong integrations, phải dùng count(distinct "
          "system_id).",
          "Có bao nhiêu hệ thống kết nối LGSP?", "SELECT count(*) FROM integrations WHERE platform = 'LGSP'",
          rows=[{"count": 340}]),
    _case("r20", "NA14", "other",
          "Hmm, I expected a different number.", "How many systems are piloting?",
          "SELECT count(*) FROM systems WHERE status = 'piloting'", rows=[{"count": 17}]),
    _case("r21", "NA15", "other",
          "Số liệu sai", "Bao nhiêu hệ thống ở Hà Nội?",
          "SELECT count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.province = 'Hanoi'",
          rows=[{"count": 64}]),
    _case("r22", "G1", "schema_mapping",
          "The number of users is total_users.", "Sum of users across all systems",
          "SELECT sum(users) FROM systems", error='column "users" does not exist'),
    _case("s01", "K1", "query_construction",
          "For 'most systems' you have to sort descending; ORDER BY count(*) ASC gives the fewest.",
          "Which agency has the most systems?",
          "SELECT a.name, count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id GROUP BY a.name "
          "ORDER BY count(*) ASC LIMIT 1",
          rows=[{"name": "Ban Cơ yếu", "count": 1}]),
    _case("s02", "G1", "schema_mapping",
          "The user count field is called total_users.", "Show systems with at least 10000 users",
          "SELECT name FROM systems WHERE users >= 10000", error='column "users" does not exist'),
    _case("s03", "H2", "schema_mapping",
          "total_users counts registered accounts; people active each month are in monthly_active_users, "
          "use that for 'active users'.",
          "How many active users does VNeID have?", "SELECT total_users FROM systems WHERE name = 'VNeID'",
          rows=[{"total_users": 80000000}]),
    _case("s04", "NA20", "other",
          "I don't trust this number.", "How many systems are hosted on commercial cloud?",
          "SELECT count(*) FROM systems WHERE hosting = 'commercial_cloud'", rows=[{"count": 30}]),
    _case("s05", "G2", "schema_mapping",
          "Use the agencies table to get the owner's name; systems only stores agency_id.",
          "Which agency runs the eTax system?", "SELECT agency FROM systems WHERE name = 'eTax'",
          error='column "agency" does not exist'),
    _case("s06", "K3", "response_format",
          "Just give the number, the answer is far too long.", "How many systems are operating?",
          "SELECT count(*) FROM systems WHERE status = 'operating'", rows=[{"count": 128}],
          answer="Based on the data in the systems table, after filtering ... there are 128 systems."),
    _case("s07", "G3", "business_logic",
          "Active ≠ 'active'. The status for running systems is 'operating'.",
          "Count the active systems per province",
          "SELECT a.province, count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE s.status "
          "= 'active' GROUP BY 1",
          rows=[]),
    _case("s08", "K4", "business_logic",
          "Ministries have no province: agencies.province is NULL for them, so group them under "
          "agency_type = 'ministry' instead of dropping them.",
          "Number of systems per province, including ministries",
          "SELECT a.province, count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE "
          "a.province IS NOT NULL GROUP BY 1",
          rows=[{"province": "Hanoi", "count": 64}]),
    _case("s09", "NA21", "other",
          "Sai bét.", "Có bao nhiêu hệ thống cấp độ 4?",
          "SELECT count(*) FROM systems WHERE security_level = 4", rows=[{"count": 20}]),
    _case("s10", "K1", "query_construction",
          "Muốn lấy cơ quan có nhiều hệ thống nhất thì phải sắp xếp giảm dần (ORDER BY count(*) DESC), "
          "không phải tăng dần.",
          "Cơ quan nào có nhiều hệ thống nhất?",
          "SELECT a.name, count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id GROUP BY a.name "
          "ORDER BY count(*) LIMIT 1",
          rows=[{"name": "Ban Cơ yếu", "count": 1}]),
    _case("s11", "G5", "data_interpretation",
          "Budget figures come in millions of VND — 120,000 is 120 billion VND, not 120,000 VND.",
          "Biggest single system budget?", "SELECT max(budget_vnd) FROM systems", rows=[{"max": 120000}],
          answer="The biggest budget is 120,000 VND."),
    _case("s12", "H2", "schema_mapping",
          "Người dùng hoạt động là monthly_active_users, còn total_users chỉ là số tài khoản đăng ký.",
          "VNeID có bao nhiêu người dùng hoạt động?", "SELECT total_users FROM systems WHERE name = 'VNeID'",
          rows=[{"total_users": 80000000}]),
    _case("s13", "G6", "response_format",
          "Câu hỏi tiếng Việt thì trả lời tiếng Việt nhé.", "Hệ thống nào mới nhất?",
          "SELECT name FROM systems ORDER BY launched_at DESC LIMIT 1", rows=[{"name": "eCabinet"}],
          answer="The newest system is eCabinet."),
    _case("s14", "NA22", "other",
          "please double check", "How many integrations does LGSP have?",
          "SELECT count(*) FROM integrations WHERE platform = 'LGSP'", rows=[{"count": 340}]),
    _case("s15", "G7", "business_logic",
          "Inclusive please: level 4 or higher means security_level >= 4.",
          "Systems with security level 4 or higher?", "SELECT name FROM systems WHERE security_level > 4",
          rows=[{"name": "VNeID"}]),
    _case("s16", "K3", "response_format",
          "Trả lời ngắn gọn, chỉ cần con số thôi.", "Có bao nhiêu cơ quan cấp tỉnh?",
          "SELECT count(*) FROM agencies WHERE agency_type = 'province'", rows=[{"count": 63}],
          answer="Dựa trên dữ liệu trong bảng agencies, sau khi lọc ... có 63 cơ quan."),
    _case("s17", "G4", "query_construction",
          "A system's province comes from its agency. Filter on agencies.province, don't search the name.",
          "List the systems of Hai Phong", "SELECT name FROM systems WHERE name LIKE '%Hai Phong%'",
          rows=[{"name": "Hai Phong Smart City"}]),
    _case("s18", "G8", "query_construction",
          "Some systems are integrated several times, so the count is inflated; count distinct system_id.",
          "How many systems have any integration?", "SELECT count(*) FROM integrations",
          rows=[{"count": 512}]),
    _case("s19", "K4", "business_logic",
          "Bộ không có tỉnh (province là NULL), đừng loại bỏ; hãy gộp theo agency_type = 'ministry'.",
          "Số hệ thống theo tỉnh, tính cả các bộ",
          "SELECT a.province, count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE "
          "a.province IS NOT NULL GROUP BY 1",
          rows=[{"province": "Hanoi", "count": 64}]),
    _case("s20", "NA23", "other",
          "why 0??", "How many systems are retired?", "SELECT count(*) FROM systems WHERE status = 'retired'",
          rows=[{"count": 0}]),
    _case("s21", "G3", "business_logic",
          "Không có trạng thái 'active' trong dữ liệu; hệ thống đang chạy có status 'operating'.",
          "Bao nhiêu hệ thống đang chạy?", "SELECT count(*) FROM systems WHERE status = 'active'",
          rows=[{"count": 0}]),
    _case("s22", "G2", "schema_mapping",
          "Lấy tên cơ quan chủ quản từ agencies.name, systems không có cột agency.",
          "Cơ quan nào quản lý hệ thống eTax?", "SELECT agency FROM systems WHERE name = 'eTax'",
          error='column "agency" does not exist'),
    _case("s23", "NA24", "other",
          "Câu trả lời chưa đúng lắm.", "Trung bình mỗi tỉnh có bao nhiêu hệ thống?",
          "SELECT avg(c) FROM (SELECT count(*) c FROM systems GROUP BY agency_id) t", rows=[{"avg": 3.4}]),
    _case("s24", "G5", "data_interpretation",
          "đơn vị của budget_vnd là triệu đồng, đừng báo là đồng.", "Ngân sách trung bình của hệ thống?",
          "SELECT avg(budget_vnd) FROM systems", rows=[{"avg": 830.5}],
          answer="Ngân sách trung bình là 830,5 đồng."),
    _case("t01", "G1", "schema_mapping",
          "khong co cot users, phai dung total_users", "he thong nao co tren 1000 nguoi dung",
          "SELECT name FROM systems WHERE users > 1000", error='column "users" does not exist'),
    _case("t02", "M1", "query_construction",
          "LIMIT 1 hides ties - several provinces can share the top count, return all of them.",
          "Which province has the most systems?",
          "SELECT a.province, count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id GROUP BY 1 "
          "ORDER BY 2 DESC LIMIT 1",
          rows=[{"province": "Hanoi", "count": 64}]),
    _case("t03", "G3", "business_logic",
          "there's no 'active' status, systems in service are status='operating'",
          "active systems of Ministry of Health?",
          "SELECT s.name FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.name = 'Ministry of "
          "Health' AND s.status = 'active'",
          rows=[]),
    _case("t04", "NA30", "other",
          "no", "How many systems are on premise?",
          "SELECT count(*) FROM systems WHERE hosting = 'on_premise'", rows=[{"count": 80}]),
    _case("t05", "M2", "business_logic",
          "'High security' in our reports means security_level 4 and 5, i.e. security_level >= 4.",
          "How many high security systems are there?",
          "SELECT count(*) FROM systems WHERE security_level = 5", rows=[{"count": 9}]),
    _case("t06", "G5", "data_interpretation",
          "ngan sach tinh bang trieu dong, 830.5 la 830,5 trieu chu khong phai 830,5 dong",
          "ngan sach trung binh moi he thong", "SELECT avg(budget_vnd) FROM systems", rows=[{"avg": 830.5}],
          answer="Ngan sach trung binh la 830,5 dong"),
    _case("t07", "M3", "query_construction",
          "connected_at can be in the future for planned integrations; only count rows with connected_at "
          "<= current_date.",
          "How many systems are connected to LGSP today?",
          "SELECT count(DISTINCT system_id) FROM integrations WHERE platform = 'LGSP'",
          rows=[{"count": 300}]),
    _case("t08", "G6", "response_format",
          "Trả lời bằng tiếng Việt giúp tôi, đừng dùng tiếng Anh.", "Hệ thống nào có ngân sách lớn nhất?",
          "SELECT name FROM systems ORDER BY budget_vnd DESC LIMIT 1", rows=[{"name": "VNeID"}],
          answer="VNeID has the largest budget."),
    _case("t09", "M1", "query_construction",
          "Nhiều tỉnh có thể cùng số hệ thống cao nhất, LIMIT 1 làm mất các tỉnh đồng hạng; hãy trả về tất "
          "cả.",
          "Tỉnh nào có nhiều hệ thống nhất?",
          "SELECT a.province, count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id GROUP BY 1 "
          "ORDER BY 2 DESC LIMIT 1",
          rows=[{"province": "Hanoi", "count": 64}]),
    _case("t10", "NA31", "other",
          "ko dung", "Co bao nhieu co quan cap bo?",
          "SELECT count(*) FROM agencies WHERE agency_type = 'ministry'", rows=[{"count": 22}]),
    _case("t11", "G8", "query_construction",
          "you are double counting systems that have more than one integration. need COUNT(DISTINCT "
          "i.system_id)",
          "number of systems on NDXP", "SELECT count(*) FROM integrations i WHERE i.platform = 'NDXP'",
          rows=[{"count": 212}]),
    _case("t12", "M2", "business_logic",
          "Hệ thống 'bảo mật cao' nghĩa là cấp độ 4 trở lên: security_level >= 4, không chỉ = 5.",
          "Có bao nhiêu hệ thống bảo mật cao?", "SELECT count(*) FROM systems WHERE security_level = 5",
          rows=[{"count": 9}]),
    _case("t13", "G2", "schema_mapping",
          "agency_name isn't a column. the owner name is agencies.name (join on agency_id).",
          "which agency owns HueS", "SELECT agency_name FROM systems WHERE name = 'HueS'",
          error='column "agency_name" does not exist'),
    _case("t14", "M3", "query_construction",
          "Tích hợp có connected_at trong tương lai là chưa kết nối; chỉ đếm connected_at <= current_date.",
          "Hiện có bao nhiêu hệ thống đã kết nối LGSP?",
          "SELECT count(DISTINCT system_id) FROM integrations WHERE platform = 'LGSP'",
          rows=[{"count": 300}]),
    _case("t15", "NA32", "other",
          "You got it wrong again!!", "Average budget per province?",
          "SELECT a.province, avg(s.budget_vnd) FROM systems s JOIN agencies a ON a.id = s.agency_id GROUP "
          "BY 1",
          rows=[{"province": "Hanoi", "avg": 900}]),
    _case("t16", "G7", "business_logic",
          "at least level 2 => security_level >= 2 (you used > 2)", "systems with at least security level 2",
          "SELECT count(*) FROM systems WHERE security_level > 2", rows=[{"count": 70}]),
    _case("t17", "G4", "query_construction",
          "loc theo tinh phai dung agencies.province qua join, khong phai tim trong ten he thong",
          "co bao nhieu he thong o Hue", "SELECT count(*) FROM systems WHERE name LIKE '%Hue%'",
          rows=[{"count": 2}]),
    _case("t18", "M4", "response_format",
          "Please format budgets with thousands separators, e.g. 45,200 million VND, not 45200.",
          "Total budget of the Ministry of Finance?",
          "SELECT sum(budget_vnd) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.name = "
          "'Ministry of Finance'",
          rows=[{"sum": 45200}], answer="The total is 45200 million VND."),
    _case("t19", "NA33", "other",
          "Câu trả lời không giúp được gì.", "Hệ thống nào mới triển khai năm 2024?",
          "SELECT name FROM systems WHERE launched_at >= '2024-01-01'", rows=[{"name": "eCabinet"}]),
    _case("t20", "M4", "response_format",
          "Số tiền nên có dấu phân cách hàng nghìn, ví dụ 45.200 triệu đồng chứ không phải 45200.",
          "Tổng ngân sách của Bộ Tài chính?",
          "SELECT sum(budget_vnd) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.name = 'Bộ "
          "Tài chính'",
          rows=[{"sum": 45200}], answer="Tổng là 45200 triệu đồng."),
    _case("t21", "G3", "business_logic",
          "Đang hoạt động = status 'operating' nha, không phải 'active'.",
          "Bao nhiêu hệ thống đang hoạt động ở Đà Nẵng?",
          "SELECT count(*) FROM systems s JOIN agencies a ON a.id = s.agency_id WHERE a.province = 'Da "
          "Nang' AND s.status = 'active'",
          rows=[{"count": 0}]),
    _case("t22", "G1", "schema_mapping",
          "Use total_users (registered users). users is not a column.", "Which system has the fewest users?",
          "SELECT name FROM systems ORDER BY users ASC LIMIT 1", error='column "users" does not exist'),
    _case("t23", "NA34", "other",
          "hmm", "List systems with budget over 1 billion",
          "SELECT name FROM systems WHERE budget_vnd > 1000", rows=[{"name": "VNeID"}]),
    _case("t24", "G8", "query_construction",
          "Đếm theo dòng integrations bị trùng hệ thống, dùng COUNT(DISTINCT system_id).",
          "Số hệ thống kết nối NDXP", "SELECT count(*) FROM integrations WHERE platform = 'NDXP'",
          rows=[{"count": 212}]),
]
