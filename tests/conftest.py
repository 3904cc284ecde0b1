"""Fixtures of the cross-service suites: the running stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.infrastructure import ServerSet
from tests.support.stack import ServiceStack, start_stack


@pytest.fixture(scope="session")
def stack(infrastructure: ServerSet) -> Iterator[ServiceStack]:
    """feedback-api, policy-generator and policy-store as real processes on real Kafka and PostgreSQL."""
    running = start_stack(infrastructure)
    yield running
    running.stop()
