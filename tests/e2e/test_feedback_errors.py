"""Every error case of CONTRACT.md for ``POST /v1/feedback``, over real HTTP against real processes."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.support.infrastructure import ServerSet, free_port
from tests.support.stack import ServiceStack
from tools.local_stack.processes import spawn, stop, wait_until

pytestmark = pytest.mark.e2e

VALID = {
    "conversation_id": "c-1",
    "message_id": "m-1",
    "rating": "negative",
    "comment": "The column is total_users, not users",
    "context": {"question": "How many systems have more than 500 users?"},
}


def post(stack: ServiceStack, body, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
    return httpx.post(f"{stack.feedback_api}/v1/feedback", json=body, headers=headers or {}, timeout=30, **kwargs)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["message"]
    if code:
        assert error["code"] == code
    return error


def claims(stack: ServiceStack, **overrides) -> dict:
    now = int(time.time())
    base = {"sub": "u1", "roles": ["user"], "iss": stack.env["AUTH_JWT_ISSUER"],
            "aud": stack.env["AUTH_JWT_AUDIENCE"], "exp": now + 600, "iat": now}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_token_is_401(stack: ServiceStack) -> None:
    assert_error(post(stack, VALID), 401, "missing_token")


@pytest.mark.parametrize("change", ["expired", "issuer", "audience", "signature", "algorithm", "no_exp", "garbage"])
def test_invalid_tokens_are_401(stack: ServiceStack, change: str) -> None:
    secret = stack.env["AUTH_JWT_SECRET"]
    if change == "expired":
        token = jwt.encode(claims(stack, exp=int(time.time()) - 3600), secret, algorithm="HS256")
    elif change == "issuer":
        token = jwt.encode(claims(stack, iss="someone-else"), secret, algorithm="HS256")
    elif change == "audience":
        token = jwt.encode(claims(stack, aud="another-api"), secret, algorithm="HS256")
    elif change == "signature":
        token = jwt.encode(claims(stack), "not-the-secret-" * 3, algorithm="HS256")
    elif change == "algorithm":
        # Same secret, another algorithm: the pinned HS256 must refuse it.
        token = jwt.encode(claims(stack), secret, algorithm="HS512")
    elif change == "no_exp":
        token = jwt.encode(claims(stack, exp=None), secret, algorithm="HS256")
    else:
        token = "not.a.jwt"
    assert_error(post(stack, VALID, bearer(token)), 401)


def test_unsigned_token_is_401(stack: ServiceStack) -> None:
    token = jwt.encode(claims(stack), None, algorithm="none")
    assert_error(post(stack, VALID, bearer(token)), 401)


def test_assistant_role_cannot_post_feedback(stack: ServiceStack) -> None:
    assert_error(post(stack, VALID, stack.auth("bot", "assistant")), 403, "forbidden")


def test_body_too_large_is_413(stack: ServiceStack) -> None:
    big = {**VALID, "context": {"question": "q", "answer": "x" * 400_000}}
    assert_error(post(stack, big, stack.auth("u1", "user")), 413, "payload_too_large")


@pytest.mark.parametrize(("body", "field"), [
    ({**VALID, "comment": None}, "comment"),
    ({**VALID, "comment": "   "}, "comment"),
    ({**VALID, "rating": "meh"}, "rating"),
    ({**VALID, "context": {"answer": "no question"}}, "context.question"),
    ({k: v for k, v in VALID.items() if k != "conversation_id"}, "conversation_id"),
    ({**VALID, "context": {**VALID["context"], "steps": "not a list"}}, "context.steps"),
    ({**VALID, "user_id": "someone-else"}, "user_id"),
    ({**VALID, "comment": "x" * 4001}, "comment"),
    ({**VALID, "conversation_id": "c" * 257}, "conversation_id"),
    ({**VALID, "context": {**VALID["context"], "steps": ["step"] * 51}}, "context.steps"),
    ({**VALID, "context": {**VALID["context"], "sql_queries": ["SELECT 1" * 1000]}}, "context.sql_queries"),
])
def test_invalid_fields_are_422_naming_the_field(stack: ServiceStack, body: dict, field: str) -> None:
    error = assert_error(post(stack, body, stack.auth("u1", "user")), 422, "invalid_request")
    assert any(field in detail["field"] for detail in error["details"]), error["details"]


def test_nul_characters_are_refused_before_they_reach_the_pipeline(stack: ServiceStack) -> None:
    # PostgreSQL cannot store U+0000 in text: accepted, it would stall the store's consumer on that record.
    body = {**VALID, "comment": "total_users\u0000not users"}
    error = assert_error(post(stack, body, stack.auth("u1", "user")), 422, "invalid_request")
    assert any("comment" in detail["field"] for detail in error["details"])
    nested = {**VALID, "context": {**VALID["context"], "results": [{"rows": ["a\u0000b"]}]}}
    assert_error(post(stack, nested, stack.auth("u1", "user")), 422, "invalid_request")


def test_nul_in_a_store_path_is_not_a_server_error(stack: ServiceStack) -> None:
    reply = httpx.get(f"{stack.policy_store}/v1/policies/bad%00id", headers=stack.auth("root", "admin"))
    assert reply.status_code == 404
    reply = httpx.get(f"{stack.policy_store}/v1/feedback/bad%00id", headers=stack.auth("root", "admin"))
    assert reply.status_code == 404
    reply = httpx.get(f"{stack.policy_store}/v1/policies/relevant", params={"question": "a\x00b"},
                      headers=stack.auth("root", "admin"))
    assert reply.status_code == 200


def test_malformed_json_is_422_not_500(stack: ServiceStack) -> None:
    response = httpx.post(f"{stack.feedback_api}/v1/feedback", content=b"{not json",
                          headers={**stack.auth("u1", "user"), "Content-Type": "application/json"})
    assert_error(response, 422)


def test_rate_limit_is_429_with_retry_after(infrastructure: ServerSet, stack: ServiceStack) -> None:
    with extra_feedback_api(infrastructure, stack, RATE_LIMIT_PER_MINUTE="3") as url:
        answers = [httpx.post(f"{url}/v1/feedback", json={**VALID, "rating": "positive"},
                              headers=stack.auth("flooder", "user"), timeout=30) for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [202, 202, 202]
        error = assert_error(answers[3], 429, "rate_limited")
        assert int(answers[3].headers["Retry-After"]) >= 1
        assert error


def test_kafka_unavailable_is_503_with_retry_after(infrastructure: ServerSet, stack: ServiceStack) -> None:
    dead_broker = f"127.0.0.1:{free_port()}"
    with extra_feedback_api(infrastructure, stack, KAFKA_BOOTSTRAP_SERVERS=dead_broker,
                            PUBLISH_TIMEOUT_SECONDS="1.5", RETRY_AFTER_SECONDS="7", wait_ready=False) as url:
        # The client's timeout turns a hang into a failure: the answer must come well before it.
        response = httpx.post(f"{url}/v1/feedback", json=VALID, headers=stack.auth("u1", "user"), timeout=30)
        assert_error(response, 503, "kafka_unavailable")
        assert response.headers["Retry-After"] == "7"
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503


class extra_feedback_api:
    """A second feedback-api process with different settings, for one test."""

    def __init__(self, infra: ServerSet, stack: ServiceStack, wait_ready: bool = True, **env: str) -> None:
        self.port = free_port()
        self.env = {**stack.env, "FEEDBACK_API_PORT": str(self.port), **env}
        self.pid_file = infra.home / "run" / f"feedback-api-{self.port}.pid"
        self.log_file = infra.home / "log" / f"feedback-api-{self.port}.log"
        self.wait_ready = wait_ready

    def __enter__(self) -> str:
        import sys

        url = f"http://127.0.0.1:{self.port}"
        spawn([sys.executable, "-m", "feedback_api.main"], pid_file=self.pid_file, log_file=self.log_file,
              env=self.env)
        endpoint = "/readyz" if self.wait_ready else "/healthz"

        def answers() -> bool:
            try:
                return httpx.get(f"{url}{endpoint}", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(answers, timeout=60, what="extra feedback-api", log_file=self.log_file)
        return url

    def __exit__(self, *_) -> None:
        stop(self.pid_file)


def test_answer_receipts_when_required(infrastructure: ServerSet, stack: ServiceStack) -> None:
    from policyloop_common.answer_receipts import issue_receipt

    key = "receipt-secret-" * 3
    with extra_feedback_api(infrastructure, stack, REQUIRE_ANSWER_RECEIPT="true", ANSWER_RECEIPT_SECRET=key) as url:
        def send(body: dict, receipt: str | None, user: str = "u1") -> httpx.Response:
            headers = {**stack.auth(user, "user"), **({"X-Answer-Receipt": receipt} if receipt else {})}
            return httpx.post(f"{url}/v1/feedback", json=body, headers=headers, timeout=30)

        def receipt_for(body: dict, user: str = "u1", **overrides) -> str:
            values = dict(key=key, user_id=user, conversation_id=body["conversation_id"],
                          message_id=body["message_id"], context=body["context"])
            values.update(overrides)
            return issue_receipt(**values)

        # Positive, so that this test adds no policy for the pipeline tests to find.
        body = {**VALID, "rating": "positive", "context": {**VALID["context"], "sql_queries": ["SELECT 1"]}}
        assert send(body, receipt_for(body)).status_code == 202
        refusals = [
            send(body, None),
            send(body, receipt_for(body, user="someone-else")),
            send(body, receipt_for(body, message_id="m-other")),
            send({**body, "context": {**body["context"], "sql_queries": ["SELECT 2"]}}, receipt_for(body)),
            send(body, receipt_for(body, ttl_seconds=-300)),
            send(body, receipt_for(body, key="forged-key-" * 4)),
        ]
        for refused in refusals:
            assert_error(refused, 403, "invalid_answer_receipt")


def test_per_address_limit_comes_before_authentication(infrastructure: ServerSet, stack: ServiceStack) -> None:
    with extra_feedback_api(infrastructure, stack, RATE_LIMIT_PER_ADDRESS_PER_MINUTE="2") as url:
        answers = [httpx.post(f"{url}/v1/feedback", json=VALID, timeout=30) for _ in range(3)]
        assert [a.status_code for a in answers[:2]] == [401, 401]
        assert_error(answers[2], 429, "rate_limited_address")
        assert int(answers[2].headers["Retry-After"]) >= 1


def test_deep_json_is_refused(stack: ServiceStack) -> None:
    deep: list = [1]
    for _ in range(12):
        deep = [deep]
    body = {**VALID, "context": {**VALID["context"], "results": [deep]}}
    error = assert_error(post(stack, body, stack.auth("u1", "user")), 422, "invalid_request")
    assert any("results" in detail["field"] for detail in error["details"])


def test_security_headers_on_every_answer(stack: ServiceStack) -> None:
    for response in (post(stack, VALID), httpx.get(f"{stack.policy_store}/healthz"),
                     httpx.get(f"{stack.policy_generator}/metrics")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"


def test_cors_is_closed_by_default_and_open_to_the_configured_origin(infrastructure: ServerSet,
                                                                      stack: ServiceStack) -> None:
    preflight = {"Origin": "https://dashboard.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    closed = httpx.options(f"{stack.feedback_api}/v1/feedback", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    with extra_feedback_api(infrastructure, stack, CORS_ALLOWED_ORIGINS="https://dashboard.example") as url:
        allowed = httpx.options(f"{url}/v1/feedback", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://dashboard.example"
        other = httpx.options(f"{url}/v1/feedback", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
