"""policy-store settings, from the environment."""

from __future__ import annotations

from pydantic import Field

from policyloop_common.events import (
    FEEDBACK_SUBMITTED_TOPIC,
    POLICY_DECISIONS_TOPIC,
    POLICY_REVIEWS_TOPIC,
    POLICY_USAGE_TOPIC,
)
from policyloop_common.settings import ServiceSettings


class StoreSettings(ServiceSettings):
    """Everything policy-store reads from its environment."""

    service_name: str = "policy-store"
    policy_store_host: str = "127.0.0.1"
    policy_store_port: int = 8003
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5433/policyloop"
    database_pool_size: int = Field(default=5, ge=1)

    store_group_id: str = "policy-store"
    # Submissions, and the FeedbackReanalysisRequested the store publishes there (and reads back: runs are state).
    feedback_topic: str = FEEDBACK_SUBMITTED_TOPIC
    decisions_topic: str = POLICY_DECISIONS_TOPIC
    reviews_topic: str = POLICY_REVIEWS_TOPIC
    usage_topic: str = POLICY_USAGE_TOPIC

    @property
    def consumed_topics(self) -> list[str]:
        """Every topic the store materializes: what its consumer reads and a rebuild replays."""
        return [self.feedback_topic, self.decisions_topic, self.reviews_topic, self.usage_topic]

    store_batch_size: int = Field(default=500, ge=1, le=5000)
    store_poll_timeout_seconds: float = Field(default=0.5, gt=0)
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)

    # New policies are active at once unless reviewers want to see each one first.
    auto_activate: bool = True
    relevance_floor: float = Field(default=0.05, ge=0, le=1)
    # How long GET /v1/feedback/{id} waits for a feedback the consumer has not stored yet before answering 404.
    unknown_feedback_grace_seconds: float = Field(default=2.0, ge=0, le=30)

    # Effectiveness of policies (docs/effectiveness.md). A feedback counts as a "similar question" when its question
    # scores at least this against the policy's rule, mapping and examples.
    effectiveness_similarity_threshold: float = Field(default=0.3, gt=0, le=1)
    # How many feedbacks on each side of a policy's activation are compared (the most recent ones): bounds the work.
    effectiveness_candidate_feedback: int = Field(default=1000, ge=1, le=20000)
    # A rate says nothing below this many feedbacks; applies to feedback after use and to each similar-question side.
    effectiveness_min_feedback: int = Field(default=5, ge=1)
    # Feedback after use at least this negative marks a policy harmful.
    effectiveness_harmful_negative_rate: float = Field(default=0.6, gt=0, le=1)
    # So does a similar-question negative rate after activation this much above the rate before it.
    effectiveness_similar_margin: float = Field(default=0.2, gt=0, le=1)
    # Harmful active policies are only suggested for retirement unless this retires them (once per policy).
    auto_retire_harmful: bool = False

    # Concurrent twins (policy_store/twins.py): policies of one lesson created by different generator processes at
    # the same time are merged into the older, when they may be one lesson by the generator's own rules
    # (policyloop_common.lessons). The threshold is measured in docs/dedup.md.
    merge_twins: bool = True
    twin_threshold: float = Field(default=0.6, gt=0, le=1)
    twin_window_seconds: int = Field(default=120, ge=1)

    # The review page /admin/ (docs/review.md). Its session cookie is marked Secure when the page is served over
    # HTTPS; the local stack speaks plain http, where a Secure cookie would never be sent back, hence off by default.
    admin_cookie_secure: bool = False
    # Signs the page's CSRF tokens and notices. Empty means a random key per process, enough for one replica; replicas
    # behind one address need the same key, since a form served by one may be posted to another.
    admin_signing_key: str = ""
    admin_page_size: int = Field(default=20, ge=1, le=200)
