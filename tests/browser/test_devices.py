"""Ending sessions from the devices page: the other browser is logged out on its very next
request (SECURITY.md S7, S8)."""

from __future__ import annotations

from tests.conftest import PASSWORD

from .conftest import TwoBrowsers
from .support import Site, assert_on_login, path_of, shot, submit


def test_revoking_a_device_logs_that_browser_out(two_browsers: TwoBrowsers) -> None:
    """Two browsers of one user; the first revokes the second's session on /devices; the
    second lands on the login page at its next request, the first stays."""
    here, elsewhere, email = two_browsers.here, two_browsers.elsewhere, two_browsers.email
    here.goto("/devices")
    rows = here.locator("tbody tr")
    assert rows.count() == 2
    other = rows.filter(has_not_text="This device")
    assert other.count() == 1
    assert "Browser session" in other.inner_text()
    shot(here, "devices")

    revoked = submit(here, other.get_by_role("button", name="Revoke"))
    assert revoked.status == 200
    assert path_of(here).startswith("/devices?done=")
    assert here.get_by_role("status").is_visible()
    assert here.locator("tbody tr").count() == 1
    shot(here, "devices-revoked")

    elsewhere.reload()
    assert_on_login(elsewhere, email)
    here.goto("/")
    assert email in here.content()


def test_log_out_all_other_devices(two_browsers: TwoBrowsers, http_site: Site) -> None:
    """ "Log out all other devices" ends the other browser's session and an app's token
    family (listed as "Token family"), not this browser's session."""
    here, elsewhere, email = two_browsers.here, two_browsers.elsewhere, two_browsers.email
    with http_site.client() as app:
        tokens = app.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"}
        ).json()
    here.goto("/devices")
    kinds = here.locator("tbody tr").all_inner_texts()
    assert len(kinds) == 3
    assert sum("Token family" in row for row in kinds) == 1
    assert sum("Browser session" in row for row in kinds) == 2

    done = submit(here, here.get_by_role("button", name="Log out all other devices"))
    assert done.status == 200
    assert path_of(here).startswith("/devices?done=")
    rows = here.locator("tbody tr")
    assert rows.count() == 1
    assert "This device" in rows.inner_text()

    elsewhere.goto("/devices")
    assert_on_login(elsewhere, email)
    with http_site.client() as app:
        refreshed = app.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    here.reload()
    assert email in here.content()
