"""Admins end one user's sessions, or everyone's (SECURITY.md S8), without locking."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, LiveServer, bearer, make_admin


def login_session(live: LiveServer, email: str) -> httpx.Client:
    client = live.client()
    answer = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return client


def user_id(live: LiveServer, token: str) -> str:
    with live.client() as client:
        found: str = client.get("/auth/me", headers=bearer(token)).json()["id"]
    return found


def test_an_admin_ends_one_users_sessions_and_tokens(fresh_live: LiveServer) -> None:
    live = fresh_live
    admin = live.token_pair(make_admin(live))["access_token"]
    victim, bystander = live.register(), live.register()
    victim_pair = live.token_pair(victim)
    victim_browser = login_session(live, victim)
    bystander_pair = live.token_pair(bystander)
    target = user_id(live, victim_pair["access_token"])

    with live.client() as client:
        answer = client.delete(f"/admin/users/{target}/sessions", headers=bearer(admin))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ended": 2}
        assert (
            client.get("/auth/me", headers=bearer(victim_pair["access_token"])).status_code == 401
        )
        refreshed = client.post(
            "/auth/refresh", json={"refresh_token": victim_pair["refresh_token"]}
        )
        assert refreshed.status_code == 401
        assert (
            client.get("/auth/me", headers=bearer(bystander_pair["access_token"])).status_code
            == 200
        )
        # Not a lock: the victim logs in again.
        assert live.token_pair(victim)["access_token"]
    assert victim_browser.get("/auth/me").status_code == 401
    victim_browser.close()


def test_an_admin_logs_everyone_out(fresh_live: LiveServer) -> None:
    live = fresh_live
    admin_email = make_admin(live)
    admin = live.token_pair(admin_email)
    someone = live.token_pair(live.register())
    browser = login_session(live, live.register())

    with live.client() as client:
        answer = client.delete("/admin/sessions", headers=bearer(admin["access_token"]))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ended": 3}
        for pair in (admin, someone):
            assert client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 401
            assert (
                client.post(
                    "/auth/refresh", json={"refresh_token": pair["refresh_token"]}
                ).status_code
                == 401
            )
        # A token issued after the global logout works.
        fresh = live.token_pair(admin_email)["access_token"]
        assert client.get("/auth/me", headers=bearer(fresh)).status_code == 200
        events = client.get("/admin/audit?kind=session_revoked", headers=bearer(fresh)).json()
        assert events["events"][0]["detail"] == {"device": "all", "ended": 3}
    assert browser.get("/auth/me").status_code == 401
    browser.close()


def test_ending_an_unknown_users_sessions_is_404(live: LiveServer) -> None:
    admin = live.token_pair(make_admin(live))["access_token"]
    with live.client() as client:
        answer = client.delete("/admin/users/no-such-user/sessions", headers=bearer(admin))
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


def test_a_non_admin_cannot_log_everyone_out(live: LiveServer) -> None:
    token = live.token_pair(live.register())["access_token"]
    with live.client() as client:
        answer = client.delete("/admin/sessions", headers=bearer(token))
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"
