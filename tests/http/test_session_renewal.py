"""A new session id at a privilege change (SECURITY.md S3): after an admin changes a
user's roles, the user's next request continues under a new id and the old one dies."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import PASSWORD, LiveServer, make_admin
from twofold.authority import RENEWAL_GRACE

COOKIE = "twofold_session"


def admin_token(live: LiveServer) -> str:
    return live.token_pair(make_admin(live))["access_token"]


def browser(live: LiveServer) -> tuple[httpx.Client, str, str]:
    """A logged-in client, its user id and its CSRF token."""
    client = live.client()
    login = client.post("/auth/login", json={"email": live.register(), "password": PASSWORD})
    assert login.status_code == 200, login.text
    return client, login.json()["user"]["id"], login.json()["csrf_token"]


def set_roles(live: LiveServer, token: str, user_id: str, roles: list[str]) -> None:
    with live.client() as client:
        answer = client.put(
            f"/admin/users/{user_id}/roles",
            json={"roles": roles},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text


def test_a_role_change_renews_the_session_id(fresh_live: LiveServer) -> None:
    live = fresh_live
    admin = admin_token(live)
    client, user_id, csrf = browser(live)
    old_id = client.cookies[COOKIE]
    set_roles(live, admin, user_id, ["user", "auditor"])

    answer = client.get("/auth/me")
    assert answer.status_code == 200
    assert answer.json()["roles"] == ["user", "auditor"]
    new_id = client.cookies[COOKIE]
    assert new_id != old_id
    new_csrf = answer.headers["x-csrf-token"]
    assert new_csrf != csrf
    assert answer.json()["auth"]["csrf_token"] == new_csrf
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    assert "samesite=lax" in set_cookie

    # The old id serves requests already on their way for a moment, then dies; the new
    # one works, with the new CSRF token.
    with live.client(cookies={COOKIE: old_id}) as stale:
        assert stale.get("/auth/me").status_code == 200
        live.clock.advance(RENEWAL_GRACE)
        assert stale.get("/auth/me").status_code == 401
    again = client.get("/auth/me")
    assert again.status_code == 200
    assert "set-cookie" not in again.headers  # renewed once, not on every request
    out = client.post("/auth/logout", headers={"X-CSRF-Token": new_csrf, "Origin": live.url})
    assert out.status_code == 204
    client.close()


def test_the_same_roles_again_renew_nothing(live: LiveServer) -> None:
    admin = admin_token(live)
    client, user_id, _ = browser(live)
    old_id = client.cookies[COOKIE]
    set_roles(live, admin, user_id, ["user"])
    answer = client.get("/auth/me")
    assert answer.status_code == 200
    assert client.cookies[COOKIE] == old_id
    assert "x-csrf-token" not in answer.headers
    client.close()


def test_racing_requests_after_a_role_change_are_all_served(live: LiveServer) -> None:
    """Parallel requests from one browser right after the change: one renews the id, the
    others (read with the then-valid id) are served; none is logged out."""
    admin = admin_token(live)
    client, user_id, _ = browser(live)
    old_id = client.cookies[COOKIE]
    client.close()
    set_roles(live, admin, user_id, ["user", "auditor"])

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live.url, cookies={COOKIE: old_id}) as racing:
            return list(await asyncio.gather(*(racing.get("/auth/me") for _ in range(10))))

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [200] * 10
    renewed = [a for a in answers if COOKIE in a.cookies]
    assert len(renewed) == 1
    assert all(a.json()["roles"] == ["user", "auditor"] for a in answers)


def test_the_profile_page_renews_too(live: LiveServer) -> None:
    admin = admin_token(live)
    client, user_id, _ = browser(live)
    old_id = client.cookies[COOKIE]
    set_roles(live, admin, user_id, ["user", "auditor"])
    page = client.get("/")
    assert page.status_code == 200
    assert client.cookies[COOKIE] != old_id
    assert "auditor" in page.text
    client.close()


def test_a_renewed_id_cannot_slide_past_its_grace(fresh_live: LiveServer) -> None:
    """Even when a request in the grace would move the sliding expiry, the old id dies
    with the grace."""
    live = fresh_live
    admin = admin_token(live)
    client, user_id, _ = browser(live)
    old_id = client.cookies[COOKIE]
    live.clock.advance(live.settings.session_touch_interval - 2)
    set_roles(live, admin, user_id, ["user", "auditor"])
    assert client.get("/auth/me").status_code == 200  # renews
    live.clock.advance(3)
    with live.client(cookies={COOKIE: old_id}) as stale:
        assert stale.get("/auth/me").status_code == 200  # in the grace; would touch
        live.clock.advance(RENEWAL_GRACE)
        assert stale.get("/auth/me").status_code == 401
    assert client.get("/auth/me").status_code == 200
    client.close()


def test_logging_out_with_the_old_id_ends_the_new_one(live: LiveServer) -> None:
    """A tab that logs out with the id it held before the renewal reached it ends the
    login, not just that id."""
    admin = admin_token(live)
    client, user_id, old_csrf = browser(live)
    old_id = client.cookies[COOKIE]
    set_roles(live, admin, user_id, ["user", "auditor"])
    assert client.get("/auth/me").status_code == 200  # renews: client now holds the new id
    with live.client(cookies={COOKIE: old_id}) as other_tab:
        out = other_tab.post("/auth/logout", headers={"X-CSRF-Token": old_csrf, "Origin": live.url})
        assert out.status_code == 204
    assert client.get("/auth/me").status_code == 401
    client.close()


def test_a_renewed_id_is_not_renewed_again(live: LiveServer) -> None:
    """A second role change within the grace does not turn the old id into a second live
    session: it is served, not renewed, and the login has one live session."""
    admin = admin_token(live)
    client, user_id, _ = browser(live)
    old_id = client.cookies[COOKIE]
    set_roles(live, admin, user_id, ["user", "auditor"])
    assert client.get("/auth/me").status_code == 200
    set_roles(live, admin, user_id, ["user"])
    with live.client(cookies={COOKIE: old_id}) as stale:
        answer = stale.get("/auth/me")
        assert answer.status_code == 200
        assert COOKIE not in answer.cookies
    with live.client() as api:
        sessions = api.get(
            "/admin/sessions", params={"limit": 500}, headers={"Authorization": f"Bearer {admin}"}
        ).json()["sessions"]
    mine = [s for s in sessions if s["user_id"] == user_id]
    # The new id (renewing again now) and the old one in its last seconds; nothing more.
    assert len(mine) <= 2
    client.close()
