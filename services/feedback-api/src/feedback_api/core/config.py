"""feedback-api settings, from the environment (CONTRACT.md names the public ones)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from policyloop_common.events import FEEDBACK_SUBMITTED_TOPIC
from policyloop_common.settings import ServiceSettings


class FeedbackApiSettings(ServiceSettings):
    """Everything feedback-api reads from its environment."""

    service_name: str = "feedback-api"
    feedback_api_host: str = "127.0.0.1"
    feedback_api_port: int = 8001
    feedback_topic: str = FEEDBACK_SUBMITTED_TOPIC

    # How long a request waits for the broker's acknowledgement before answering 503.
    publish_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    retry_after_seconds: int = Field(default=5, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)

    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    idempotency_max_entries: int = Field(default=100_000, ge=1)

    rate_limit_per_minute: int = Field(default=120, ge=0)  # per user; 0 turns the limit off
    rate_limit_per_address_per_minute: int = Field(default=600, ge=0)  # per client address; 0 turns it off
    # Proxies in front of the service that append to X-Forwarded-For; 0 trusts no header, only the peer address.
    trusted_proxy_count: int = Field(default=0, ge=0, le=5)

    require_answer_receipt: bool = False
    answer_receipt_secret: str = ""
    answer_receipt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS256"
    answer_receipt_public_key: str = ""  # PEM, for RS256 / ES256 receipts signed by the assistant's private key

    @model_validator(mode="after")
    def _receipt_key_when_required(self) -> FeedbackApiSettings:
        """A required receipt needs a key to check it with: a secret for HS*, a public key otherwise."""
        if self.require_answer_receipt and not self.answer_receipt_key:
            needed = "ANSWER_RECEIPT_SECRET" if self.answer_receipt_algorithm.startswith("HS") \
                else "ANSWER_RECEIPT_PUBLIC_KEY"
            raise ValueError(f"REQUIRE_ANSWER_RECEIPT=true with {self.answer_receipt_algorithm} needs {needed}")
        return self

    @property
    def answer_receipt_key(self) -> str:
        """The key receipts are checked with."""
        if self.answer_receipt_algorithm.startswith("HS"):
            return self.answer_receipt_secret
        return self.answer_receipt_public_key
