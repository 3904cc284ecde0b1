"""How the checks name an object and a place inside it in their messages."""

from __future__ import annotations

from collections.abc import Iterable


def describe(obj: dict) -> str:
    """``Kind namespace/name``, the way an operator would look the object up."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "<unnamed>")
    return f"{obj.get('kind', '<no kind>')} {namespace}/{name}" if namespace else f"{obj.get('kind')} {name}"


def json_path(parts: Iterable[str | int]) -> str:
    """``spec.template.spec.containers[0].ports[0]`` from the path elements of a validation error."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the object)"
