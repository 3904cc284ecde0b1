"""docker-compose.yml and the Dockerfiles pass tools.compose_check, and the check catches what would break them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.compose_check import (
    APP_SERVICES,
    REPO_ROOT,
    DockerIgnore,
    check_all,
    check_compose,
    check_dockerfile,
    main,
    parse_dockerfile,
    required_variables,
)

COMPOSE = REPO_ROOT / "docker-compose.yml"
STORE_DOCKERFILE = REPO_ROOT / "services" / "policy-store" / "Dockerfile"


@pytest.fixture
def compose() -> dict[str, Any]:
    """The committed compose file, loaded fresh for each test to break as it likes."""
    return yaml.safe_load(COMPOSE.read_text())


def write_compose(tmp_path: Path, document: dict[str, Any]) -> Path:
    """``document`` as a compose file in ``tmp_path``."""
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def compose_problems(tmp_path: Path, document: dict[str, Any]) -> list[str]:
    """The check's findings on ``document``, with build contexts resolved in the repository."""
    return check_compose(write_compose(tmp_path, document), project_dir=REPO_ROOT)


def write_dockerfile(tmp_path: Path, text: str) -> Path:
    """``text`` as a Dockerfile in ``tmp_path``."""
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


# --- the committed files -------------------------------------------------------------------------------------------


def test_committed_compose_file_and_dockerfiles_pass():
    assert check_all(REPO_ROOT) == []


def test_module_run_as_a_program_exits_zero_on_the_committed_files():
    result = subprocess.run([sys.executable, "-m", "tools.compose_check"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "docker-compose.yml" in result.stdout


def test_every_service_has_a_dockerfile_that_is_checked():
    names = {path.parent.name for path in REPO_ROOT.glob("services/*/Dockerfile")}
    assert names == {"feedback-api", "policy-generator", "policy-store"}


def test_required_variables_follow_the_settings_classes():
    required = {service.name: set(required_variables(service)) for service in APP_SERVICES}
    assert "DATABASE_URL" in required["policy-store"]
    assert "DATABASE_URL" not in required["feedback-api"]
    assert all("KAFKA_BOOTSTRAP_SERVERS" in variables for variables in required.values())
    assert "AUTH_JWT_SECRET" in required["feedback-api"] and "AUTH_JWT_SECRET" not in required["policy-generator"]


# --- broken compose files ------------------------------------------------------------------------------------------


def test_a_key_the_compose_specification_does_not_know_fails(tmp_path, compose):
    compose["services"]["kafka"]["restart_policy"] = "always"
    problems = compose_problems(tmp_path, compose)
    assert any("schema" in problem and "restart_policy" in problem for problem in problems), problems


def test_a_duration_compose_would_not_parse_fails(tmp_path, compose):
    compose["services"]["postgres"]["healthcheck"]["interval"] = "five seconds"
    problems = compose_problems(tmp_path, compose)
    assert any("healthcheck/interval" in problem for problem in problems), problems


def test_the_store_without_database_url_fails(tmp_path, compose):
    del compose["services"]["policy-store"]["environment"]["DATABASE_URL"]
    problems = compose_problems(tmp_path, compose)
    assert any("policy-store" in problem and "DATABASE_URL" in problem for problem in problems), problems


def test_an_api_without_the_jwt_secret_fails(tmp_path, compose):
    del compose["services"]["feedback-api"]["environment"]["AUTH_JWT_SECRET"]
    problems = compose_problems(tmp_path, compose)
    assert any("feedback-api" in problem and "AUTH_JWT_SECRET" in problem for problem in problems), problems


def test_a_misspelt_variable_fails(tmp_path, compose):
    environment = compose["services"]["policy-generator"]["environment"]
    environment["KAFKA_BOOTSTRAP_SERVER"] = environment["KAFKA_BOOTSTRAP_SERVERS"]
    problems = compose_problems(tmp_path, compose)
    assert any("KAFKA_BOOTSTRAP_SERVER," in problem and "does not read" in problem for problem in problems), problems


def test_a_service_left_on_the_loopback_address_fails(tmp_path, compose):
    compose["services"]["policy-store"]["environment"]["POLICY_STORE_HOST"] = "127.0.0.1"
    problems = compose_problems(tmp_path, compose)
    assert any("POLICY_STORE_HOST must be 0.0.0.0" in problem for problem in problems), problems


def test_a_kafka_address_that_is_no_service_fails(tmp_path, compose):
    compose["services"]["feedback-api"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:9092"
    problems = compose_problems(tmp_path, compose)
    assert any("feedback-api" in problem and "'127.0.0.1'" in problem for problem in problems), problems


def test_a_port_other_than_the_contracts_fails(tmp_path, compose):
    compose["services"]["feedback-api"]["ports"] = ["127.0.0.1:9001:8001"]
    problems = compose_problems(tmp_path, compose)
    assert any("does not publish 8001" in problem for problem in problems), problems


def test_a_published_port_that_misses_the_service_port_fails(tmp_path, compose):
    compose["services"]["policy-generator"]["environment"]["POLICY_GENERATOR_PORT"] = "9002"
    problems = compose_problems(tmp_path, compose)
    assert any("POLICY_GENERATOR_PORT is 9002" in problem for problem in problems), problems


def test_the_store_starting_before_its_migrations_fails(tmp_path, compose):
    del compose["services"]["policy-store"]["depends_on"]["migrate"]
    problems = compose_problems(tmp_path, compose)
    assert any("policy-store: depends_on must wait for migrate" in problem for problem in problems), problems


def test_a_service_starting_before_the_topics_exist_fails(tmp_path, compose):
    compose["services"]["feedback-api"]["depends_on"]["kafka-topics"] = {"condition": "service_started"}
    problems = compose_problems(tmp_path, compose)
    assert any("feedback-api: depends_on must wait for kafka-topics" in problem for problem in problems), problems


def test_a_long_running_service_without_a_healthcheck_fails(tmp_path, compose):
    del compose["services"]["postgres"]["healthcheck"]
    problems = compose_problems(tmp_path, compose)
    assert any("postgres: a long-running service needs a healthcheck" in problem for problem in problems), problems


def test_a_missing_dead_letter_topic_fails(tmp_path, compose):
    topics = compose["services"]["kafka-topics"]
    topics["command"] = [topics["command"][0].replace("policy.reviews.v1.dlq", "")]
    problems = compose_problems(tmp_path, compose)
    assert any("policy.reviews.v1.dlq" in problem for problem in problems), problems


def test_kafka_without_single_node_transaction_settings_fails(tmp_path, compose):
    del compose["services"]["kafka"]["environment"]["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]
    problems = compose_problems(tmp_path, compose)
    assert any("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR" in problem for problem in problems), problems


def test_an_app_service_with_a_writable_root_filesystem_fails(tmp_path, compose):
    compose["services"]["policy-store"]["read_only"] = False
    problems = compose_problems(tmp_path, compose)
    assert any("policy-store: read_only must be true" in problem for problem in problems), problems


def test_a_dockerfile_path_that_does_not_exist_fails(tmp_path, compose):
    compose["services"]["feedback-api"]["build"]["dockerfile"] = "services/feedback-api/Dockerfile.missing"
    problems = compose_problems(tmp_path, compose)
    assert any("Dockerfile.missing does not exist" in problem for problem in problems), problems


def test_the_program_exits_non_zero_on_a_broken_compose_file(tmp_path, compose, capsys):
    del compose["services"]["policy-store"]["environment"]["DATABASE_URL"]
    path = write_compose(tmp_path, compose)
    assert main(["--compose", str(path), "--context", str(REPO_ROOT)]) == 1
    assert "DATABASE_URL" in capsys.readouterr().err


# --- broken Dockerfiles --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("replacement", ["USER root", "USER 0:0", ""], ids=["root", "uid-0", "no-user"])
def test_a_dockerfile_whose_final_stage_runs_as_root_fails(tmp_path, replacement):
    text = STORE_DOCKERFILE.read_text().replace("USER 10001:10001", replacement)
    problems = check_dockerfile(write_dockerfile(tmp_path, text), context=REPO_ROOT)
    assert any("root" in problem or "other than 0" in problem for problem in problems), problems


def test_a_root_user_in_the_build_stage_only_is_fine(tmp_path):
    text = STORE_DOCKERFILE.read_text().replace("WORKDIR /app\n", "WORKDIR /app\nUSER root\n", 1)
    assert check_dockerfile(write_dockerfile(tmp_path, text), context=REPO_ROOT) == []


def test_a_single_stage_dockerfile_fails(tmp_path):
    text = 'FROM python:3.11.14-slim-bookworm\nUSER 10001\nHEALTHCHECK CMD true\nCMD ["python"]\n'
    problems = check_dockerfile(write_dockerfile(tmp_path, text), context=REPO_ROOT)
    assert any("build stage and a runtime stage" in problem for problem in problems), problems


def test_a_dockerfile_without_cmd_fails(tmp_path):
    text = STORE_DOCKERFILE.read_text().replace('CMD ["python", "-m", "policy_store.main"]', "")
    problems = check_dockerfile(write_dockerfile(tmp_path, text), context=REPO_ROOT)
    assert any("no CMD" in problem for problem in problems), problems


def test_a_copy_source_missing_from_the_repository_fails(tmp_path):
    text = STORE_DOCKERFILE.read_text().replace("COPY services/policy-store/src ", "COPY services/policy-store/source ")
    problems = check_dockerfile(write_dockerfile(tmp_path, text), context=REPO_ROOT)
    assert any("'services/policy-store/source' does not exist" in problem for problem in problems), problems


def test_a_copy_source_left_out_by_dockerignore_fails(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print('hello')\n")
    (tmp_path / "notes.txt").write_text("kept out\n")
    (tmp_path / ".dockerignore").write_text("*\n!app\n")
    text = ("FROM python:3.11.14-slim-bookworm AS build\nCOPY app /app\nCOPY notes.txt /notes.txt\n"
            "FROM python:3.11.14-slim-bookworm\nCOPY --from=build /app /app\nUSER 10001\nHEALTHCHECK CMD true\n"
            'CMD ["python", "/app/main.py"]\n')
    problems = check_dockerfile(write_dockerfile(tmp_path, text), context=tmp_path)
    assert problems == ["Dockerfile: line 3: COPY source 'notes.txt' is left out of the build context by .dockerignore"]


def test_the_program_exits_non_zero_on_a_broken_dockerfile(tmp_path, capsys):
    path = write_dockerfile(tmp_path, STORE_DOCKERFILE.read_text().replace("USER 10001:10001", "USER root"))
    assert main(["--dockerfile", str(path)]) == 1
    assert "runs as 'root'" in capsys.readouterr().err


# --- the parsing the checks rely on --------------------------------------------------------------------------------


def test_dockerfile_continuations_and_comments_are_joined_into_one_instruction():
    instructions = parse_dockerfile("# syntax=docker/dockerfile:1\nFROM a AS b\nRUN one \\\n    # why\n\n    two\n")
    assert [(item.keyword, item.arguments, item.line) for item in instructions] == [
        ("FROM", "a AS b", 2), ("RUN", "one two", 3)]


def test_dockerignore_last_match_wins_and_parents_count():
    ignore = DockerIgnore(["*", "!services/*/src", "**/__pycache__"])
    assert ignore.excludes(".local/secrets.env")
    assert not ignore.excludes("services/feedback-api/src/feedback_api/main.py")
    assert ignore.excludes("services/feedback-api/src/feedback_api/__pycache__/main.cpython-311.pyc")
    assert ignore.excludes("services/feedback-api/tests/test_feedback.py")
