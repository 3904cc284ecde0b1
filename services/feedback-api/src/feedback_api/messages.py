"""User-facing messages in Vietnamese (the default) and English, chosen by Accept-Language."""

from __future__ import annotations

from typing import Literal

Language = Literal["vi", "en"]

_ACCEPTED = {
    ("vi", True): "Đã ghi nhận phản hồi và tạo giải pháp tự động",
    ("vi", False): "Đã ghi nhận phản hồi",
    ("en", True): "Feedback recorded; an improvement policy is being generated automatically",
    ("en", False): "Feedback recorded",
}


def preferred_language(accept_language: str | None) -> Language:
    """English when the client prefers it (highest q among vi/en), Vietnamese otherwise."""
    best: tuple[float, Language] = (-1.0, "vi")
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("vi", "en"):
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        # Earlier entries win ties, as listed order expresses preference.
        if quality - position * 1e-6 > best[0]:
            best = (quality - position * 1e-6, primary)  # type: ignore[assignment]
    return best[1]


def accepted_message(language: Language, auto_generate_triggered: bool) -> str:
    """The message of a 202 answer."""
    return _ACCEPTED[(language, auto_generate_triggered)]
