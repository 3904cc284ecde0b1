"""Bearer JWT verification and role checks; the algorithm comes from configuration, never from the token."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import jwt
from fastapi import Depends, Request

from policyloop_common.errors import ApiError
from policyloop_common.settings import ServiceSettings


class Role(StrEnum):
    """Roles a token may carry (CONTRACT.md, Authentication)."""

    USER = "user"
    ADMIN = "admin"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject and roles."""

    user_id: str
    roles: frozenset[str]

    def has_any(self, *roles: Role) -> bool:
        """True when the caller holds at least one of ``roles``."""
        return any(role.value in self.roles for role in roles)

    @property
    def is_admin(self) -> bool:
        """Admins may do everything."""
        return Role.ADMIN.value in self.roles


class TokenVerifier:
    """Checks signature, ``exp``, ``nbf``, ``iss`` and ``aud`` of bearer tokens."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.algorithm = settings.auth_jwt_algorithm
        self.issuer = settings.auth_jwt_issuer
        self.audience = settings.auth_jwt_audience
        self.leeway = settings.auth_clock_skew_seconds
        self._secret = settings.auth_jwt_secret
        self._previous_secret = settings.auth_jwt_previous_secret
        # Keys are cached; a token with an unknown kid makes the client fetch the set again (key rotation),
        # at most once per cooldown, so forged kids cannot turn the service against the key server.
        self._jwks = (jwt.PyJWKClient(settings.auth_jwks_url, cache_jwk_set=True,
                                      lifespan=settings.auth_jwks_cache_seconds, timeout=5,
                                      cooldown_duration=settings.auth_jwks_refresh_cooldown_seconds)
                      if settings.auth_jwks_url else None)
        if self.algorithm.startswith("HS") and not self._secret:
            raise ValueError("AUTH_JWT_SECRET is required for an HS* algorithm")

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid token; raise ApiError(401) otherwise."""
        try:
            if self._jwks:
                claims = self._decode(token, self._jwks.get_signing_key_from_jwt(token).key)
            else:
                try:
                    claims = self._decode(token, self._secret)
                except jwt.InvalidSignatureError:
                    if not self._previous_secret:
                        raise
                    claims = self._decode(token, self._previous_secret)
        except jwt.ExpiredSignatureError as error:
            raise ApiError(401, "token_expired", "the token has expired", headers=_challenge()) from error
        except (jwt.InvalidTokenError, jwt.PyJWKClientError, jwt.exceptions.PyJWKError) as error:
            raise ApiError(401, "invalid_token", f"the token is not valid: {error}", headers=_challenge()) from error
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise ApiError(401, "invalid_token", "the roles claim must be a list of strings", headers=_challenge())
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise ApiError(401, "invalid_token", "the sub claim must be a non-empty string", headers=_challenge())
        return Principal(user_id=subject, roles=frozenset(roles))


    def _decode(self, token: str, key) -> dict:
        return jwt.decode(token, key, algorithms=[self.algorithm], audience=self.audience, issuer=self.issuer,
                          leeway=self.leeway, options={"require": ["exp", "iss", "aud", "sub"]})


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="policyloop"'}


def bearer_token(request: Request) -> str:
    """The token of the Authorization header, or ApiError(401)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing_token", "an Authorization: Bearer <JWT> header is required",
                       headers=_challenge())
    return token.strip()


def require_roles(*roles: Role) -> Callable[[Request], Principal]:
    """A FastAPI dependency that authenticates the caller and checks that they hold one of ``roles``."""

    def dependency(request: Request) -> Principal:
        verifier: TokenVerifier = request.app.state.token_verifier
        principal = verifier.verify(bearer_token(request))
        if not (principal.is_admin or principal.has_any(*roles)):
            wanted = ", ".join(role.value for role in roles)
            raise ApiError(403, "forbidden", f"this action needs one of the roles: {wanted}")
        return principal

    return dependency


def mint_token(settings: ServiceSettings, *, subject: str, roles: list[str], ttl_seconds: int = 3600,
               extra: dict | None = None) -> str:
    """Sign an HS* token for the local stack, tests and operators' scripts."""
    now = int(time.time())
    claims = {"sub": subject, "roles": roles, "iss": settings.auth_jwt_issuer, "aud": settings.auth_jwt_audience,
              "iat": now, "nbf": now, "exp": now + ttl_seconds, **(extra or {})}
    return jwt.encode(claims, settings.auth_jwt_secret, algorithm=settings.auth_jwt_algorithm)


PrincipalDep = Annotated[Principal, Depends(require_roles(Role.USER, Role.ADMIN, Role.ASSISTANT))]
