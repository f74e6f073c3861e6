"""The admin pages: who is logged in (end any of it), accounts (lock, unlock, roles, paged)
and the audit log (paged, filtered). Only for the admin role; every form needs CSRF proof."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, make_admin
from tests.http.test_pages import (
    COOKIE,
    FOREIGN,
    alive,
    assert_well_formed_page,
    form_token,
    signed_in,
    submit,
)
from twofold.runtime import Runtime

ADMIN_PAGES = ["/admin", "/admin/accounts", "/admin/events"]
PAGE_IDS = ["live", "accounts", "events"]


def user_id(live: LiveServer, email: str) -> str:
    async def find(runtime: Runtime) -> str:
        return (await runtime.admin.find_user(email)).id

    return live.call(find(live.runtime))


def roles(live: LiveServer, email: str) -> tuple[str, ...]:
    async def find(runtime: Runtime) -> tuple[str, ...]:
        return (await runtime.admin.find_user(email)).roles

    return live.call(find(live.runtime))


def own_device(client: httpx.Client) -> str:
    found: list[dict[str, Any]] = client.get("/auth/sessions").json()["sessions"]
    (current,) = (str(d["id"]) for d in found if d["current"])
    return current


def logs_in(live: LiveServer, email: str) -> bool:
    with live.client() as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"}
        )
    return answer.status_code == 200


def rows(page: httpx.Response, label: str) -> int:
    return len(re.findall(rf'<th scope="row" data-label="{label}"', page.text))


# -- who may see them ------------------------------------------------------------------


@pytest.mark.parametrize("path", ADMIN_PAGES, ids=PAGE_IDS)
def test_admin_pages_are_403_pages_for_other_users(live: LiveServer, path: str) -> None:
    """A signed-in user without the admin role gets the 403 page (HTML, whatever the
    Accept), and no Admin link in the nav."""
    with signed_in(live, live.register()) as client:
        answer = client.get(path)
    assert answer.status_code == 403
    assert_well_formed_page(answer)
    assert "administrators" in answer.text
    assert 'href="/admin"' not in answer.text


@pytest.mark.parametrize("path", ADMIN_PAGES, ids=PAGE_IDS)
def test_admin_pages_send_anonymous_visitors_to_login(live: LiveServer, path: str) -> None:
    with live.client() as client:
        answer = client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"


@pytest.mark.parametrize("path", ADMIN_PAGES, ids=PAGE_IDS)
def test_admin_pages_render_for_an_admin(live: LiveServer, path: str) -> None:
    with signed_in(live, make_admin(live)) as client:
        answer = client.get(path)
    assert answer.status_code == 200
    assert_well_formed_page(answer)
    assert answer.headers["cache-control"] == "no-store"
    assert 'href="/admin" aria-current="page"' in answer.text
    assert 'aria-label="Admin"' in answer.text


def test_a_non_admin_cannot_use_the_admin_forms(live: LiveServer) -> None:
    """Posting an admin form without the role is the 403 page and changes nothing, even
    with a valid token of the user's own session."""
    target = live.register()
    target_id = user_id(live, target)
    with signed_in(live, live.register()) as client:
        token = form_token(client.get("/"))
        for action in ("lock", "roles"):
            answer = client.post(
                f"/admin/accounts/{target_id}/{action}",
                data={"csrf_token": token, "roles": "user admin"},
            )
            assert answer.status_code == 403
    assert logs_in(live, target)
    assert roles(live, target) == ("user",)


# -- who is logged in ------------------------------------------------------------------


def test_who_is_logged_in_shows_sessions_and_ends_one(fresh_live: LiveServer) -> None:
    """The page lists live sessions with their accounts' addresses; End logs that one out."""
    live = fresh_live
    target = live.register()
    with signed_in(live, target, "Target-Browser") as them:
        device = own_device(them)
        with signed_in(live, make_admin(live)) as admin:
            page = admin.get("/admin")
            assert target in page.text
            assert "Target-Browser" in page.text
            assert page.text.count(">This device<") == 1
            answer = submit(admin, "/admin", f"/admin/live/{device}/end")
            assert answer.status_code == 303
            assert answer.headers["location"] == "/admin"
            assert not alive(live, them.cookies[COOKIE])
            assert alive(live, admin.cookies[COOKIE])
            assert "Target-Browser" not in admin.get("/admin").text
            again = submit(admin, "/admin", f"/admin/live/{device}/end")
            assert again.status_code == 404
            assert 'role="alert"' in again.text


def test_an_admin_ending_their_own_session_is_logged_out(live: LiveServer) -> None:
    with signed_in(live, make_admin(live)) as admin:
        cookie = admin.cookies[COOKIE]
        answer = submit(admin, "/admin", f"/admin/live/{own_device(admin)}/end")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    assert f'{COOKIE}="";' in answer.headers["set-cookie"]
    assert not alive(live, cookie)


# -- accounts --------------------------------------------------------------------------


def test_locking_ends_the_account_and_unlocking_lets_it_in(fresh_live: LiveServer) -> None:
    live = fresh_live
    target = live.register()
    target_id = user_id(live, target)
    with signed_in(live, target) as them, signed_in(live, make_admin(live)) as admin:
        page = admin.get("/admin/accounts")
        assert target in page.text
        assert f'action="/admin/accounts/{target_id}/lock"' in page.text
        locked = submit(admin, "/admin/accounts", f"/admin/accounts/{target_id}/lock")
        assert locked.status_code == 303
        assert locked.headers["location"] == "/admin/accounts"
        assert not alive(live, them.cookies[COOKIE])
        assert not logs_in(live, target)
        page = admin.get("/admin/accounts")
        assert ">Locked<" in page.text
        assert f'action="/admin/accounts/{target_id}/unlock"' in page.text
        unlocked = submit(admin, "/admin/accounts", f"/admin/accounts/{target_id}/unlock")
        assert unlocked.status_code == 303
    assert logs_in(live, target)


def test_an_admin_cannot_lock_themselves(live: LiveServer) -> None:
    """Their own row has no Lock button, and posting it anyway is a 400 with the reason;
    the admin stays logged in."""
    email = make_admin(live)
    own_id = user_id(live, email)
    with signed_in(live, email) as admin:
        page = admin.get("/admin/accounts?offset=0")
        assert f'action="/admin/accounts/{own_id}/lock"' not in page.text
        answer = submit(admin, "/admin/accounts", f"/admin/accounts/{own_id}/lock")
        assert answer.status_code == 400
        assert "You cannot lock your own account." in answer.text
        assert alive(live, admin.cookies[COOKIE])


@pytest.mark.parametrize(
    ("typed", "saved"),
    [
        ("user, auditor", ("user", "auditor")),
        ("user   support\tbilling", ("user", "support", "billing")),
    ],
    ids=["comma-separated", "space-separated"],
)
def test_roles_are_saved(live: LiveServer, typed: str, saved: tuple[str, ...]) -> None:
    target = live.register()
    target_id = user_id(live, target)
    with signed_in(live, make_admin(live)) as admin:
        answer = submit(admin, "/admin/accounts", f"/admin/accounts/{target_id}/roles", roles=typed)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/accounts"
    assert roles(live, target) == saved


@pytest.mark.parametrize(
    ("whose", "typed", "reason"),
    [("other", "user Not-A-Role!", "Roles are at most"), ("own", "user", "own admin role")],
    ids=["invalid-role", "own-admin-role"],
)
def test_refused_roles_are_a_400_with_the_reason(
    live: LiveServer, whose: str, typed: str, reason: str
) -> None:
    email = make_admin(live)
    target = email if whose == "own" else live.register()
    before = roles(live, target)
    with signed_in(live, email) as admin:
        answer = submit(
            admin,
            "/admin/accounts",
            f"/admin/accounts/{user_id(live, target)}/roles",
            roles=typed,
        )
    assert answer.status_code == 400
    assert reason in answer.text
    assert 'role="alert"' in answer.text
    assert roles(live, target) == before


def test_an_unknown_account_is_a_404(live: LiveServer) -> None:
    with signed_in(live, make_admin(live)) as admin:
        answer = submit(admin, "/admin/accounts", "/admin/accounts/no-such-user/unlock")
    assert answer.status_code == 404
    assert "There is no such account." in answer.text


@pytest.mark.parametrize(
    ("token", "headers"),
    [(None, {}), ("A" * 43, {}), ("valid", FOREIGN)],
    ids=["missing-token", "wrong-token", "foreign-origin"],
)
def test_admin_forms_need_csrf_proof(
    live: LiveServer, token: str | None, headers: dict[str, str]
) -> None:
    """Lock, roles and End without the session's token or from another origin: 403 with
    "The form expired", and nothing changed (B1)."""
    target = live.register()
    target_id = user_id(live, target)
    with signed_in(live, target) as them, signed_in(live, make_admin(live)) as admin:
        real = form_token(admin.get("/admin/accounts"))
        fields = {"roles": "user admin"}
        if token is not None:
            fields["csrf_token"] = real if token == "valid" else token
        for action in (
            f"/admin/accounts/{target_id}/lock",
            f"/admin/accounts/{target_id}/roles",
            f"/admin/live/{own_device(them)}/end",
        ):
            answer = admin.post(action, data=fields, headers=headers)
            assert answer.status_code == 403, action
            assert "The form expired; please try again." in answer.text
        assert alive(live, them.cookies[COOKIE])
    assert roles(live, target) == ("user",)


def test_accounts_are_paged(fresh_live: LiveServer) -> None:
    """Fifty accounts a page; the next page goes on from there, and together the pages
    show every account once."""
    live = fresh_live
    admin_email = make_admin(live)
    emails = {admin_email} | {live.register() for _ in range(51)}

    def shown(page: httpx.Response) -> list[str]:
        return re.findall(r'data-label="E-mail address">\s*([^<\s]+)', page.text)

    with signed_in(live, admin_email) as admin:
        first = admin.get("/admin/accounts")
        assert len(shown(first)) == 50
        assert 'href="/admin/accounts?offset=50"' in first.text
        second = admin.get("/admin/accounts?offset=50")
        assert len(shown(second)) == 2
        assert 'href="/admin/accounts?offset=0"' in second.text
        assert "offset=100" not in second.text
        assert sorted(shown(first) + shown(second)) == sorted(emails)
        # Nonsense offsets show the first page rather than an error.
        assert shown(admin.get("/admin/accounts?offset=-3")) == shown(first)


# -- audit log -------------------------------------------------------------------------


def test_the_audit_log_filters_by_account_and_kind(live: LiveServer) -> None:
    target = live.register()
    target_id = user_id(live, target)
    with signed_in(live, target):
        pass  # a login_succeeded event of the target
    with signed_in(live, make_admin(live)) as admin:
        submit(admin, "/admin/accounts", f"/admin/accounts/{target_id}/lock")
        by_email = admin.get("/admin/events", params={"user": target})
        assert by_email.status_code == 200
        assert "login succeeded" in by_email.text
        assert "account locked" in by_email.text
        assert rows(by_email, "When") >= 2
        by_id = admin.get("/admin/events", params={"user": target_id, "kind": "account_locked"})
        assert rows(by_id, "When") == 1
        assert '<option value="account_locked" selected>' in by_id.text
        assert 'href="/admin/events"' in by_id.text  # clear the filters
        assert "<time datetime=" in by_id.text
        unknown = admin.get("/admin/events", params={"user": "nobody@example.com"})
        assert unknown.status_code == 200
        assert rows(unknown, "When") == 0
        assert 'role="status"' in unknown.text


@pytest.mark.parametrize(
    "params",
    [{"before": "abc"}, {"before": "0"}, {"kind": "no_such_kind"}, {"user": "x" * 300}],
    ids=["before-text", "before-zero", "unknown-kind", "long-user"],
)
def test_the_audit_log_refuses_bad_filters(live: LiveServer, params: dict[str, str]) -> None:
    with signed_in(live, make_admin(live)) as admin:
        answer = admin.get("/admin/events", params=params)
    assert answer.status_code == 400
    assert 'role="alert"' in answer.text
    assert_well_formed_page(answer)


def test_the_audit_log_pages_by_sequence(live: LiveServer) -> None:
    """Fifty events a page, newest first; "Older events" goes on before the last one
    shown and keeps the filters."""
    target = live.register()
    target_id = user_id(live, target)

    async def record(runtime: Runtime) -> list[int]:
        events = [
            await runtime.authority.audit.record("logout", user_id=target_id, mode="session")
            for _ in range(60)
        ]
        return [e.seq for e in events]

    seqs = live.call(record(live.runtime))
    with signed_in(live, make_admin(live)) as admin:
        first = admin.get("/admin/events", params={"user": target_id, "kind": "logout"})
        assert rows(first, "When") == 50
        assert f"#{seqs[-1]}<" in first.text
        older = re.search(r'href="(/admin/events\?before=[^"]+)"[^>]*>Older events', first.text)
        assert older
        link = older.group(1).replace("&amp;", "&")
        assert f"before={seqs[10]}" in link
        assert "kind=logout" in link
        assert f"user={target_id}" in link
        second = admin.get(link)
        assert rows(second, "When") == 10
        assert f"#{seqs[0]}<" in second.text
        assert "Older events" not in second.text
        assert "Newest events" in second.text


def test_admin_pages_escape_what_users_control(fresh_live: LiveServer) -> None:
    """User agents and typed filters are text, never markup, on the admin pages (B3)."""
    live = fresh_live
    hostile = "<script>alert(1)</script>"
    with signed_in(live, live.register(), hostile), signed_in(live, make_admin(live)) as admin:
        live_page = admin.get("/admin")
        events = admin.get("/admin/events", params={"user": f"{hostile}@example.com"})
    for page in (live_page, events):
        assert "<script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_forms_keep_working_after_the_session_is_renewed(live: LiveServer) -> None:
    """An admin changing their own roles continues under a new session id (S3); the next
    page's forms are bound to the new id and work."""
    email = make_admin(live)
    target = live.register()
    target_id = user_id(live, target)
    with signed_in(live, email) as admin:
        before = admin.cookies[COOKIE]
        saved = submit(
            admin,
            "/admin/accounts",
            f"/admin/accounts/{user_id(live, email)}/roles",
            roles="user admin auditor",
        )
        assert saved.status_code == 303
        assert roles(live, email) == ("user", "admin", "auditor")
        locked = submit(admin, "/admin/accounts", f"/admin/accounts/{target_id}/lock")
        assert locked.status_code == 303
        assert admin.cookies[COOKIE] != before
    assert not logs_in(live, target)
