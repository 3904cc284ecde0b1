"""``make up`` / ``make down`` as CONTRACT.md describes them, run as an operator would, in a private directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.infrastructure import free_port
from tests.support.polling import eventually
from tools.local_stack.processes import read_pid

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ("kafka", "postgres", "feedback-api", "policy-generator", "policy-store")


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("local-stack")


@pytest.fixture(scope="module")
def stack_env(local_dir: Path) -> dict[str, str]:
    env = {**os.environ, "POLICYLOOP_LOCAL_DIR": str(local_dir)}
    for name in ("FEEDBACK_API_PORT", "POLICY_GENERATOR_PORT", "POLICY_STORE_PORT", "KAFKA_PORT",
                 "KAFKA_CONTROLLER_PORT", "POSTGRES_PORT"):
        env[name] = str(free_port())
    env.pop("OPENAI_API_KEY", None)
    yield env
    subprocess.run([sys.executable, "-m", "tools.local_stack", "down"], env=env, cwd=ROOT, capture_output=True)


def stack(command: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.local_stack", command, *extra], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def written_env(local_dir: Path) -> dict[str, str]:
    lines = (local_dir / "stack.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def pids(local_dir: Path) -> dict[str, int | None]:
    return {name: read_pid(local_dir / "run" / f"{name}.pid") for name in PROCESSES}


def test_up_starts_everything_and_prints_the_example_policy(local_dir: Path, stack_env: dict[str, str]) -> None:
    result = stack("up", stack_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "total_users" in result.stdout
    values = written_env(local_dir)
    for name in ("FEEDBACK_API_URL", "POLICY_STORE_URL", "POLICY_GENERATOR_URL", "KAFKA_BOOTSTRAP_SERVERS",
                 "DATABASE_URL", "AUTH_JWT_SECRET", "AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE"):
        assert values.get(name), name
    assert all(pids(local_dir).values()), pids(local_dir)
    for url in ("FEEDBACK_API_URL", "POLICY_STORE_URL", "POLICY_GENERATOR_URL"):
        assert httpx.get(f"{values[url]}/readyz", timeout=5).status_code == 200


def test_up_again_changes_nothing(local_dir: Path, stack_env: dict[str, str]) -> None:
    before = pids(local_dir)
    result = stack("up", stack_env)
    assert result.returncode == 0, result.stderr
    assert pids(local_dir) == before


def test_a_killed_service_comes_back_with_up(local_dir: Path, stack_env: dict[str, str]) -> None:
    before = pids(local_dir)
    os.kill(before["policy-generator"], signal.SIGKILL)
    eventually(lambda: read_pid(local_dir / "run" / "policy-generator.pid") is None, what="generator gone")
    result = stack("up", stack_env, "--no-example")
    assert result.returncode == 0, result.stderr
    after = pids(local_dir)
    assert after["policy-generator"] not in (None, before["policy-generator"])
    assert after["kafka"] == before["kafka"] and after["policy-store"] == before["policy-store"]


def test_down_then_up_keeps_feedback_and_policies(local_dir: Path, stack_env: dict[str, str]) -> None:
    values = written_env(local_dir)
    admin = subprocess.run([sys.executable, "-m", "tools.mint_token", "--sub", "ops", "--roles", "admin"],
                           env={**stack_env, **values}, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    headers = {"Authorization": f"Bearer {admin}"}
    listed = httpx.get(f"{values['POLICY_STORE_URL']}/v1/policies", headers=headers, timeout=10).json()["items"]
    assert listed
    assert stack("down", stack_env).returncode == 0
    assert not any(pids(local_dir).values())
    result = stack("up", stack_env)
    assert result.returncode == 0, result.stderr
    again = httpx.get(f"{values['POLICY_STORE_URL']}/v1/policies", headers=headers, timeout=10).json()["items"]
    assert [p["policy_id"] for p in again] == [p["policy_id"] for p in listed]


def test_receipts_are_off_by_default_and_on_when_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tools.local_stack import __main__ as local_stack

    monkeypatch.setattr(local_stack, "SECRETS_ENV", tmp_path / "secrets.env")
    monkeypatch.setattr(local_stack, "LOCAL", tmp_path)
    kafka, postgres = local_stack.kafka_broker(), local_stack.postgres_server()
    monkeypatch.delenv("REQUIRE_ANSWER_RECEIPT", raising=False)
    off = local_stack.stack_environment(kafka, postgres)
    assert off["REQUIRE_ANSWER_RECEIPT"] == "false" and "ANSWER_RECEIPT_SECRET" not in off
    monkeypatch.setenv("REQUIRE_ANSWER_RECEIPT", "true")
    on = local_stack.stack_environment(kafka, postgres)
    assert on["REQUIRE_ANSWER_RECEIPT"] == "true" and len(on["ANSWER_RECEIPT_SECRET"]) >= 32
