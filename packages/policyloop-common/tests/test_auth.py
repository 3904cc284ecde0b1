"""Token verification: what passes, and every way a token is refused."""

from __future__ import annotations

import time

import jwt
import pytest

from policyloop_common.auth import TokenVerifier, mint_token
from policyloop_common.errors import ApiError
from policyloop_common.settings import ServiceSettings

SECRET = "s" * 40


def settings(**overrides) -> ServiceSettings:
    return ServiceSettings(auth_jwt_secret=SECRET, auth_jwt_issuer="iss", auth_jwt_audience="aud", **overrides)


def test_valid_token_gives_subject_and_roles() -> None:
    principal = TokenVerifier(settings()).verify(mint_token(settings(), subject="u1", roles=["user", "admin"]))
    assert principal.user_id == "u1"
    assert principal.roles == {"user", "admin"}
    assert principal.is_admin


@pytest.mark.parametrize("claims", [
    {"exp": int(time.time()) - 3600},
    {"iss": "other"},
    {"aud": "other"},
    {"roles": "admin"},
    {"sub": ""},
    {"nbf": int(time.time()) + 3600},
])
def test_bad_claims_are_refused(claims: dict) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "u1", "roles": ["user"], "iss": "iss", "aud": "aud", "exp": now + 60, **claims},
                       SECRET, algorithm="HS256")
    with pytest.raises(ApiError) as refused:
        TokenVerifier(settings()).verify(token)
    assert refused.value.status == 401


def test_algorithm_is_pinned_by_configuration() -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "u1", "roles": [], "iss": "iss", "aud": "aud", "exp": now + 60}, SECRET,
                       algorithm="HS384")
    with pytest.raises(ApiError):
        TokenVerifier(settings()).verify(token)


def test_production_refuses_placeholder_secrets() -> None:
    with pytest.raises(ValueError):
        ServiceSettings(environment="production", auth_jwt_secret="changeme")
    assert ServiceSettings(environment="production", auth_jwt_secret=SECRET).environment == "production"
