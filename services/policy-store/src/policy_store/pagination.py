"""Opaque keyset cursors over (created_at, policy_id), newest first."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from policyloop_common.errors import ApiError


def encode_cursor(created_at: datetime, policy_id: str) -> str:
    """The cursor that continues after this row."""
    raw = json.dumps([created_at.isoformat(), policy_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The row a cursor continues after; 422 for anything that is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, policy_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created_at), str(policy_id)
    except (ValueError, TypeError, json.JSONDecodeError) as error:
        raise ApiError(422, "invalid_request", "the cursor is not valid",
                       [{"field": "cursor", "message": "use next_cursor from a previous page"}]) from error
