"""policy-generator settings, from the environment."""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field

from policy_generator.dedup import DUPLICATE_THRESHOLD, FAST_PATH_THRESHOLD
from policy_generator.worker import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COMMIT_INTERVAL_SECONDS,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_SHUTDOWN_SECONDS,
)
from policyloop_common.events import FEEDBACK_SUBMITTED_TOPIC, POLICY_DECISIONS_TOPIC, POLICY_REVIEWS_TOPIC
from policyloop_common.settings import ServiceSettings


class GeneratorSettings(ServiceSettings):
    """Everything policy-generator reads from its environment."""

    service_name: str = "policy-generator"
    policy_generator_host: str = "127.0.0.1"
    policy_generator_port: int = 8002

    generator_group_id: str = "policy-generator"
    # Stable per instance (a StatefulSet pod name, say) so that a restarted instance fences its zombie.
    generator_transactional_id: str = Field(default_factory=lambda: f"policy-generator-{socket.gethostname()}")
    # Feedback to decide: submissions, and operators' requests to decide one again (policy-store-admin reanalyze).
    feedback_topic: str = FEEDBACK_SUBMITTED_TOPIC
    decisions_topic: str = POLICY_DECISIONS_TOPIC
    reviews_topic: str = POLICY_REVIEWS_TOPIC
    # Records fetched at a time. The next batch is fetched as soon as a decision slot is free, so at most
    # max_in_flight + batch_size - 1 feedbacks are in hand: with equal defaults, about two waves of model calls,
    # which a rebalance or a stop waits for (well inside max.poll.interval.ms, 300 s, even when every call times
    # out and is retried), and which an abort redoes.
    generator_batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=1000)
    generator_poll_timeout_seconds: float = Field(default=1.0, gt=0)
    # Least time between two transactions while decided batches keep coming (see worker.py).
    generator_commit_interval_seconds: float = Field(default=DEFAULT_COMMIT_INTERVAL_SECONDS, ge=0, le=10)
    # Feedback decided at once, each on its own thread (the openai SDK is synchronous), across batches.
    generator_max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1, le=1000)
    # After SIGTERM, how long the batches in hand may take to finish before they are given up (the next owner of
    # their partitions decides them). With one commit (up to 30 s) on top, it must stay inside the pod's grace (120 s).
    generator_shutdown_seconds: float = Field(default=DEFAULT_SHUTDOWN_SECONDS, gt=0, le=600)

    llm_provider: Literal["auto", "offline", "openai"] = "auto"
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_temperature: float = Field(default=0.3, ge=0, le=2)
    openai_timeout_seconds: float = Field(default=30.0, gt=0)
    openai_max_attempts: int = Field(default=3, ge=1, le=10)
    # For the cost metric only; the defaults are gpt-4o-mini's list prices in US dollars per million tokens.
    openai_input_usd_per_million_tokens: float = Field(default=0.15, ge=0)
    openai_output_usd_per_million_tokens: float = Field(default=0.60, ge=0)
    # This process's share of the account's limits (0 = none): calls wait for room instead of earning 429s.
    openai_requests_per_minute: int = Field(default=0, ge=0)
    openai_tokens_per_minute: int = Field(default=0, ge=0)

    candidate_count: int = Field(default=5, ge=1, le=20)
    # Candidates by meaning too (an OpenAI-compatible /embeddings endpoint); unset: offline similarity only.
    embeddings_model: str | None = None
    embeddings_base_url: str | None = None  # default: OPENAI_BASE_URL
    embeddings_timeout_seconds: float = Field(default=10.0, gt=0)
    # A DDL file (CREATE TABLE statements) or a database URL of the database the assistant queries: policies
    # naming columns or values it does not have go to review. Unset: nothing is checked.
    schema_catalogue: str | None = None
    # The offline provider's bar for "same lesson"; the default is dedup.py's, measured in docs/dedup.md.
    duplicate_threshold: float = Field(default=DUPLICATE_THRESHOLD, gt=0, le=1)
    # At or above this a feedback is folded into a policy without asking any provider (near-verbatim repeats);
    # the default is dedup.py's, above every other lesson's score in the labelled cases.
    fast_path_threshold: float = Field(default=FAST_PATH_THRESHOLD, gt=0, le=1)
