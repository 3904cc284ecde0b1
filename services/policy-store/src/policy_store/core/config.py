"""policy-store settings, from the environment."""

from __future__ import annotations

from pydantic import Field

from policyloop_common.events import FEEDBACK_SUBMITTED_TOPIC, POLICY_DECISIONS_TOPIC, POLICY_REVIEWS_TOPIC
from policyloop_common.settings import ServiceSettings


class StoreSettings(ServiceSettings):
    """Everything policy-store reads from its environment."""

    service_name: str = "policy-store"
    policy_store_host: str = "127.0.0.1"
    policy_store_port: int = 8003
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5433/policyloop"
    database_pool_size: int = Field(default=5, ge=1)

    store_group_id: str = "policy-store"
    feedback_topic: str = FEEDBACK_SUBMITTED_TOPIC
    decisions_topic: str = POLICY_DECISIONS_TOPIC
    reviews_topic: str = POLICY_REVIEWS_TOPIC
    store_batch_size: int = Field(default=500, ge=1, le=5000)
    store_poll_timeout_seconds: float = Field(default=0.5, gt=0)
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)

    # New policies are active at once unless reviewers want to see each one first.
    auto_activate: bool = True
    relevance_floor: float = Field(default=0.05, ge=0, le=1)
    # How long GET /v1/feedback/{id} waits for a feedback the consumer has not stored yet before answering 404.
    unknown_feedback_grace_seconds: float = Field(default=2.0, ge=0, le=30)
