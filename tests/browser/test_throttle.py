"""Failed logins on the login page are throttled, and the throttle does not lock out the
account's owner on their own browser (SECURITY.md P3). The servers allow three failures per
account (tests/browser/support.py SERVER_SETTINGS)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page

from .support import THROTTLED, Site, log_in, log_out, main, path_of, shot

MAX_ATTEMPTS = 10


def test_wrong_passwords_are_throttled_but_the_owner_gets_in(
    http_site: Site, new_page: Callable[..., Page]
) -> None:
    """Wrong passwords from another browser: 401 each, until 429 with Retry-After and
    "try again in N seconds" on the page. Meanwhile the owner's browser, which logged in
    before (known-device cookie), logs in at once."""
    email = http_site.register("throttled")
    owner = new_page(http_site)
    assert log_in(owner, email).status == 200
    log_out(owner)

    attacker = new_page(http_site)
    statuses = []
    for _ in range(MAX_ATTEMPTS):
        answer = log_in(attacker, email, "guess, guess, guess again")
        statuses.append(answer.status)
        if answer.status != 401:
            break
    assert statuses[-1] == 429, statuses
    assert len(statuses) > 1, "throttled at the first failure"
    message = main(attacker).get_by_role("alert").inner_text()
    shown = THROTTLED.search(message)
    assert shown, message
    assert answer.headers["retry-after"] == shown.group(1)
    assert int(shown.group(1)) >= 1
    assert path_of(attacker) == "/login"
    assert main(attacker).get_by_label("E-mail address").input_value() == email
    shot(attacker, "login-throttled")

    assert log_in(owner, email).status == 200
    assert path_of(owner) == "/"
    assert email in main(owner).inner_text()
