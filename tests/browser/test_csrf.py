"""Cross-site request forgery from a real hostile page (SECURITY.md B1, B2): while the
victim is logged in, pages of another origin post forms to Twofold and call its API with
the victim's cookies. Each is refused and nothing changes.

The hostile origin is http://127.0.0.1:OTHER_PORT (another origin but the same site as
Twofold on 127.0.0.1: SameSite=Lax cookies still go along, so the CSRF token and the
Origin check must do the work) or http://localhost:OTHER_PORT (another site: the browser
leaves the cookies out). Hostile pages use scripts; they are their own origin.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page

from tests.conftest import PASSWORD

from .conftest import Browsing
from .support import Hostile, Site, auto_submit, hostile_page, main, path_of, sign_in

NEW_PASSWORD = "the attacker's own password, long enough"
FORGED = "A" * 43  # the shape of a real token


def attack(page: Page, hostile: Hostile, host: str, body: str, site: Site) -> str:
    """Open a hostile page in the victim's browser and wait until its form has landed on
    Twofold; Twofold's answer to the post (status, and where it sent the browser)."""
    url = hostile.publish(body, host)
    posts = page.expect_response(
        lambda r: r.request.method == "POST" and r.url.startswith(site.url)
    )
    with posts as posted, page.expect_navigation(url=lambda u: u.startswith(site.url)):
        page.goto(url)
    answer = posted.value
    cookies = [h["value"] for h in answer.headers_array() if h["name"].lower() == "set-cookie"]
    return f"{answer.status} {answer.headers.get('location', '')} set-cookie: {cookies}"


def still_logged_in(page: Page, email: str) -> bool:
    page.goto("/")
    return path_of(page) == "/" and email in main(page).inner_text()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
def test_hostile_forms_change_nothing(
    host: str, http_site: Site, hostile: Hostile, browsing: Browsing
) -> None:
    """Auto-submitting forms to log out, log out other devices and change the password
    (in the victim's browser), to lock an account (in an admin's browser) and to log a
    signed-out browser in (login CSRF) are refused: the victim and the admin are still
    logged in, the victim's other device too, the password is unchanged, the account
    unlocked, the signed-out browser still signed out."""
    site = http_site
    email = site.register("victim")
    target = site.register("target")
    target_id = site.user_id(target)
    victim = browsing.new_page(site)
    sign_in(victim, site, email)
    other_device = browsing.new_page(site)
    sign_in(other_device, site, email)
    admin = browsing.new_page(site)
    sign_in(admin, site, site.admin_email)

    answers: dict[str, str] = {}
    problems: list[str] = []
    for action, fields in [
        ("/logout", {"csrf_token": FORGED}),
        ("/devices/revoke-others", {"csrf_token": FORGED}),
        (
            "/account/password",
            {"csrf_token": FORGED, "current_password": PASSWORD, "new_password": NEW_PASSWORD},
        ),
    ]:
        body = auto_submit(f"{site.url}{action}", fields)
        answer = answers[f"{action} {sorted(fields)}"] = attack(victim, hostile, host, body, site)
        if not still_logged_in(victim, email):
            problems.append(f"{action} {sorted(fields)} logged the victim out: {answer}")
            sign_in(victim, site, email)  # on to the next attack
    lock = f"/admin/accounts/{target_id}/lock"
    body = auto_submit(f"{site.url}{lock}", {"csrf_token": FORGED})
    answers[lock] = attack(admin, hostile, host, body, site)
    if not still_logged_in(admin, site.admin_email):
        problems.append(f"{lock} logged the admin out: {answers[lock]}")

    # Login CSRF: logging a signed-out browser into the attacker's account (whose password
    # the attacker knows) is refused too.
    anonymous = browsing.new_page(site)
    anonymous.goto("/login")  # the browser has its form cookie
    body = auto_submit(
        f"{site.url}/login", {"csrf_token": FORGED, "email": target, "password": PASSWORD}
    )
    answers["/login"] = attack(anonymous, hostile, host, body, site)
    session = site.cookie_name("twofold_session")
    if session in {cookie["name"] for cookie in anonymous.context.cookies()}:
        problems.append(f"/login logged the browser in: {answers['/login']}")

    for action, answer in answers.items():
        # Refused (403), or a stale form's way back (303): never the success redirect.
        if answer.split()[0] not in ("303", "403") or "changed=" in answer:
            problems.append(f"{action}: {answer}")
    if not still_logged_in(other_device, email):
        problems.append("the other device was logged out")
    if not site.can_log_in(email, PASSWORD):
        problems.append("the password was changed")
    if not site.can_log_in(target):
        problems.append("the target account was locked")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
def test_hostile_fetch_with_credentials_changes_nothing(
    host: str, http_site: Site, hostile: Hostile, browsing: Browsing
) -> None:
    """A hostile script posts to /auth/logout with the victim's cookies: as a "simple"
    no-cors request (no CSRF header: refused), and as a CORS request with a made-up CSRF
    header (the preflight is not answered: the browser never sends it). The victim is still
    logged in."""
    email = http_site.register("fetched")
    victim = browsing.new_page(http_site)
    sign_in(victim, http_site, email)
    # The refusals show in the hostile page's console: that is what this test provokes.
    browsing.allow("blocked by CORS policy|net::ERR_FAILED|/auth/logout")

    results = {}
    for mode, headers in [("no-cors", {}), ("cors", {"x-csrf-token": FORGED})]:
        init = json.dumps(
            {"method": "POST", "credentials": "include", "mode": mode, "headers": headers}
        )
        script = (
            f"fetch({json.dumps(http_site.url + '/auth/logout')}, {init})"
            ".then(r => 'answered ' + r.type + ' ' + r.status, e => 'failed ' + e.name)"
            ".then(t => { document.getElementById('result').textContent = t; })"
        )
        url = hostile.publish(hostile_page(f'<p id="result"></p><script>{script}</script>'), host)
        victim.goto(url)
        victim.wait_for_function("document.getElementById('result').textContent !== ''")
        results[mode] = victim.text_content("#result")
        assert still_logged_in(victim, email), results

    # An opaque answer (status unreadable) or a failed preflight; never a readable 204.
    assert results["no-cors"] == "answered opaque 0"
    assert results["cors"] == "failed TypeError"
