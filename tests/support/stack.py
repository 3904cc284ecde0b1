"""The three services running as real processes against the session's Kafka and PostgreSQL."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from policyloop_common.auth import mint_token
from policyloop_common.kafka.topics import all_topics, ensure_topics
from policyloop_common.settings import ServiceSettings
from tests.support.infrastructure import ServerSet, free_port
from tools.local_stack.services import SERVICES, service_url, start_service, stop_service

DATABASE_PASSWORD = "pg-pass-" + secrets.token_hex(8)
OPENAI_KEY = "sk-test-" + secrets.token_hex(16)
RECEIPT_SECRET = "receipt-" + secrets.token_hex(16)


@dataclass
class ServiceStack:
    """Base URLs, environment and token minting for the services of one test session."""

    env: dict[str, str]
    run_dir: Path
    log_dir: Path
    settings: ServiceSettings = field(init=False)

    def __post_init__(self) -> None:
        self.settings = ServiceSettings(auth_jwt_secret=self.env["AUTH_JWT_SECRET"],
                                        auth_jwt_issuer=self.env["AUTH_JWT_ISSUER"],
                                        auth_jwt_audience=self.env["AUTH_JWT_AUDIENCE"])

    @property
    def feedback_api(self) -> str:
        """feedback-api base URL."""
        return self.env["FEEDBACK_API_URL"]

    @property
    def policy_store(self) -> str:
        """policy-store base URL."""
        return self.env["POLICY_STORE_URL"]

    @property
    def policy_generator(self) -> str:
        """policy-generator base URL."""
        return self.env["POLICY_GENERATOR_URL"]

    def token(self, subject: str, *roles: str, **kwargs) -> str:
        """A valid bearer token for ``subject`` with ``roles``."""
        return mint_token(self.settings, subject=subject, roles=list(roles), **kwargs)

    def auth(self, subject: str, *roles: str) -> dict[str, str]:
        """An Authorization header for ``subject`` with ``roles``."""
        return {"Authorization": f"Bearer {self.token(subject, *roles)}"}

    def start(self) -> None:
        """Start every service that is not running and wait for readiness."""
        for spec in SERVICES:
            start_service(spec, env=self.env, run_dir=self.run_dir, log_dir=self.log_dir, timeout=150)

    def stop(self) -> None:
        """Stop every service."""
        for spec in reversed(SERVICES):
            stop_service(spec, self.run_dir)


def start_stack(infra: ServerSet, **overrides: str) -> ServiceStack:
    """Topics, a fresh database with migrations, and the three services on free ports."""
    # Trust authentication ignores the password; it is there so the logs can be searched for it.
    database_url = infra.new_database("stack").replace("postgres@", f"postgres:{DATABASE_PASSWORD}@")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka.bootstrap,
        "DATABASE_URL": database_url,
        "AUTH_JWT_SECRET": secrets.token_urlsafe(32),
        "AUTH_JWT_ISSUER": "policyloop-test",
        "AUTH_JWT_AUDIENCE": "policyloop",
        "FEEDBACK_API_PORT": str(free_port()),
        "POLICY_GENERATOR_PORT": str(free_port()),
        "POLICY_STORE_PORT": str(free_port()),
        "LLM_PROVIDER": "offline",
        "GENERATOR_POLL_TIMEOUT_SECONDS": "0.2",
        **overrides,
    }
    # A key is present but the provider is pinned to offline: the key must still never reach a log.
    env["OPENAI_API_KEY"] = OPENAI_KEY
    env["ANSWER_RECEIPT_SECRET"] = RECEIPT_SECRET
    for spec in SERVICES:
        env[f"{spec.name.replace('-', '_').upper()}_URL"] = service_url(spec, env)
    ensure_topics({"bootstrap.servers": infra.kafka.bootstrap}, all_topics(), partitions=3)
    subprocess.run([sys.executable, "-m", "policy_store.migrate"], env=env, check=True, capture_output=True)
    stack = ServiceStack(env=env, run_dir=infra.home / "run", log_dir=infra.home / "log")
    stack.start()
    return stack
