"""The review page in a real browser: Debian's Chromium driven by Playwright against the running stack.

The policies under review come the way real ones do: a user's feedback through feedback-api, whose comment carries
a link, so the generator's screening holds the policy it writes for a reviewer (``review_reasons``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support.polling import eventually
from tests.support.stack import ServiceStack
from tools.browser import chromium_executable

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _held_feedback(marker: str) -> dict:
    """A negative feedback with a real lesson and a link in its comment: decided, but held for review."""
    return {
        "conversation_id": f"c-review-{marker}", "message_id": f"m-review-{marker}", "rating": "negative",
        "comment": f"Decommissioned systems have lifecycle_stage = 'retired_{marker}', not 'old'. "
                   f"The list is at https://wiki.example.org/lifecycle-{marker}",
        "context": {"question": f"How many decommissioned systems are in batch {marker}?",
                    "sql_queries": ["SELECT count(*) FROM systems WHERE lifecycle_stage = 'old'"]},
    }


def _seed_held_policy(stack: ServiceStack, reporter: str) -> dict:
    """Submit a held feedback and wait for its policy; returns the marker, feedback, status and policy."""
    marker = uuid.uuid4().hex[:10]
    feedback = _held_feedback(marker)
    accepted = httpx.post(f"{stack.feedback_api}/v1/feedback", json=feedback, headers=stack.auth(reporter, "user"),
                          timeout=30)
    assert accepted.status_code == 202, accepted.text
    feedback_id = accepted.json()["feedback_id"]

    def decided():
        reply = httpx.get(f"{stack.policy_store}/v1/feedback/{feedback_id}", headers=stack.auth(reporter, "user"),
                          timeout=10)
        return reply.json() if reply.status_code == 200 and reply.json()["status"] != "pending" else None
    status = eventually(decided, timeout=90, what="decision on the held feedback")
    assert status["status"] == "generated" and "url in comment" in status["review_reasons"], status
    policy = httpx.get(f"{stack.policy_store}/v1/policies/{status['policy_id']}",
                       headers=stack.auth("root", "admin"), timeout=10).json()
    assert policy["status"] == "pending_review", policy
    return {"marker": marker, "feedback": feedback, "reporter": reporter, "status": status, "policy": policy}


@pytest.fixture(scope="module")
def held(stack: ServiceStack) -> list[dict]:
    """Two policies waiting for review, each from its own reporter's feedback."""
    return [_seed_held_policy(stack, f"reporter-{uuid.uuid4().hex[:6]}") for _ in range(2)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from Debian's package, never a downloaded browser build."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(chromium_executable()), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile per test: no cookies carried over."""
    fresh = browser.new_context()
    yield fresh
    fresh.close()


def _sign_in(page: Page, stack: ServiceStack, token: str) -> None:
    page.goto(f"{stack.policy_store}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login$"))
    page.get_by_label("Paste a bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def _policy_section(page: Page, policy_id: str):
    return page.locator(f"section.policy[data-policy-id='{policy_id}']")


def _find_in_list(page: Page, policy_id: str) -> None:
    """Follow "Next page" until the policy's section is on the page."""
    while _policy_section(page, policy_id).count() == 0:
        following = page.get_by_role("link", name="Next page")
        assert following.count() == 1, f"{policy_id} is on no page of this list"
        following.click()


def test_an_admin_approves_a_held_policy_after_reading_its_source_feedback(
        stack: ServiceStack, held: list[dict], context: BrowserContext) -> None:
    seeded = held[0]
    policy_id, marker = seeded["policy"]["policy_id"], seeded["marker"]
    reviewer, reason = f"reviewer-{marker}", f"checked the lifecycle values of batch {marker}"
    page = context.new_page()
    _sign_in(page, stack, stack.token(reviewer, "admin"))
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_text(f"Signed in as {reviewer}")).to_be_visible()

    section = _policy_section(page, policy_id)
    _find_in_list(page, policy_id)
    expect(section).to_contain_text(seeded["policy"]["rule"])
    expect(section.locator(".reasons")).to_contain_text("url in comment")
    source = section.locator("table.feedback tbody tr")
    expect(source).to_have_count(1)
    expect(source).to_contain_text(seeded["feedback"]["comment"])
    expect(source).to_contain_text(seeded["feedback"]["context"]["question"])
    expect(source).to_contain_text(seeded["reporter"])
    expect(source).to_contain_text("negative")

    section.get_by_label("Reason").fill(reason)
    section.get_by_role("button", name="Approve").click()
    expect(page.locator(".notice.ok")).to_have_text(f"Policy {policy_id} approved: it is now active.")
    expect(_policy_section(page, policy_id)).to_have_count(0)  # no longer waiting on the pending list

    page.get_by_role("link", name=re.compile(r"^active: ")).click()
    expect(page.get_by_role("heading", name="Policies: active")).to_be_visible()
    _find_in_list(page, policy_id)
    expect(_policy_section(page, policy_id).locator(".tag").first).to_have_text("active")

    admin = stack.auth("root", "admin")
    stored = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}", headers=admin, timeout=10).json()
    assert stored["status"] == "active"
    history = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}/history", headers=admin, timeout=10).json()
    assert [(h["action"], h["actor"], h["reason"]) for h in history["items"]][-1] == ("approve", reviewer, reason)


def test_the_policy_page_shows_history_and_effectiveness(
        stack: ServiceStack, held: list[dict], context: BrowserContext) -> None:
    policy_id = held[1]["policy"]["policy_id"]
    page = context.new_page()
    _sign_in(page, stack, stack.token("root", "admin"))
    page.goto(f"{stack.policy_store}/admin/policies/{policy_id}")
    expect(page.get_by_role("heading", name=f"Policy {policy_id}")).to_be_visible()

    history = page.locator("table.history tbody tr")
    expect(history.first).to_contain_text("created")
    expect(history.first).to_contain_text("policy-generator")
    api_history = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}/history",
                            headers=stack.auth("root", "admin"), timeout=10).json()["items"]
    expect(history).to_have_count(len(api_history))

    expect(page.get_by_role("heading", name="Effectiveness")).to_be_visible()
    figures = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}/effectiveness",
                        headers=stack.auth("root", "admin"), timeout=10).json()
    expect(page.locator("dl.effectiveness dd.uses")).to_have_text(str(figures["uses"]))
    expect(page.locator("dl.effectiveness")).to_contain_text("never active")  # still pending review
    expect(page.locator("dl.effectiveness")).to_contain_text("Similar questions before activation")


def test_a_stale_page_shows_a_refused_transition_as_a_message(
        stack: ServiceStack, held: list[dict], context: BrowserContext) -> None:
    policy_id = held[1]["policy"]["policy_id"]
    page = context.new_page()
    _sign_in(page, stack, stack.token("root", "admin"))
    page.goto(f"{stack.policy_store}/admin/policies/{policy_id}")
    # Another reviewer rejects it over the API while this page still offers "Approve".
    rejected = httpx.post(f"{stack.policy_store}/v1/policies/{policy_id}/reject",
                          headers=stack.auth("other-reviewer", "admin"), json={"reason": "duplicate wording"},
                          timeout=30)
    assert rejected.status_code == 200, rejected.text
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".notice.error")).to_have_text(
        f"Policy {policy_id} was not approved: cannot approve a policy that is rejected.")
    expect(page.locator("section.policy .tag").first).to_have_text("rejected")
    expect(page.locator("table.history tbody tr").last).to_contain_text("other-reviewer")


def test_a_token_without_the_admin_role_is_refused(stack: ServiceStack, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(f"{stack.policy_store}/admin/login")
    page.get_by_label("Paste a bearer token").fill(stack.token("mere-user", "user", "assistant"))
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Sign in").click()
    assert navigation.value.status == 403
    expect(page.get_by_role("alert")).to_contain_text("mere-user does not carry the admin role")
    assert not [cookie for cookie in context.cookies() if cookie["name"] == "policyloop_admin_session"]
    page.goto(f"{stack.policy_store}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login$"))


def test_a_review_post_without_the_csrf_token_is_refused(
        stack: ServiceStack, held: list[dict], context: BrowserContext) -> None:
    policy_id = held[0]["policy"]["policy_id"]
    page = context.new_page()
    _sign_in(page, stack, stack.token("root", "admin"))
    expect(page).to_have_url(re.compile(r"/admin/$"))
    before = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}", headers=stack.auth("root", "admin"),
                       timeout=10).json()["status"]
    # The browser context's own request client: it sends the signed-in session cookie, but no form token.
    refused = context.request.post(f"{stack.policy_store}/admin/policies/{policy_id}/review",
                                   form={"action": "retire", "reason": "forged"}, max_redirects=0)
    assert refused.status == 403 and "CSRF" in refused.text()
    forged = context.request.post(f"{stack.policy_store}/admin/policies/{policy_id}/review",
                                  form={"action": "retire", "reason": "forged", "csrf": "0" * 64}, max_redirects=0)
    assert forged.status == 403
    after = httpx.get(f"{stack.policy_store}/v1/policies/{policy_id}", headers=stack.auth("root", "admin"),
                      timeout=10).json()["status"]
    assert after == before
