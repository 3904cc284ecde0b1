"""feedback-api settings, from the environment (CONTRACT.md names the public ones)."""

from __future__ import annotations

from pydantic import Field, model_validator

from policyloop_common.settings import ServiceSettings


class FeedbackApiSettings(ServiceSettings):
    """Everything feedback-api reads from its environment."""

    service_name: str = "feedback-api"
    feedback_api_host: str = "127.0.0.1"
    feedback_api_port: int = 8001

    # How long a request waits for the broker's acknowledgement before answering 503.
    publish_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    retry_after_seconds: int = Field(default=5, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)

    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    idempotency_max_entries: int = Field(default=100_000, ge=1)

    rate_limit_per_minute: int = Field(default=120, ge=0)  # per user; 0 turns the limit off

    require_answer_receipt: bool = False
    answer_receipt_secret: str = ""
    answer_receipt_algorithm: str = "HS256"

    @model_validator(mode="after")
    def _receipt_key_when_required(self) -> FeedbackApiSettings:
        """A required receipt needs a key to check it with."""
        if self.require_answer_receipt and not self.answer_receipt_secret:
            raise ValueError("REQUIRE_ANSWER_RECEIPT=true needs ANSWER_RECEIPT_SECRET")
        return self
