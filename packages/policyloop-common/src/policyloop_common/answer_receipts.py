"""Answer receipts: the assistant signs which answer (and context) it gave to whom; feedback-api checks them."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import jwt


class InvalidReceipt(Exception):
    """The receipt is missing, badly signed, expired, or does not match the feedback."""


def context_digest(context: Any) -> str:
    """Hex SHA-256 of ``context`` as JSON with sorted keys, no spaces, UTF-8, non-ASCII kept (CONTRACT.md)."""
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def issue_receipt(*, key: str, user_id: str, conversation_id: str, message_id: str, context: Any,
                  ttl_seconds: int = 7 * 24 * 3600, algorithm: str = "HS256") -> str:
    """Sign a receipt for one answer; the assistant calls this when it answers."""
    claims = {"sub": user_id, "cid": conversation_id, "mid": message_id, "ctx": context_digest(context),
              "exp": int(time.time()) + ttl_seconds}
    return jwt.encode(claims, key, algorithm=algorithm)


def verify_receipt(receipt: str | None, *, key: str, algorithm: str, user_id: str, conversation_id: str,
                   message_id: str, context: Any, leeway_seconds: int = 30) -> None:
    """Raise InvalidReceipt unless ``receipt`` was signed for exactly this user, message and context."""
    if not receipt:
        raise InvalidReceipt("the X-Answer-Receipt header is required")
    try:
        claims = jwt.decode(receipt, key, algorithms=[algorithm], leeway=leeway_seconds,
                            options={"require": ["exp", "sub", "cid", "mid", "ctx"]})
    except jwt.ExpiredSignatureError as error:
        raise InvalidReceipt("the answer receipt has expired") from error
    except jwt.InvalidTokenError as error:
        raise InvalidReceipt(f"the answer receipt is not valid: {error}") from error
    expected = {"sub": user_id, "cid": conversation_id, "mid": message_id, "ctx": context_digest(context)}
    mismatched = sorted(name for name, value in expected.items() if claims.get(name) != value)
    if mismatched:
        raise InvalidReceipt(f"the answer receipt does not match the feedback ({', '.join(mismatched)})")
