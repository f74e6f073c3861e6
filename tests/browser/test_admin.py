"""The admin pages, used by an admin in one browser while the affected user is in another:
end a session, lock and unlock, set roles, read the audit log (SECURITY.md S7, S8)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page

from .support import (
    Site,
    assert_on_login,
    find_account_row,
    log_in,
    log_out,
    main,
    path_of,
    shot,
    sign_in,
    submit,
)

NewPage = Callable[..., Page]


def admin_page(new_page: NewPage, site: Site) -> Page:
    page = new_page(site)
    sign_in(page, site, site.admin_email)
    return page


def test_admin_ends_a_session_locks_and_unlocks(new_page: NewPage, http_site: Site) -> None:
    """An admin in one browser, the user in another. "Who is logged in" lists the user's
    session and "End" logs that browser out at its next request. Lock: the user, logged
    in again, is logged out at the next request, and logging in fails with the same
    message as a wrong password. Unlock: logging in works again."""
    email = http_site.register("victim")
    victim = new_page(http_site)
    sign_in(victim, http_site, email)
    victim.goto("/")
    admin = admin_page(new_page, http_site)

    admin.goto("/admin")
    session = admin.locator("tbody tr").filter(has_text=email)
    assert session.count() == 1
    assert "Browser session" in session.inner_text()
    ended = submit(admin, session.get_by_role("button", name="End"))
    assert ended.status == 200
    assert path_of(admin) == "/admin"
    assert admin.locator("tbody tr").filter(has_text=email).count() == 0
    victim.reload()
    assert_on_login(victim, email)

    assert log_in(victim, email).status == 200
    account = find_account_row(admin, email)
    assert "Active" in account.inner_text()
    locked = submit(admin, account.get_by_role("button", name="Lock"))
    assert locked.status == 200
    assert path_of(admin).startswith("/admin/accounts")
    assert "Locked" in find_account_row(admin, email).inner_text()
    shot(admin, "admin-accounts-locked")

    victim.reload()
    assert_on_login(victim, email)
    refused = log_in(victim, email)
    assert refused.status == 401
    locked_message = victim.get_by_role("alert").inner_text()
    log_in(victim, email, "not the password at all")
    assert victim.get_by_role("alert").inner_text() == locked_message  # nothing revealed

    unlocked = submit(admin, find_account_row(admin, email).get_by_role("button", name="Unlock"))
    assert unlocked.status == 200
    assert "Active" in find_account_row(admin, email).inner_text()
    assert log_in(victim, email).status == 200
    assert path_of(victim) == "/"
    assert email in main(victim).inner_text()


def test_roles_decide_who_sees_the_admin_pages(new_page: NewPage, http_site: Site) -> None:
    """A user without the admin role has no Admin link and gets a friendly 403 page at
    /admin; once an admin gives the role (Save roles), the link and the pages are there."""
    email = http_site.register("promoted")
    user = new_page(http_site)
    sign_in(user, http_site, email)
    user.goto("/")
    assert user.locator("header nav").get_by_role("link", name="Admin").count() == 0
    for path in ("/admin", "/admin/accounts", "/admin/events"):
        forbidden = user.goto(path)
        assert forbidden is not None
        assert forbidden.status == 403, path
        assert forbidden.headers["content-type"].startswith("text/html")
        assert user.get_by_role("heading", level=1).count() == 1
        assert main(user).get_by_role("link").count() >= 1  # a way back
    shot(user, "error-403")

    admin = admin_page(new_page, http_site)
    account = find_account_row(admin, email)
    account.get_by_label(f"Roles of {email}").fill("user admin")
    saved = submit(admin, account.get_by_role("button", name="Save roles"))
    assert saved.status == 200
    assert "admin" in find_account_row(admin, email).get_by_label(f"Roles of {email}").input_value()

    # A privilege change may end or rotate the session (S3): log in again if it did.
    user.goto("/")
    if path_of(user) == "/login":
        assert log_in(user, email).status == 200
    user.locator("header nav").get_by_role("link", name="Admin").click()
    user.wait_for_url("**/admin")
    assert user.get_by_role("heading", level=1).inner_text() == "Who is logged in"


def test_audit_log_filters_and_pages(new_page: NewPage, http_site: Site) -> None:
    """The audit log shows the newest events; the filter form narrows them to one kind and
    one account; "Older events" pages back."""
    email = http_site.register("audited")
    user = new_page(http_site)
    assert log_in(user, email).status == 200
    log_out(user)
    assert log_in(user, email).status == 200
    admin = admin_page(new_page, http_site)
    admin.goto("/admin/events")
    assert admin.locator("tbody tr").count() > 0

    admin.get_by_label("Kind of event").select_option("login_succeeded")
    admin.get_by_label("Account (e-mail address or id)").fill(email)
    filtered = submit(admin, main(admin).get_by_role("button", name="Filter"))
    assert filtered.status == 200
    assert "kind=login_succeeded" in path_of(admin)
    rows = admin.locator("tbody tr")
    assert rows.count() == 2
    for text in rows.all_inner_texts():
        assert "login succeeded" in text
        assert email in text
    shot(admin, "admin-events-filtered")

    admin.goto("/admin/events")
    older = admin.get_by_role("link", name="Older events")
    if older.count():  # more events than one page holds
        newest_first = admin.locator("tbody tr").first.inner_text()
        older.click()
        admin.wait_for_url("**/admin/events?*before=*")
        assert admin.locator("tbody tr").count() > 0
        assert admin.locator("tbody tr").first.inner_text() != newest_first
