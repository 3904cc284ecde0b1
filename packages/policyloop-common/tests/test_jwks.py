"""RS256 / ES256 tokens checked against keys from a JWKS URL served over real HTTP, including rotation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from policyloop_common.auth import TokenVerifier
from policyloop_common.errors import ApiError
from policyloop_common.settings import ServiceSettings


class KeyServer:
    """Serves a JWKS document that a test can change, and counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 — the name http.server calls
                server.fetches += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return None

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def publish(self, *pairs: tuple[str, object]) -> None:
        """Serve the public halves of ``(kid, private_key)`` pairs."""
        self.keys = []
        for kid, private_key in pairs:
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[_algorithm(private_key)]
                             .to_jwk(private_key.public_key()))
            self.keys.append({**jwk, "kid": kid, "use": "sig"})

    def close(self) -> None:
        self._http.shutdown()


def _algorithm(private_key: object) -> str:
    return "ES256" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "RS256"


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.close()


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(private_key, kid: str, **claims) -> str:
    now = int(time.time())
    body = {"sub": "u1", "roles": ["assistant"], "iss": "idp", "aud": "policyloop", "exp": now + 300, "nbf": now,
            **claims}
    return jwt.encode(body, private_key, algorithm=_algorithm(private_key), headers={"kid": kid})


def verifier(server: KeyServer, algorithm: str = "RS256") -> TokenVerifier:
    return TokenVerifier(ServiceSettings(auth_jwt_algorithm=algorithm, auth_jwks_url=server.url,
                                         auth_jwt_issuer="idp", auth_jwt_audience="policyloop",
                                         auth_jwks_refresh_cooldown_seconds=0))


def test_rs256_token_from_jwks(key_server: KeyServer) -> None:
    first = rsa_key()
    key_server.publish(("k1", first))
    principal = verifier(key_server).verify(token(first, "k1"))
    assert principal.user_id == "u1" and principal.roles == {"assistant"}


def test_rotation_is_picked_up_on_an_unknown_kid(key_server: KeyServer) -> None:
    first, second = rsa_key(), rsa_key()
    key_server.publish(("k1", first))
    checks = verifier(key_server)
    checks.verify(token(first, "k1"))
    fetched = key_server.fetches
    key_server.publish(("k1", first), ("k2", second))
    assert checks.verify(token(second, "k2")).user_id == "u1"
    assert key_server.fetches == fetched + 1
    checks.verify(token(first, "k1"))
    assert key_server.fetches == fetched + 1  # a known kid is served from the cache


def test_es256_token_from_jwks(key_server: KeyServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_server.publish(("e1", key))
    assert verifier(key_server, "ES256").verify(token(key, "e1")).user_id == "u1"


@pytest.mark.parametrize("forgery", ["unknown_key", "unknown_kid", "hs256_with_public_key", "expired", "not_yet"])
def test_forged_or_stale_tokens_are_refused(key_server: KeyServer, forgery: str) -> None:
    real = rsa_key()
    key_server.publish(("k1", real))
    if forgery == "unknown_key":
        forged = token(rsa_key(), "k1")
    elif forgery == "unknown_kid":
        forged = token(rsa_key(), "nobody")
    elif forgery == "hs256_with_public_key":
        # The classic confusion: the public key used as an HMAC secret; the pinned algorithm refuses it.
        public_pem = real.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        now = int(time.time())
        forged = jwt.encode({"sub": "x", "roles": ["admin"], "iss": "idp", "aud": "policyloop", "exp": now + 60},
                            public_pem, algorithm="HS256", headers={"kid": "k1"}) if _hmac_allows(public_pem) \
            else token(rsa_key(), "k1")
    elif forgery == "expired":
        forged = token(real, "k1", exp=int(time.time()) - 120)
    else:
        forged = token(real, "k1", nbf=int(time.time()) + 120)
    with pytest.raises(ApiError) as refused:
        verifier(key_server).verify(forged)
    assert refused.value.status == 401


def _hmac_allows(secret: bytes) -> bool:
    """Recent PyJWT refuses to sign HS256 with a PEM key at all; then the forgery cannot even be made."""
    try:
        jwt.encode({"a": 1}, secret, algorithm="HS256")
    except jwt.InvalidKeyError:
        return False
    return True


def test_clock_skew_is_bounded(key_server: KeyServer) -> None:
    real = rsa_key()
    key_server.publish(("k1", real))
    checks = verifier(key_server)
    assert checks.verify(token(real, "k1", exp=int(time.time()) - 10)).user_id == "u1"  # within 30 s leeway
    with pytest.raises(ApiError):
        checks.verify(token(real, "k1", exp=int(time.time()) - 90))


def test_key_server_down_is_401_not_500() -> None:
    settings = ServiceSettings(auth_jwt_algorithm="RS256", auth_jwks_url="http://127.0.0.1:9/jwks.json",
                               auth_jwt_issuer="idp", auth_jwt_audience="policyloop")
    with pytest.raises(ApiError) as refused:
        TokenVerifier(settings).verify(token(rsa_key(), "k1"))
    assert refused.value.status == 401
