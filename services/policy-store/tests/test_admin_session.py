"""The review page's sign-in, session cookie, CSRF tokens and notices, on the application without its servers.

None of these paths reach PostgreSQL or Kafka (the lifespan is not started): they are decided by the cookie, the
token and the form alone, which is what makes them fast to check here. The full flow runs in
tests/e2e/test_admin_page.py.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient

from policy_store.admin.forms import local_admin_path
from policy_store.admin.notices import NOTICE_COOKIE
from policy_store.admin.session import LOGIN_COOKIE, SESSION_COOKIE, csrf_token, pasted_token
from policy_store.core.config import StoreSettings
from policy_store.main import create_app
from policyloop_common.auth import mint_token

SECRET = secrets.token_urlsafe(32)


def _settings(**overrides) -> StoreSettings:
    return StoreSettings(auth_jwt_secret=SECRET, auth_jwt_issuer="policyloop-test", auth_jwt_audience="policyloop",
                         admin_signing_key=secrets.token_hex(32), **overrides)


def _token(*roles: str, subject: str = "rev-1", ttl_seconds: int = 600) -> str:
    return mint_token(_settings(), subject=subject, roles=list(roles), ttl_seconds=ttl_seconds)


def _client(**overrides) -> TestClient:
    # Not entered as a context manager: that would run the lifespan, which starts the Kafka consumer and producer.
    return TestClient(create_app(_settings(**overrides)), follow_redirects=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    unstarted = _client()
    yield unstarted
    unstarted.close()


def _set_cookies(response) -> dict[str, str]:
    """Set-Cookie headers of a response by cookie name, attributes included."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        found[header.partition("=")[0]] = header
    return found


def _hidden_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _sign_in(client: TestClient, token: str):
    form = client.get("/admin/login")
    return client.post("/admin/login", data={"csrf": _hidden_csrf(form.text), "token": token})


def test_signing_in_sets_an_httponly_strict_session_cookie_holding_the_token(client: TestClient) -> None:
    token = _token("admin")
    signed_in = _sign_in(client, f"Bearer {token}\n")
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/admin/"
    cookie = _set_cookies(signed_in)[SESSION_COOKIE]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/admin" in attributes
    assert "secure" not in attributes  # ADMIN_COOKIE_SECURE defaults to off for the plain-http local stack
    assert SimpleCookie(cookie)[SESSION_COOKIE].value == token
    assert client.get("/admin/login").headers["location"] == "/admin/"  # already signed in


def test_the_session_cookie_is_secure_when_configured() -> None:
    secure = _client(admin_cookie_secure=True)
    form = secure.get("/admin/login")
    assert "secure" in [p.strip().lower() for p in _set_cookies(form)[LOGIN_COOKIE].split(";")]
    # The login nonce cookie is Secure too, so a plain-http client does not send it back: set it by hand.
    secure.cookies.set(LOGIN_COOKIE, SimpleCookie(_set_cookies(form)[LOGIN_COOKIE])[LOGIN_COOKIE].value,
                       path="/admin")
    signed_in = secure.post("/admin/login", data={"csrf": _hidden_csrf(form.text), "token": _token("admin")})
    assert signed_in.status_code == 303
    assert "secure" in [p.strip().lower() for p in _set_cookies(signed_in)[SESSION_COOKIE].split(";")]


def test_a_token_without_the_admin_role_is_refused_with_403_and_says_why(client: TestClient) -> None:
    refused = _sign_in(client, _token("user", "assistant", subject="carol"))
    assert refused.status_code == 403
    assert "carol" in refused.text and "admin role" in refused.text
    assert SESSION_COOKIE not in _set_cookies(refused)


def test_an_invalid_token_is_refused_with_401(client: TestClient) -> None:
    forged = mint_token(StoreSettings(auth_jwt_secret="x" * 40, auth_jwt_issuer="policyloop-test",
                                      auth_jwt_audience="policyloop"), subject="mallory", roles=["admin"])
    refused = _sign_in(client, forged)
    assert refused.status_code == 401 and "not accepted" in refused.text
    assert SESSION_COOKIE not in _set_cookies(refused)


def test_the_login_form_needs_its_csrf_token_and_nonce_cookie(client: TestClient) -> None:
    form = client.get("/admin/login")
    assert client.post("/admin/login", data={"token": _token("admin")}).status_code == 403
    assert client.post("/admin/login", data={"csrf": "0" * 64, "token": _token("admin")}).status_code == 403
    csrf = _hidden_csrf(form.text)
    client.cookies.clear()  # a cross-site post carries no SameSite=Strict nonce cookie
    assert client.post("/admin/login", data={"csrf": csrf, "token": _token("admin")}).status_code == 403


def test_pages_without_a_session_lead_to_the_login_form(client: TestClient) -> None:
    assert client.get("/admin").headers["location"] == "/admin/"
    for path in ("/admin/", "/admin/policies/some-policy"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/login", path
    posted = client.post("/admin/policies/some-policy/review", data={"action": "approve"})
    assert posted.status_code == 303 and posted.headers["location"] == "/admin/login"


def test_an_expired_session_ends_with_a_notice_and_a_cleared_cookie(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, _token("admin", ttl_seconds=-120), path="/admin")
    ended = client.get("/admin/")
    assert ended.status_code == 303 and ended.headers["location"] == "/admin/login"
    cookies = _set_cookies(ended)
    assert 'policyloop_admin_session=""' in cookies[SESSION_COOKIE] and "max-age=0" in cookies[SESSION_COOKIE].lower()
    login = client.get("/admin/login")
    assert "Your session ended (the token has expired)" in login.text
    assert "max-age=0" in _set_cookies(login)[NOTICE_COOKIE].lower()  # shown once


def test_a_review_post_needs_the_csrf_token_of_its_own_session(client: TestClient) -> None:
    url = "/admin/policies/some-policy/review"
    # The 403 page of a non-admin session shows that session's token (for its sign-out form).
    client.cookies.set(SESSION_COOKIE, _token("user", subject="dave"), path="/admin")
    other_sessions_csrf = _hidden_csrf(client.get("/admin/").text)
    login_csrf = _hidden_csrf(client.get("/admin/login").text)
    client.cookies.set(SESSION_COOKIE, _token("admin"), path="/admin")
    for csrf in (None, "", other_sessions_csrf, login_csrf, "é" * 64):
        data = {"action": "approve", "reason": "ok", **({"csrf": csrf} if csrf is not None else {})}
        refused = client.post(url, data=data)
        assert refused.status_code == 403 and "CSRF" in refused.text, csrf


def test_with_its_csrf_token_a_review_reaches_the_store_and_a_failure_reads_as_a_notice() -> None:
    # Port 1 refuses connections at once: the review gets past the CSRF check and meets a database that is down.
    admin = _client(database_url="postgresql+psycopg://postgres@127.0.0.1:1/none")
    token = _token("admin")
    admin.cookies.set(SESSION_COOKIE, token, path="/admin")
    posted = admin.post("/admin/policies/some-policy/review",
                        data={"action": "approve", "csrf": csrf_token(admin.app, token),
                              "return_to": "https://evil.example/"})
    assert posted.status_code == 303 and posted.headers["location"] == "/admin/policies/some-policy"
    unavailable = admin.get("/admin/")
    admin.cookies.delete(SESSION_COOKIE, path="/admin")
    shown = admin.get("/admin/login")
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"]
    assert "database is unavailable" in unavailable.text and "Traceback" not in unavailable.text
    assert "Policy some-policy was not approved: the database is unavailable" in shown.text


def test_a_non_admin_session_gets_a_403_page_that_can_sign_out(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, _token("user", subject="dave"), path="/admin")
    page = client.get("/admin/")
    assert page.status_code == 403 and "dave" in page.text
    csrf = _hidden_csrf(page.text)
    assert client.post("/admin/logout", data={}).status_code == 403
    signed_out = client.post("/admin/logout", data={"csrf": csrf})
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/admin/login"
    assert "max-age=0" in _set_cookies(signed_out)[SESSION_COOKIE].lower()


def test_pages_carry_a_scriptless_csp_whose_nonce_is_the_style_blocks(client: TestClient) -> None:
    form = client.get("/admin/login")
    policy = form.headers["content-security-policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert f'<style nonce="{nonce}">' in form.text and "<script" not in form.text
    assert form.headers["x-frame-options"] == "DENY"
    assert form.headers["cache-control"] == "no-store"
    assert form.headers["referrer-policy"] == "no-referrer"
    assert re.search(r"'nonce-([^']+)'", client.get("/admin/login").headers["content-security-policy"]).group(1) \
        != nonce


def test_only_notices_signed_by_the_service_are_shown(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, _token("user", subject="erin"), path="/admin")
    signed_out = client.post("/admin/logout", data={"csrf": _hidden_csrf(client.get("/admin/").text)})
    genuine = SimpleCookie(_set_cookies(signed_out)[NOTICE_COOKIE])[NOTICE_COOKIE].value
    client.cookies.clear()
    client.cookies.set(NOTICE_COOKIE, genuine, path="/admin")
    assert "You are signed out." in client.get("/admin/login").text
    payload, _, signature = genuine.partition(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps(["ok", "Send your token to evil.example"]).encode())
    for forged in (f"{forged_payload.decode().rstrip('=')}.{signature}", f"{payload}.{'0' * 64}", payload):
        client.cookies.set(NOTICE_COOKIE, forged, path="/admin")
        page = client.get("/admin/login").text
        assert "evil.example" not in page and "signed out" not in page, forged


def test_pasted_tokens_and_return_paths_are_cleaned() -> None:
    assert pasted_token("  Bearer abc.def.ghi \n") == "abc.def.ghi"
    assert pasted_token("abc.def.ghi") == "abc.def.ghi"
    default = "/admin/policies/p"
    assert local_admin_path("/admin/?status=active&cursor=x", default) == "/admin/?status=active&cursor=x"
    for hostile in ("https://evil.example/admin/", "//evil.example/admin/", "/v1/policies", "/admin/\r\nX: y",
                    "\\\\evil.example", None, ""):
        assert local_admin_path(hostile, default) == default, hostile
