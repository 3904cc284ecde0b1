"""Bilingual matching: Vietnamese and English meet on the same terms and schema objects."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from policyloop_common.text_matching import (
    _ENGLISH_PHRASES,
    _FOLDED_PHRASES,
    _VIETNAMESE_PHRASES,
    Document,
    _phrase_pattern,
    _trigrams,
    fold,
    normalize,
    object_weights,
    schema_objects,
    similarity,
    similarity_at_least,
    similarity_docs,
    terms,
)


def test_fold_removes_vietnamese_diacritics_and_lowercases() -> None:
    assert fold("Đã ghi nhận phản hồi") == "da ghi nhan phan hoi"
    assert fold("ĐANG HOẠT ĐỘNG") == "dang hoat dong"


def test_normalize_turns_punctuation_to_spaces_but_keeps_identifiers() -> None:
    assert normalize("Use agencies.province, not name.") == "use agencies.province not name"
    assert normalize("Cột total_users (budget_vnd: 45.2 tỷ)!") == "cot total_users budget_vnd 45.2 ty"
    assert normalize("'operating'; \"users\"") == "operating users"


@pytest.mark.parametrize(("phrase", "term"), [
    ("người dùng", "user"), ("nguoi dung", "user"), ("số người dùng", "user"), ("hệ thống", "system"),
    ("he thong", "system"), ("cơ quan", "agency"), ("tỉnh", "province"), ("thành phố", "province"),
    ("ngân sách", "budget"), ("kinh phí", "budget"), ("đang hoạt động", "operating"),
    ("vận hành", "operating"),
    ("bảo mật", "security"), ("triệu", "million"), ("tỷ", "billion"), ("kết nối", "integration"),
    ("tích hợp", "integration"), ("đám mây", "cloud"), ("thí điểm", "piloting"),
    ("ngừng hoạt động", "retired"),
    ("cấp độ", "level"), ("trở lên", "above"), ("tiếng Việt", "vietnamese"), ("làm tròn", "round"),
    ("giảm dần", "descending"), ("Bộ Tài chính", "ministry"),
])
def test_vietnamese_domain_phrases_become_canonical_english_terms(phrase: str, term: str) -> None:
    assert term in terms(phrase)


@pytest.mark.parametrize(("text", "term"), [
    ("users", "user"), ("agencies", "agency"), ("connected", "integration"), ("or above", "above"),
    ("at least", "above"), (">=", "above"), ("unique", "distinct"), ("reply", "answer"),
    ("cities", "province"),
])
def test_english_words_meet_the_same_canonical_terms(text: str, term: str) -> None:
    assert term in terms(text)


def test_fold_gives_every_character_what_normalizing_and_dropping_each_mark_gives() -> None:
    def by_each_character(text: str) -> str:
        text = unicodedata.normalize("NFC", text).replace("đ", "d").replace("Đ", "D")
        return "".join(char for char in unicodedata.normalize("NFD", text)
                       if unicodedata.category(char) != "Mn").lower()

    characters = [chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF]
    assert [fold(char) for char in characters] == [by_each_character(char) for char in characters]
    sentences = ["Số người dùng của hệ thống 'đang vận hành'", "ĐƠN VỊ", "a\u0301b", "Ǆ ﬁ ẞ", "plain ASCII"]
    assert [fold(text) for text in sentences] == [by_each_character(text) for text in sentences]


def test_diacritics_keep_apart_what_folding_would_merge() -> None:
    # "tỉnh" is a province, "tính" is to compute; folded, both read "tinh".
    assert "province" in terms("Hà Nội là tỉnh có nhiều hệ thống")
    assert "province" not in terms("ngân sách tính bằng triệu đồng")
    # "năm" is a year, "nằm ở" is where something is stored.
    assert "year" in terms("năm 2024") and "stored" in terms("nằm ở cột total_users")


def test_terms_drop_stopwords_stem_plurals_and_keep_identifiers() -> None:
    assert terms("The systems were counted in the tables") == ["system", "count", "table"]
    assert terms("planned") == ["plan"]
    assert terms("operating systems") == ["operating", "system"]  # a status, not a verb to stem
    assert "total_users" in terms("Use total_users, not users")
    assert terms("agencies.province") == ["agencies.province", "province"]
    assert "s.id" not in terms("count DISTINCT s.id")  # a one-letter alias is not a table


def test_schema_objects_in_text() -> None:
    assert schema_objects("join systems.agency_id to agencies.id") >= {
        "systems.agency_id", "systems", "agency_id", "agencies.id", "agencies", "id"}
    assert schema_objects("status 'operating', not 'active'") == {"value:operating", "value:active"}
    assert schema_objects('column "users" does not exist') == {"users"}
    assert schema_objects("column \\\"users\\\" does not exist") == {"users"}  # as JSON renders it
    assert schema_objects("read agencies.name.") >= {"agencies.name", "name", "agencies"}
    assert "total_users" in schema_objects("Sai tên cột: số người dùng nằm ở cột total_users.")


def test_ordinary_words_are_not_schema_objects() -> None:
    assert schema_objects("The user count is stored somewhere") == set()
    assert schema_objects("The agency's name isn't in this table") == set()  # apostrophes are not quotes
    assert schema_objects("Please select the systems from Hanoi, e.g. Hue") == set()  # English, not SQL
    # A long quotation is the user's wording, not a value of the database.
    assert schema_objects("'Cấp độ 3 trở lên' phải bao gồm cấp độ 3") == set()


def test_schema_objects_of_sql_resolve_aliases_and_skip_keywords_functions_and_aliases() -> None:
    sql = ("SELECT a.province, count(*) AS n FROM systems s JOIN agencies a ON a.id = s.agency_id "
           "WHERE s.name ILIKE '%Da Nang%' GROUP BY 1")
    assert schema_objects(sql) == {
        "agencies.province", "province", "agencies", "systems", "agencies.id", "id", "systems.agency_id",
        "agency_id", "systems.name", "name", "value:da nang"}
    assert schema_objects("SELECT count(*) FROM systems WHERE users > 500") == {"systems", "users"}


def test_object_weights_rank_evidence() -> None:
    weights = object_weights("Join systems.agency_id to agencies.id, filter agencies.province and "
                             "launched_at >= '2024-01-01' and status = 'operating'")
    assert weights["value:operating"] == weights["launched_at"] == weights["agencies.province"] == 1.0
    assert weights["systems.agency_id"] < 1.0  # a key says how to join, not what the lesson is about
    assert weights["value:2024 01 01"] < 1.0  # a date is the case's own figure (values are normalized)
    assert weights["id"] < weights["agencies"] < weights["province"] < 1.0  # generic, table, plain column


def test_similarity_is_symmetric_bounded_and_one_for_the_same_text() -> None:
    a, b = "budget_vnd is in millions of VND", "Ngân sách budget_vnd tính bằng triệu đồng"
    assert similarity(a, b) == pytest.approx(similarity(b, a))
    assert 0 < similarity(a, b) <= 1
    assert similarity(a, a) == pytest.approx(1.0)
    assert similarity("", a) == 0.0
    assert similarity("", "") == 0.0


def test_a_lesson_told_in_both_languages_beats_another_lesson_on_the_same_table() -> None:
    english = "Wrong column name. The systems table has total_users, there is no users column."
    vietnamese = "Sai tên cột: số người dùng nằm ở cột total_users chứ không phải users."
    same_table = "Use security_level >= 3 for systems of level 3 or above."
    assert similarity(english, vietnamese) > 0.5
    assert similarity(english, vietnamese) > 3 * similarity(english, same_table)
    operating_en = "'Active' systems are the ones with status 'operating'; there is no status 'active'."
    operating_vi = ("Trạng thái 'đang hoạt động' tương ứng với status = 'operating', "
                    "không có giá trị 'active'.")
    piloting = "Systems in trial are stored with status 'piloting', not 'trial'."
    assert similarity(operating_en, operating_vi) > 2 * similarity(operating_en, piloting)


def test_paraphrases_without_shared_objects_still_meet_on_terms() -> None:
    english = "Please reply in Vietnamese when the user writes in Vietnamese."
    vietnamese = "Câu hỏi tiếng Việt thì trả lời tiếng Việt nhé."
    unrelated = "Count DISTINCT system_id, a system has several integration rows."
    assert similarity(english, vietnamese) > 0.3
    assert similarity(english, unrelated) < 0.1


def test_disjoint_schema_objects_lower_the_score() -> None:
    shared = similarity("Use the column total_users for users", "The user count is total_users")
    disjoint = similarity("Use the column total_users for users", "The user count is monthly_active_users")
    assert shared > disjoint + 0.2


def test_a_document_is_prepared_once_and_reused() -> None:
    assert Document.of("Use agencies.province") is Document.of("Use agencies.province")
    document = Document.of("Use agencies.province")
    assert similarity_docs(document, document) == pytest.approx(1.0)


def test_a_setting_can_tip_a_match_but_never_carry_it() -> None:
    policy = Document.of("Ministries are agencies with agency_type = 'ministry'.")
    # A comment with no terms of its own gets none from its question, however close the question is.
    empty = Document.of_parts("???", [("How many agencies are ministries?", 0.3)])
    assert similarity_docs(empty, policy) == 0.0
    with_question = Document.of_parts("Use agency_type for ministries", [("How many ministries?", 0.3)])
    without = Document.of_parts("Use agency_type for ministries")
    assert similarity_docs(with_question, policy) >= similarity_docs(without, policy)


def test_objects_given_by_the_caller_replace_those_found() -> None:
    document = Document.of_parts("the users column", objects={"users": 0.8})
    assert dict(document.objects) == {"users": 0.8}
    assert document.object_mass == pytest.approx(0.8)


def _listed_in_turn(phrases: list[str]) -> re.Pattern[str]:
    """The plain form of a phrase pattern: every phrase in turn, longest first."""
    ordered = "|".join(map(re.escape, sorted(phrases, key=len, reverse=True)))
    return re.compile(r"(?<![\w.])(" + ordered + r")(?!\w|\.\w)")


@pytest.mark.parametrize("text", [
    "so luong nguoi dung", "so luong nguoix so luong.", "so luong.x so", "so_luong so.luong so luong nguoi",
    "tong so luong nguoi dung va so", "so luongnguoi so  luong",
])
def test_a_phrase_tree_matches_what_the_phrases_tried_in_turn_match(text: str) -> None:
    """A longer phrase is tried first and the match falls back to a shorter one where the longer does not end
    at a word's end — what trying each phrase in turn, longest first, gives."""
    phrases = ["so", "so luong", "so luong nguoi", "so luong nguoi dung", "tong", "tong so", "luong"]
    tree, in_turn = _phrase_pattern(phrases), _listed_in_turn(phrases)
    assert [match.group(1) for match in tree.finditer(text)] == [m.group(1) for m in in_turn.finditer(text)]
    assert [match.span() for match in tree.finditer(text)] == [m.span() for m in in_turn.finditer(text)]


def test_the_lexicons_phrase_trees_match_what_their_phrases_tried_in_turn_match() -> None:
    """Every phrase of the three lexicons, alone and run together with its neighbours in every way a boundary
    can be written, is found where the phrases tried in turn find it."""
    for lexicon in (_VIETNAMESE_PHRASES, _FOLDED_PHRASES, _ENGLISH_PHRASES):
        phrases = sorted(lexicon)
        tree, in_turn = _phrase_pattern(phrases), _listed_in_turn(phrases)
        for first, second in zip(phrases, phrases[1:] + phrases[:1], strict=True):
            for joint in (" ", "", ".", "_", ". ", "x "):
                text = f"{first}{joint}{second} {first.split()[0]}"
                assert ([(m.span(), m.group(1)) for m in tree.finditer(text)]
                        == [(m.span(), m.group(1)) for m in in_turn.finditer(text)]), text


def test_a_similarity_below_a_threshold_is_told_as_none_and_one_above_as_it_is() -> None:
    texts = ["Use systems.total_users for the number of users; there is no column users.",
             "Use the column systems.total_users for how many users; users is no column.",
             "Ministries are agencies with agency_type = 'ministry'.",
             "Count only systems with systems.is_active = true when asked how many systems are running.",
             "Đếm hệ thống đang hoạt động bằng systems.is_active = true.",
             "???", "the users column"]
    documents = [Document.of(text) for text in texts]
    checked = 0
    for a in documents:
        for b in documents:
            score = similarity_docs(a, b)
            for threshold in (0.1, 0.3, 0.6, score, 0.9, 1.0):
                expected = score if score >= threshold else None
                assert similarity_at_least(a, b, threshold) == expected
                checked += expected is not None
    assert checked > len(documents) * 2  # pairs above their thresholds as well as below


def test_trigrams_are_taken_only_when_a_comparison_needs_them() -> None:
    rule = Document.of_parts("Ministries are agencies with agency_type = 'ministry'.")
    other = Document.of_parts("Count only systems with systems.is_active = true when asked how many are running.")
    assert similarity_at_least(rule, other, 0.6) is None  # settled by the terms and objects alone
    assert "trigrams" not in vars(rule) and "trigrams" not in vars(other)
    similarity_docs(rule, other)
    assert rule.trigrams == _trigrams("Ministries are agencies with agency_type = 'ministry'.")
    assert "trigrams" in vars(rule)
