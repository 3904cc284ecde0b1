"""Answer receipts match exactly one user, message and context."""

from __future__ import annotations

import pytest

from policyloop_common.answer_receipts import InvalidReceipt, context_digest, issue_receipt, verify_receipt

KEY = "receipt-key-" * 4
CONTEXT = {"question": "Có bao nhiêu hệ thống?", "sql_queries": ["SELECT 1"]}


def receipt(**overrides) -> str:
    values = dict(key=KEY, user_id="u1", conversation_id="c1", message_id="m1", context=CONTEXT)
    values.update(overrides)
    return issue_receipt(**values)


def check(token: str | None, **overrides) -> None:
    values = dict(key=KEY, algorithm="HS256", user_id="u1", conversation_id="c1", message_id="m1", context=CONTEXT)
    values.update(overrides)
    verify_receipt(token, **values)


def test_digest_is_canonical_json_with_non_ascii_kept() -> None:
    import hashlib

    expected = hashlib.sha256('{"question":"Có bao nhiêu hệ thống?","sql_queries":["SELECT 1"]}'.encode()).hexdigest()
    assert context_digest(CONTEXT) == expected


def test_matching_receipt_passes() -> None:
    check(receipt())


@pytest.mark.parametrize("overrides", [
    {"user_id": "u2"}, {"message_id": "m2"}, {"conversation_id": "c2"},
    {"context": {**CONTEXT, "sql_queries": ["DROP TABLE x"]}},
])
def test_mismatch_is_refused(overrides: dict) -> None:
    with pytest.raises(InvalidReceipt):
        check(receipt(), **overrides)


def test_expired_missing_and_forged_receipts_are_refused() -> None:
    with pytest.raises(InvalidReceipt, match="expired"):
        check(receipt(ttl_seconds=-120))
    with pytest.raises(InvalidReceipt, match="required"):
        check(None)
    with pytest.raises(InvalidReceipt):
        check(receipt(key="another-key-" * 4))
