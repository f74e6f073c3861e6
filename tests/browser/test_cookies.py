"""The cookie jar as Chromium keeps it (SECURITY.md S4, S5, S7, S9), over HTTP and HTTPS."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.sync_api import Page, Request

from .support import Site, assert_on_login, log_in, log_out, path_of

COOKIES = ("twofold_session", "twofold_csrf", "twofold_device")
DAY = 86_400


def test_cookie_jar_and_logout(site: Site, new_page: Callable[..., Page]) -> None:
    """After a login through the form, every Twofold cookie is HttpOnly, Path=/, without a
    Domain, SameSite=Lax or Strict (the known-device cookie Strict); over HTTPS also Secure
    with the __Host- prefix. Scripts cannot read any of them, and the session id never
    appears in a URL. After logout, Back and Reload show nothing private."""
    email = site.register()
    page = new_page(site)
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.context.on("request", record)
    with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/login"
    ) as login_answer:
        log_in(page, email)
    assert path_of(page) == "/"
    assert email in page.content()

    jar = {cookie["name"]: cookie for cookie in page.context.cookies()}
    expected = {site.cookie_name(name) for name in COOKIES}
    assert expected <= set(jar), f"cookies: {sorted(jar)}"
    for name, cookie in jar.items():
        assert name in expected, f"unexpected cookie {name}"
        assert cookie["httpOnly"], name
        assert cookie["path"] == "/", name
        # Host-only: the jar's domain is the bare host (a Domain attribute gives ".host").
        assert cookie["domain"] == "127.0.0.1", name
        assert cookie["sameSite"] in ("Lax", "Strict"), name
        assert cookie["secure"] is site.secure, name
        assert len(cookie["name"]) + len(cookie["value"]) < 4096
    device = jar[site.cookie_name("twofold_device")]
    assert device["sameSite"] == "Strict"
    assert 364 * DAY < device["expires"] - time.time() <= 366 * DAY  # kept a year
    if site.secure:
        assert all(name.startswith("__Host-") for name in jar)

    set_cookies = [
        header["value"]
        for header in login_answer.value.headers_array()
        if header["name"].lower() == "set-cookie"
    ]
    assert set_cookies
    for header in set_cookies:
        attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
        assert "domain" not in attributes, header
        assert {"httponly", "path", "samesite"} <= attributes, header
        assert ("secure" in attributes) is site.secure, header

    # No script of any origin can read them (Twofold's pages have none; an injected one
    # would find nothing).
    assert page.evaluate("document.cookie") == ""

    session_id = jar[site.cookie_name("twofold_session")]["value"]
    page.goto("/devices")
    assert session_id not in page.content()
    assert requested
    assert not [url for url in requested if session_id in url]

    # Log out, then Back and Reload: the profile page is fetched again (no-store, S9) and
    # the ended session gets the login page; the e-mail address is nowhere (S7).
    profile = page.goto("/")
    assert profile is not None
    assert "no-store" in profile.headers["cache-control"]
    assert email in page.content()
    log_out(page)
    assert_on_login(page, email)
    names = {cookie["name"] for cookie in page.context.cookies()}
    assert site.cookie_name("twofold_session") not in names

    back = page.go_back()
    # None would mean the page came from the back/forward cache, unasked.
    assert back is not None
    assert_on_login(page, email)
    page.reload()
    assert_on_login(page, email)
    page.goto("/")
    assert_on_login(page, email)
