"""After a session of traffic, errors included, no secret appears in any service's log."""

from __future__ import annotations

import httpx
import pytest

from tests.support.infrastructure import ServerSet
from tests.support.stack import DATABASE_PASSWORD, OPENAI_KEY, RECEIPT_SECRET, ServiceStack

pytestmark = pytest.mark.e2e


def test_no_secret_in_any_log(infrastructure: ServerSet, stack: ServiceStack) -> None:
    # Traffic that exercises the paths most likely to log too much: bad tokens, bad bodies, a normal feedback.
    httpx.post(f"{stack.feedback_api}/v1/feedback", json={"rating": "negative"},
               headers={"Authorization": f"Bearer {stack.token('u', 'user')}x"})
    httpx.post(f"{stack.feedback_api}/v1/feedback", json={"rating": "bad"}, headers=stack.auth("u", "user"))
    httpx.post(f"{stack.feedback_api}/v1/feedback", headers=stack.auth("u", "user"),
               json={"conversation_id": "c", "message_id": "m", "rating": "positive",
                     "context": {"question": "How many systems?"}})
    httpx.get(f"{stack.policy_store}/v1/policies", headers={"Authorization": "Bearer not-a-token"})
    logs = sorted((infrastructure.home / "log").glob("*.log"))
    assert logs, "the services wrote no logs to search"
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert "feedback accepted" in text  # the logs searched are the real ones
    for name, secret in {"AUTH_JWT_SECRET": stack.env["AUTH_JWT_SECRET"], "ANSWER_RECEIPT_SECRET": RECEIPT_SECRET,
                         "OPENAI_API_KEY": OPENAI_KEY, "database password": DATABASE_PASSWORD}.items():
        assert secret not in text, f"{name} appears in the logs"
