"""The schema catalogue: parsed from DDL, and the policies it sends to review."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_generator.evaluation import evaluate_cases, load_cases
from policy_generator.providers.offline import OfflineProvider
from policy_generator.schema_catalogue import SchemaCatalogue
from policyloop_common.policy import PolicyContent

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
CATALOGUE = SchemaCatalogue.load(str(DATA / "sample-schema.sql"))


def content(rule: str, mapping: str | None = None) -> PolicyContent:
    return PolicyContent(category="schema_mapping", priority="high", rule=rule, correct_mapping=mapping)


def test_tables_columns_and_allowed_values_come_from_the_ddl() -> None:
    assert set(CATALOGUE.columns) == {"agencies", "systems", "integrations"}
    assert {"total_users", "budget_vnd", "status", "agency_id"} <= CATALOGUE.columns["systems"]
    assert "primary" not in CATALOGUE.columns["systems"] and "check" not in CATALOGUE.columns["agencies"]
    assert CATALOGUE.values[("systems", "status")] == {"operating", "piloting", "building", "retired"}


def test_a_ddl_without_tables_is_refused() -> None:
    with pytest.raises(ValueError, match="CREATE TABLE"):
        SchemaCatalogue.from_ddl("-- nothing here\nSELECT 1;")


@pytest.mark.parametrize(("policy", "expected"), [
    (content("Use systems.total_users; there is no column systems.users.", "users -> systems.total_users"), []),
    (content("Use systems.user_count for the number of users.", "users -> systems.user_count"),
     ["unknown column systems.user_count in policy.correct_mapping",
      "unknown column systems.user_count in policy.rule"]),
    (content("Active systems are those with systems.status = 'operating', not systems.status = 'active'."), []),
    (content("Active systems are those with systems.status = 'live'."),
     ["value 'live' not allowed for systems.status in policy.rule"]),
    (content("Join on integrations.system_id; e.g. budgets.amount is outside this schema."), []),
    (content("Dùng agencies.province chứ không phải agencies.location."), []),
])
def test_what_a_policy_names_as_right_must_exist(policy: PolicyContent, expected: list[str]) -> None:
    assert CATALOGUE.problems(policy) == expected


def test_inspecting_a_live_database(database_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text((DATA / "sample-schema.sql").read_text()))
    engine.dispose()
    live = SchemaCatalogue.load(database_url)
    assert live.columns == CATALOGUE.columns
    assert live.problems(content("Use systems.total_users.", "users -> systems.total_users")) == []


@pytest.mark.parametrize("cases_file", ["feedback-cases.jsonl", "feedback-cases-extra.jsonl"])
def test_every_policy_the_offline_provider_writes_for_the_labelled_cases_fits_the_schema(cases_file: str) -> None:
    report = evaluate_cases(load_cases(DATA / cases_file), OfflineProvider())
    assert report.created
    problems = {policy.policy_id: CATALOGUE.problems(policy) for policy in report.created.values()}
    assert {pid: found for pid, found in problems.items() if found} == {}
