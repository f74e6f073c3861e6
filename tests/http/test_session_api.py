"""Session mode end to end over a real socket: cookies, rotation, CSRF, expiry, logout."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from http.cookies import SimpleCookie

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer

COOKIE = "twofold_session"


def login(live: LiveServer, client: httpx.Client, email: str) -> dict[str, object]:
    answer = client.post(
        "/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def set_cookie(answer: httpx.Response) -> SimpleCookie:
    jar = SimpleCookie()
    for header in answer.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


def test_session_login_answers_contract_and_hardened_cookie(live: LiveServer) -> None:
    """Login answers user, csrf_token, expires_at and a HttpOnly, SameSite=Lax, Path=/ cookie
    with no Domain (S5)."""
    email = live.register()
    with live.client() as client:
        answer = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"user", "csrf_token", "expires_at"}
    assert body["user"]["email"] == email
    assert body["user"]["roles"] == ["user"]
    raw = answer.headers["set-cookie"]
    morsel = set_cookie(answer)[COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "lax"
    assert morsel["path"] == "/"
    assert morsel["domain"] == ""
    assert "secure" not in raw.lower()  # plain HTTP on loopback: a Secure cookie would be lost
    assert len(raw) < 4096
    assert len(morsel.value) == 43  # 32 random bytes, base64url


def test_me_with_session_reports_session_mode(live: LiveServer) -> None:
    """/auth/me answers id, email, roles and auth.mode == session, marked no-store (S9)."""
    email = live.register()
    with live.client() as client:
        body = login(live, client, email)
        me = client.get("/auth/me")
    assert me.status_code == 200
    assert me.headers["cache-control"] == "no-store"
    data = me.json()
    assert data["email"] == email
    assert data["auth"]["mode"] == "session"
    assert data["auth"]["csrf_token"] == body["csrf_token"]


def test_logout_deletes_the_session_and_clears_the_cookie(live: LiveServer) -> None:
    """After logout the old cookie gets 401 and the answer cleared the cookie (S7)."""
    email = live.register()
    with live.client() as client:
        body = login(live, client, email)
        old = client.cookies[COOKIE]
        answer = client.post("/auth/logout", headers={"X-CSRF-Token": str(body["csrf_token"])})
        assert answer.status_code == 204
        cleared = set_cookie(answer)[COOKIE]
        assert cleared.value == ""
        assert cleared["max-age"] == "0"
    with live.client(cookies={COOKIE: old}) as replay:
        again = replay.get("/auth/me")
    assert again.status_code == 401
    assert again.json()["error"] == "unauthenticated"


def test_login_rotates_the_session_id(live: LiveServer) -> None:
    """Logging in with a session cookie already set issues a new id and kills the old (S3)."""
    email = live.register()
    with live.client() as client:
        login(live, client, email)
        first = client.cookies[COOKIE]
        login(live, client, email)
        second = client.cookies[COOKIE]
    assert first != second
    with live.client(cookies={COOKIE: first}) as replay:
        assert replay.get("/auth/me").status_code == 401


def test_a_planted_session_id_is_never_adopted(live: LiveServer) -> None:
    """An id the server never issued gets 401, and login does not make it valid (S2, S3)."""
    email = live.register()
    planted = secrets.token_urlsafe(32)
    with live.client() as client:
        client.cookies.set(COOKIE, planted, domain="127.0.0.1")
        assert client.get("/auth/me").status_code == 401
        client.cookies.set(COOKIE, planted, domain="127.0.0.1")
        login(live, client, email)
        assert client.cookies[COOKIE] != planted
    with live.client(cookies={COOKIE: planted}) as replay:
        assert replay.get("/auth/me").status_code == 401


@pytest.mark.parametrize(
    "where",
    [
        pytest.param({"params": {"twofold_session": "x"}}, id="query"),
        pytest.param({"headers": {"X-Session-Id": "x"}}, id="header"),
    ],
)
def test_the_session_id_is_read_from_the_cookie_only(live: LiveServer, where: dict) -> None:
    """A valid id sent in the URL or another header authenticates nothing (S4)."""
    email = live.register()
    with live.client() as client:
        login(live, client, email)
        session_id = client.cookies[COOKIE]
    kwargs = {k: {name: session_id for name in v} for k, v in where.items()}
    with live.client() as stranger:
        assert stranger.get("/auth/me", **kwargs).status_code == 401


def test_the_store_holds_only_the_hash_of_the_id(live: LiveServer) -> None:
    """The SQLite file holds SHA-256 of the id, never the id itself (S1)."""
    email = live.register()
    with live.client() as client:
        login(live, client, email)
        session_id = client.cookies[COOKIE]
    db = live.settings.data_dir / "twofold.db"
    conn = sqlite3.connect(db)
    try:
        hashes = {row[0] for row in conn.execute("SELECT id_hash FROM sessions")}
    finally:
        conn.close()
    assert hashlib.sha256(session_id.encode()).digest() in hashes
    for path in db.parent.glob("twofold.db*"):
        assert session_id.encode() not in path.read_bytes()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({}, "missing token", id="no-token"),
        pytest.param({"X-CSRF-Token": "A" * 43}, "wrong token", id="wrong-token"),
        pytest.param({"X-CSRF-Token": ""}, "empty token", id="empty-token"),
    ],
)
def test_cookie_state_change_without_csrf_proof_is_refused(
    live: LiveServer, headers: dict[str, str], reason: str
) -> None:
    """Logout by cookie without the session's CSRF token is 403 and the session lives (B1)."""
    email = live.register()
    with live.client() as client:
        login(live, client, email)
        answer = client.post("/auth/logout", headers=headers)
        assert answer.status_code == 403, reason
        assert answer.json()["error"] == "csrf_failed"
        assert client.get("/auth/me").status_code == 200


def test_csrf_token_from_another_origin_is_refused(live: LiveServer) -> None:
    """The right token with a foreign Origin (or Referer) is still refused (B1)."""
    email = live.register()
    with live.client() as client:
        body = login(live, client, email)
        token = str(body["csrf_token"])
        for header in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Referer": "http://evil.example/page"},
        ):
            answer = client.post("/auth/logout", headers={"X-CSRF-Token": token, **header})
            assert answer.status_code == 403, header
        assert client.get("/auth/me").status_code == 200


def test_csrf_token_of_another_session_is_refused(live: LiveServer) -> None:
    """A CSRF token is bound to its own session (B1)."""
    email = live.register()
    with live.client() as mine, live.client() as theirs:
        login(live, mine, email)
        other = login(live, theirs, email)
        answer = mine.post("/auth/logout", headers={"X-CSRF-Token": str(other["csrf_token"])})
    assert answer.status_code == 403


def test_idle_timeout_is_enforced_by_the_server(fresh_live: LiveServer) -> None:
    """A session unused for longer than the idle timeout is refused (S6)."""
    live = fresh_live
    email = live.register()
    with live.client() as client:
        login(live, client, email)
        live.clock.advance(live.settings.session_idle_timeout - 5)
        assert client.get("/auth/me").status_code == 200  # activity slides the expiry
        live.clock.advance(live.settings.session_idle_timeout - 5)
        assert client.get("/auth/me").status_code == 200
        live.clock.advance(live.settings.session_idle_timeout + 1)
        assert client.get("/auth/me").status_code == 401


def test_absolute_lifetime_holds_despite_activity(fresh_live: LiveServer) -> None:
    """Constant use does not stretch a session past its absolute lifetime (S6)."""
    live = fresh_live
    email = live.register()
    step = live.settings.session_idle_timeout // 2
    with live.client() as client:
        login(live, client, email)
        elapsed = 0
        while elapsed + step < live.settings.session_absolute_lifetime:
            live.clock.advance(step)
            elapsed += step
            assert client.get("/auth/me").status_code == 200
        live.clock.advance(step)
        assert client.get("/auth/me").status_code == 401


def test_sliding_expiry_writes_at_most_once_per_interval(fresh_live: LiveServer) -> None:
    """Requests within the touch interval write nothing; the first after it writes once."""
    live = fresh_live
    email = live.register()
    db = live.settings.data_dir / "twofold.db"

    def last_seen() -> float:
        conn = sqlite3.connect(db)
        try:
            return float(conn.execute("SELECT last_seen_at FROM sessions").fetchone()[0])
        finally:
            conn.close()

    with live.client() as client:
        login(live, client, email)
        created = last_seen()
        for _ in range(5):
            live.clock.advance(live.settings.session_touch_interval / 10)
            assert client.get("/auth/me").status_code == 200
        assert last_seen() == created
        live.clock.advance(live.settings.session_touch_interval)
        assert client.get("/auth/me").status_code == 200
        assert last_seen() > created


def test_password_change_ends_other_sessions_and_rotates_this_one(live: LiveServer) -> None:
    """Changing the password asks for the current one, kills the other sessions and moves
    this one to a new id (S3, S7, P4)."""
    email = live.register()
    new_password = "a different long passphrase"
    with live.client() as mine, live.client() as other:
        body = login(live, mine, email)
        login(live, other, email)
        before = mine.cookies[COOKIE]
        wrong = mine.post(
            "/auth/password",
            json={"current_password": "not it at all", "new_password": new_password},
            headers={"X-CSRF-Token": str(body["csrf_token"])},
        )
        assert wrong.status_code == 403
        assert wrong.json()["error"] == "reauthentication_failed"
        assert mine.get("/auth/me").status_code == 200
        answer = mine.post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers={"X-CSRF-Token": str(body["csrf_token"])},
        )
        assert answer.status_code == 200, answer.text
        assert mine.cookies[COOKIE] != before
        assert mine.get("/auth/me").status_code == 200
        assert other.get("/auth/me").status_code == 401
    with live.client(cookies={COOKIE: before}) as replay:
        assert replay.get("/auth/me").status_code == 401
    with live.client() as client:
        old = client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert old.status_code == 401
        new = client.post("/auth/login", json={"email": email, "password": new_password})
        assert new.status_code == 200
