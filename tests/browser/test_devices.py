"""Ending sessions from the devices page: the other browsers are logged out on their very
next request (SECURITY.md S7, S8)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Locator, Page

from tests.conftest import PASSWORD
from twofold.devices import session_handle
from twofold.sessions import hash_session_id

from .conftest import TwoBrowsers
from .support import API_AUDIENCE, Site, assert_on_login, path_of, shot, sign_in, submit


def device_rows(page: Page) -> Locator:
    """The rows of the sessions-and-families table (not the tokens table below it)."""
    return page.locator("table", has=page.locator("caption", has_text="sessions")).locator(
        "tbody tr"
    )


def token_rows(page: Page) -> Locator:
    return page.locator("table", has=page.locator("caption", has_text="tokens")).locator("tbody tr")


def test_token_for_another_application_is_shown_once_then_revoked(
    two_browsers: TwoBrowsers, http_site: Site
) -> None:
    """C9 on the devices page: a token made with chosen scopes is shown once (copyable,
    read-only), listed afterwards without its secret, works at POST /auth/token, and the
    Revoke button ends it."""
    page = two_browsers.here
    page.goto("/devices")
    page.get_by_label("Name").fill("backup script")
    page.get_by_label("write").uncheck()
    made = submit(page, page.get_by_role("button", name="Create token"))
    assert made.status == 200
    token = page.get_by_label("Your new token").input_value()
    assert token.startswith("tfs_")
    shot(page, "devices-token-created")
    page.goto("/devices")
    assert token not in page.content()
    row = token_rows(page).filter(has_text="backup script")
    assert row.count() == 1
    assert "read" in row.inner_text()
    assert "write" not in row.inner_text()
    with http_site.client() as app:
        bearer = {"Authorization": f"Bearer {token}"}
        exchange = {"audience": API_AUDIENCE}
        assert app.post("/auth/token", json=exchange, headers=bearer).status_code == 200
        submit(page, row.get_by_role("button", name="Revoke token"))
        assert token_rows(page).filter(has_text="backup script").count() == 0
        assert app.post("/auth/token", json=exchange, headers=bearer).status_code == 401


def test_revoke_one_device_then_all_others(
    two_browsers: TwoBrowsers, http_site: Site, new_page: Callable[..., Page]
) -> None:
    """Three browsers and an app (a token family) of one user. The first revokes the
    second's session on /devices: the second lands on the login page at its next request.
    Then "Log out all other devices" ends the third browser's session and the app's token
    family, not the first's own session."""
    here, elsewhere, email = two_browsers.here, two_browsers.elsewhere, two_browsers.email
    third = new_page(http_site)
    sign_in(third, http_site, email)
    third.goto("/")
    with http_site.client() as app:
        tokens = app.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"}
        ).json()

    here.goto("/devices")
    rows = device_rows(here).all_inner_texts()
    assert len(rows) == 4, rows
    assert sum("Browser session" in row for row in rows) == 3
    assert sum("Token family" in row for row in rows) == 1
    assert sum("This device" in row for row in rows) == 1
    shot(here, "devices-four")

    # The second browser's row: the one whose form names its session (by the hash of the
    # id in its cookie).
    cookie = next(
        c["value"]
        for c in elsewhere.context.cookies()
        if c["name"] == http_site.cookie_name("twofold_session")
    )
    handle = session_handle(hash_session_id(cookie))
    second = device_rows(here).filter(has=here.locator(f"form[action='/devices/{handle}/revoke']"))
    assert second.count() == 1
    assert "Browser session" in second.inner_text()
    revoked = submit(here, second.get_by_role("button", name="Revoke"))
    assert revoked.status == 200
    assert path_of(here).startswith("/devices?done=")
    assert here.get_by_role("status").is_visible()
    assert device_rows(here).count() == 3
    shot(here, "devices-revoked")

    elsewhere.reload()
    assert_on_login(elsewhere, email)
    third.reload()
    assert email in third.content()

    done = submit(here, here.get_by_role("button", name="Log out all other devices"))
    assert done.status == 200
    assert path_of(here).startswith("/devices?done=")
    rows = device_rows(here).all_inner_texts()
    assert len(rows) == 1
    assert "This device" in rows[0]

    third.goto("/devices")
    assert_on_login(third, email)
    with http_site.client() as app:
        refreshed = app.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    here.reload()
    assert email in here.content()
