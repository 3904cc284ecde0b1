"""Bilingual matching: Vietnamese and English meet on the same terms and schema objects."""

from __future__ import annotations

import pytest

from policyloop_common.text_matching import fold, normalize, schema_objects, similarity, terms


def test_fold_removes_vietnamese_diacritics() -> None:
    assert fold("Đã ghi nhận phản hồi") == "da ghi nhan phan hoi"


def test_normalize_keeps_identifiers() -> None:
    assert normalize("Use agencies.province, not name.") == "use agencies.province not name"
    assert "total_users" in normalize("cột total_users.")


@pytest.mark.parametrize(("vietnamese", "english"), [
    ("số người dùng", "user"), ("hệ thống", "system"), ("cơ quan", "agency"), ("ngân sách", "budget"),
    ("đang hoạt động", "operating"), ("tiếng Việt", "vietnamese"), ("triệu đồng", "million"),
])
def test_vietnamese_domain_phrases_become_english_terms(vietnamese: str, english: str) -> None:
    assert english in terms(vietnamese)


def test_schema_objects_from_text_and_sql() -> None:
    assert schema_objects("join systems.agency_id to agencies.id") >= {"systems.agency_id", "agency_id",
                                                                      "agencies.id", "id"}
    assert schema_objects("status 'operating', not 'active'") == {"value:operating", "value:active"}
    assert schema_objects("The user count is stored somewhere") == set()
    assert schema_objects("SELECT count(*) FROM systems WHERE users > 500") == {"systems", "users"}
    assert schema_objects('column "users" does not exist') == {"users"}


def test_paraphrase_across_languages_beats_another_lesson_on_the_same_table() -> None:
    english = "Wrong column name. The systems table has total_users, there is no users column."
    vietnamese = "Sai tên cột: số người dùng nằm ở cột total_users chứ không phải users."
    other = "Use security_level >= 3 for systems of level 3 or above."
    assert similarity(english, vietnamese) > 0.5
    assert similarity(english, vietnamese) > 2 * similarity(english, other)


def test_similarity_is_symmetric_and_bounded() -> None:
    a, b = "budget_vnd is in millions of VND", "Ngân sách budget_vnd tính bằng triệu đồng"
    assert similarity(a, b) == pytest.approx(similarity(b, a))
    assert 0 <= similarity(a, b) <= 1
    assert similarity(a, a) == pytest.approx(1.0, abs=1e-6)
    assert similarity("", a) == 0.0
