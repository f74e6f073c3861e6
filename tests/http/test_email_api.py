"""Changing the e-mail address (POST /auth/email): the current password is asked for (P4),
a session continues under a new id (S3), access tokens naming the old address are cut."""

from __future__ import annotations

from tests.conftest import PASSWORD, LiveServer, bearer


def test_session_mode_rotates_the_session_and_logs_in_under_the_new_address(
    live: LiveServer,
) -> None:
    email, new = live.register(), live.new_email()
    with live.client() as client:
        login = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
        )
        old_cookie = client.cookies["twofold_session"]
        answer = client.post(
            "/auth/email",
            json={"current_password": PASSWORD, "email": new.upper()},
            headers={"X-CSRF-Token": login.json()["csrf_token"]},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["email"] == new
        assert client.cookies["twofold_session"] != old_cookie
        me = client.get("/auth/me")
        assert me.json()["email"] == new
    with live.client(cookies={"twofold_session": old_cookie}) as stale:
        assert stale.get("/auth/me").status_code == 401
    with live.client() as client:
        for address, status in ((email, 401), (new, 200)):
            again = client.post(
                "/auth/login", json={"email": address, "password": PASSWORD, "mode": "jwt"}
            )
            assert again.status_code == status


def test_jwt_mode_cuts_tokens_that_name_the_old_address(live: LiveServer) -> None:
    pair = live.token_pair()
    new = live.new_email()
    with live.client() as client:
        answer = client.post(
            "/auth/email",
            json={"current_password": PASSWORD, "email": new},
            headers=bearer(pair["access_token"]),
        )
        assert answer.status_code == 200
        assert "csrf_token" not in answer.json()
        assert client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 401
        live.clock.advance(1)
        refreshed = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 200
        me = client.get("/auth/me", headers=bearer(refreshed.json()["access_token"]))
        assert me.json()["email"] == new


def test_the_wrong_password_changes_nothing(live: LiveServer) -> None:
    pair = live.token_pair()
    with live.client() as client:
        answer = client.post(
            "/auth/email",
            json={"current_password": "not my password!", "email": live.new_email()},
            headers=bearer(pair["access_token"]),
        )
        assert answer.status_code == 403
        assert answer.json()["error"] == "reauthentication_failed"
        assert client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 200


def test_another_accounts_address_is_a_conflict(live: LiveServer) -> None:
    taken = live.register()
    pair = live.token_pair()
    with live.client() as client:
        answer = client.post(
            "/auth/email",
            json={"current_password": PASSWORD, "email": taken},
            headers=bearer(pair["access_token"]),
        )
        assert answer.status_code == 409
        assert taken not in answer.text
        bad = client.post(
            "/auth/email",
            json={"current_password": PASSWORD, "email": "not an address"},
            headers=bearer(pair["access_token"]),
        )
        assert bad.status_code in (400, 422)
    with live.client() as client:
        login = client.post(
            "/auth/login", json={"email": taken, "password": PASSWORD, "mode": "jwt"}
        )
        assert login.status_code == 200


def test_a_cookie_caller_needs_csrf_proof(live: LiveServer) -> None:
    email = live.register()
    with live.client() as client:
        client.post("/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"})
        answer = client.post(
            "/auth/email", json={"current_password": PASSWORD, "email": live.new_email()}
        )
        assert answer.status_code == 403
        assert client.get("/auth/me").json()["email"] == email
