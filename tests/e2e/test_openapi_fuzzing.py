"""Property-based requests from both OpenAPI documents: no 5xx, every answer as documented."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from policyloop_common.kafka.topics import ensure_topics
from tests.e2e.test_feedback_errors import extra_feedback_api
from tests.support.infrastructure import ServerSet
from tests.support.stack import ServiceStack

pytestmark = pytest.mark.e2e

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Bounded, so the run fits in `make test`; `FUZZ_EXAMPLES` raises it for a longer session.
EXAMPLES = 30
SCRATCH_TOPIC = "fuzzing.feedback.submitted.v1"
# Valid bodies of these would act on the whole shared stack (a re-analysis run with "all": true decides every
# feedback again under the other tests); their validation is covered in services/policy-store/tests.
NOT_FUZZED_ON_THE_SHARED_STACK = frozenset({"POST /v1/reanalysis"})


@pytest.fixture(scope="module")
def fuzzed_feedback_api(infrastructure: ServerSet, stack: ServiceStack) -> Iterator[str]:
    """A feedback-api whose accepted feedback goes to a topic nothing consumes, so fuzzing adds no policies."""
    ensure_topics({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]}, [SCRATCH_TOPIC], partitions=1)
    with extra_feedback_api(infrastructure, stack, FEEDBACK_TOPIC=SCRATCH_TOPIC,
                            RATE_LIMIT_PER_MINUTE="0") as url:
        yield url


@pytest.fixture(scope="module")
def feedback_api_schema(fuzzed_feedback_api: str):
    raw = httpx.get(f"{fuzzed_feedback_api}/openapi.json").json()
    return schemathesis.openapi.from_dict(raw)


@pytest.fixture(scope="module")
def policy_store_schema(stack: ServiceStack):
    raw = httpx.get(f"{stack.policy_store}/openapi.json").json()
    return schemathesis.openapi.from_dict(raw)


def fuzz(schema, *, base_url: str, headers: dict[str, str]) -> dict[str, str]:
    """Run every operation of ``schema`` with generated requests; return the failures by operation."""
    failures: dict[str, str] = {}
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in NOT_FUZZED_ON_THE_SHARED_STACK:
            continue

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as error:  # collected, so one run reports every operation that fails
            failures[operation.label] = f"{type(error).__name__}: {str(error)[:1500]}"
    assert calls >= EXAMPLES, f"only {calls} requests were generated"
    return failures


def test_feedback_api_answers_as_documented(feedback_api_schema, fuzzed_feedback_api: str,
                                            stack: ServiceStack) -> None:
    failures = fuzz(feedback_api_schema, base_url=fuzzed_feedback_api, headers=stack.auth("fuzzer", "user"))
    assert failures == {}


def test_policy_store_answers_as_documented(policy_store_schema, stack: ServiceStack) -> None:
    failures = fuzz(policy_store_schema, base_url=stack.policy_store, headers=stack.auth("fuzzer", "admin"))
    assert failures == {}
