"""Text and JSON that every part of the pipeline can store: no NUL characters, bounded nesting.

PostgreSQL cannot store U+0000 in text or JSONB. Refused at the edge (422) and again when an event is read, such a
character can never stall a consumer on a record it cannot write.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

MAX_JSON_DEPTH = 10


def reject_nul(value: str) -> str:
    """``value`` unchanged, or ValueError if it holds a NUL character."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    return value


def check_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``value`` unchanged, or ValueError if it nests deeper than ``max_depth`` or holds a NUL character."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > max_depth:
            raise ValueError(f"must not nest deeper than {max_depth} levels")
        if isinstance(item, str):
            reject_nul(item)
        elif isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return value


SafeText = Annotated[str, AfterValidator(reject_nul)]
SafeJson = Annotated[Any, AfterValidator(check_json)]
