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


def test_rotation_accepts_the_previous_secret_until_it_is_removed() -> None:
    old_token = mint_token(settings(), subject="u1", roles=["user"])
    new_secret = "n" * 40
    rotating = ServiceSettings(auth_jwt_secret=new_secret, auth_jwt_previous_secret=SECRET,
                               auth_jwt_issuer="iss", auth_jwt_audience="aud")
    new_token = mint_token(rotating, subject="u2", roles=["user"])
    verifier = TokenVerifier(rotating)
    assert verifier.verify(old_token).user_id == "u1"
    assert verifier.verify(new_token).user_id == "u2"
    # Neither secret signed this one: still refused.
    forged = jwt.encode({"sub": "u3", "roles": [], "iss": "iss", "aud": "aud", "exp": int(time.time()) + 60},
                        "f" * 40, algorithm="HS256")
    with pytest.raises(ApiError):
        verifier.verify(forged)
    rotated = TokenVerifier(ServiceSettings(auth_jwt_secret=new_secret, auth_jwt_issuer="iss",
                                            auth_jwt_audience="aud"))
    with pytest.raises(ApiError):
        rotated.verify(old_token)
