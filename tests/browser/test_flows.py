"""A user's way through the pages, typing and clicking (or only the keyboard): register,
log in, the profile, devices, changing the password and the e-mail address, log out."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.conftest import PASSWORD

from .conftest import TwoBrowsers
from .support import (
    Site,
    assert_on_login,
    log_in,
    log_out,
    main,
    path_of,
    shot,
    sign_in,
    submit,
)

NEW_PASSWORD = "a different horse, battery and staple"


def test_register_log_in_see_devices_and_log_out(page: Page, http_site: Site) -> None:
    """Register through the form, log in, look at the profile and the devices, log out."""
    email = http_site.new_email("flow")
    page.goto("/")
    assert path_of(page) == "/login"  # signed out: the profile sends you to log in

    page.locator("header").get_by_role("link", name="Register").click()
    page.wait_for_url("**/register")
    form = main(page)
    form.get_by_label("E-mail address").fill(email)
    form.get_by_label("Password").fill(PASSWORD)
    registered = submit(page, form.get_by_role("button", name="Register"))
    assert registered.status == 200
    assert path_of(page) == "/login?registered=1"
    assert page.get_by_role("status").is_visible()
    shot(page, "login-registered")

    form = main(page)
    form.get_by_label("E-mail address").fill(email)
    form.get_by_label("Password", exact=True).fill(PASSWORD)
    profile = submit(page, form.get_by_role("button", name="Log in"))
    assert profile.status == 200
    assert path_of(page) == "/"
    assert page.get_by_role("heading", level=1).inner_text() == "Your account"
    assert email in main(page).inner_text()
    assert "server-side session" in main(page).inner_text()

    page.locator("header nav").get_by_role("link", name="Devices").click()
    page.wait_for_url("**/devices")
    columns = [text.strip() for text in page.locator("thead th").all_text_contents()]
    for column in ("Device", "Kind", "Address", "Started", "Last used", "Expires"):
        assert column in columns, columns
    current = page.locator("tbody tr").filter(has_text="This device")
    assert current.count() == 1
    assert "Browser session" in current.inner_text()
    assert "127.0.0.1" in current.inner_text()
    # Your own device has no Revoke button (it would log you out).
    assert current.get_by_role("button", name="Revoke").count() == 0

    signed_out = log_out(page)
    assert signed_out.status == 200
    assert_on_login(page, email)
    page.goto("/devices")
    assert_on_login(page, email)


def test_log_in_with_the_keyboard_only(page: Page, http_site: Site) -> None:
    """Tab to the e-mail field (it may have the focus already), type, Tab to the password,
    type, Tab to "Log in", Enter: logged in. Then Tab to "Log out", Enter: logged out."""
    email = http_site.register("keyboard")
    page.goto("/login")
    for _ in range(12):
        if page.evaluate("document.activeElement.id") == "email":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Log in"
    with page.expect_navigation() as navigation:
        page.keyboard.press("Enter")
    assert navigation.value is not None
    assert navigation.value.status == 200
    assert path_of(page) == "/"
    assert email in main(page).inner_text()

    # And out again: Tab to the "Log out" button, Enter.
    for _ in range(12):
        if page.evaluate("document.activeElement.textContent.trim()") == "Log out":
            break
        page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert_on_login(page, email)


def test_wrong_password_shows_the_generic_error(page: Page, http_site: Site) -> None:
    """A wrong password renders the login page again with 401 and a message that does not
    say whether the account exists (the same for an unknown address)."""
    email = http_site.register("wrong")
    wrong = log_in(page, email, "not the password at all")
    assert wrong.status == 401
    assert path_of(page) == "/login"
    message = page.get_by_role("alert").inner_text()
    assert message
    # The address stays in the field; the password does not.
    assert main(page).get_by_label("E-mail address").input_value() == email
    assert main(page).get_by_label("Password", exact=True).input_value() == ""
    shot(page, "login-error")

    unknown = log_in(page, http_site.new_email("nobody"), "not the password at all")
    assert unknown.status == 401
    assert page.get_by_role("alert").inner_text() == message


def test_change_password(two_browsers: TwoBrowsers, http_site: Site) -> None:
    """The current password is asked for (wrong: 403 and a message); the change logs every
    other browser out, and only the new password works from then on."""
    here, elsewhere, email = two_browsers.here, two_browsers.elsewhere, two_browsers.email
    here.goto("/")
    main(here).get_by_role("link", name="Change password").click()
    here.wait_for_url("**/account/password")

    main(here).get_by_label("Current password").fill("not the password at all")
    main(here).get_by_label("New password").fill(NEW_PASSWORD)
    refused = submit(here, main(here).get_by_role("button", name="Change password"))
    assert refused.status == 403
    assert here.get_by_role("alert").inner_text() == "The current password is incorrect."
    shot(here, "account-password-error")

    main(here).get_by_label("Current password").fill(PASSWORD)
    main(here).get_by_label("New password").fill(NEW_PASSWORD)
    changed = submit(here, main(here).get_by_role("button", name="Change password"))
    assert changed.status == 200
    assert path_of(here) == "/?changed=password"
    assert here.get_by_role("status").is_visible()
    assert email in main(here).inner_text()

    elsewhere.reload()
    assert_on_login(elsewhere, email)
    assert not http_site.can_log_in(email, PASSWORD)
    assert http_site.can_log_in(email, NEW_PASSWORD)


def test_change_email(page: Page, http_site: Site) -> None:
    """A new address with the current password: the profile shows it, and it is the one
    to log in with."""
    here, email = page, http_site.register("moving")
    sign_in(here, http_site, email)
    new_email = http_site.new_email("moved")
    here.goto("/account/email")
    main(here).get_by_label("New e-mail address").fill(new_email)
    main(here).get_by_label("Current password").fill(PASSWORD)
    changed = submit(here, main(here).get_by_role("button", name="Change e-mail address"))
    assert changed.status == 200
    assert path_of(here) == "/?changed=email"
    assert new_email in main(here).inner_text()
    assert email not in here.content()
    assert http_site.can_log_in(new_email)
    assert not http_site.can_log_in(email)

    here.goto("/account/email")
    main(here).get_by_label("New e-mail address").fill(http_site.new_email("again"))
    main(here).get_by_label("Current password").fill("not the password at all")
    refused = submit(here, main(here).get_by_role("button", name="Change e-mail address"))
    assert refused.status == 403
    assert here.get_by_role("alert").inner_text() == "The current password is incorrect."
