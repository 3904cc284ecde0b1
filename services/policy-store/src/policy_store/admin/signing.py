"""HMAC signatures of the review page: CSRF tokens and notices, each under its own purpose."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from fastapi import FastAPI

_KEY_LOCK = threading.Lock()


def signing_key(app: FastAPI) -> bytes:
    """ADMIN_SIGNING_KEY, or one random key chosen once for this process when none is configured."""
    key = getattr(app.state, "admin_signing_key", None)
    if key is None:
        # Requests run in threads: without the lock two first requests could each pick a different random key.
        with _KEY_LOCK:
            key = getattr(app.state, "admin_signing_key", None)
            if key is None:
                configured = app.state.settings.admin_signing_key
                key = configured.encode() if configured else secrets.token_bytes(32)
                app.state.admin_signing_key = key
    return key


def sign(key: bytes, purpose: str, value: str) -> str:
    """Hex HMAC-SHA256 of ``value``; the purpose keeps a signature made for one use from passing for another."""
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def signature_matches(key: bytes, purpose: str, value: str, signature: str | None) -> bool:
    """True when ``signature`` is ``sign(key, purpose, value)``, compared in constant time."""
    # compare_digest takes only ASCII text; anything else cannot be one of ours anyway.
    return bool(signature) and signature.isascii() and hmac.compare_digest(sign(key, purpose, value), signature)
