"""Protections found by review: each test fails if its protection is taken away."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory
from twofold.errors import StoreUnavailable

COOKIE = "twofold_session"


def session_login(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/auth/login", json={"email": email, "password": password})


def test_a_locked_account_loses_its_sessions_at_once(fresh_live: LiveServer) -> None:
    """A lock is read on every session request: the next request is refused (S7)."""
    live = fresh_live
    email = live.register()
    with live.client() as client:
        assert session_login(client, email).status_code == 200
        conn = sqlite3.connect(live.settings.data_dir / "twofold.db")
        with conn:
            conn.execute("UPDATE users SET locked = 1 WHERE email = ?", (email,))
        conn.close()
        assert client.get("/auth/me").status_code == 401
        assert session_login(client, email).status_code == 401


def test_a_refused_session_cookie_is_cleared(live: LiveServer) -> None:
    """A 401 for a dead session cookie also tells the browser to drop it (S7)."""
    with live.client(cookies={COOKIE: "A" * 43}) as client:
        answer = client.get("/auth/me")
    assert answer.status_code == 401
    jar = SimpleCookie()
    jar.load(answer.headers["set-cookie"])
    assert jar[COOKIE].value == ""
    assert jar[COOKIE]["max-age"] == "0"


def test_bearer_logout_leaves_the_session_cookie_alone(live: LiveServer) -> None:
    """Logging out a Bearer caller does not pretend to end a session it did not use."""
    email = live.register()
    with live.client() as client:
        session_login(client, email)
        token = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"}
        ).json()["access_token"]
        answer = client.post("/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 204
        assert "twofold_session" not in answer.headers.get("set-cookie", "")
        assert client.get("/auth/me").status_code == 200


@pytest.mark.parametrize("path", ["/auth/login", "/auth/register"])
def test_json_login_and_register_refuse_foreign_origins(live: LiveServer, path: str) -> None:
    """Login CSRF: a browser on another origin cannot log a victim in or register (B1)."""
    email = live.register() if path == "/auth/login" else live.new_email()
    with live.client() as client:
        answer = client.post(
            path,
            json={"email": email, "password": PASSWORD},
            headers={"Origin": "http://evil.example"},
        )
    assert answer.status_code == 403
    assert answer.json()["error"] == "csrf_failed"
    assert "set-cookie" not in answer.headers


def test_registering_a_taken_address_takes_as_long(live: LiveServer) -> None:
    """A taken address costs the same Argon2 hash as a new one, so timing does not tell (P2)."""
    taken = live.register()

    def timed(email: str) -> float:
        with live.client() as client:
            started = time.perf_counter()
            client.post("/auth/register", json={"email": email, "password": PASSWORD})
            return time.perf_counter() - started

    # Interleaved, so both see the same load; the fastest of each is its own cost (the
    # machine is shared: a slow sample says more about neighbours than about the code).
    news, agains = [], []
    for _ in range(7):
        news.append(timed(live.new_email()))
        agains.append(timed(taken))
    assert min(agains) > 0.5 * min(news), (agains, news)


def test_store_outage_answers_503_without_driver_text(
    fresh_live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that fails gives 503 with Retry-After and a generic detail (O3), and the
    service answers again when the store does."""
    live = fresh_live
    email = live.register()
    with live.client() as client:
        session_login(client, email)

        async def broken(id_hash: bytes) -> None:
            raise StoreUnavailable("The SQLite store is unavailable (disk I/O error)")

        store = live.runtime.store
        with monkeypatch.context() as patch:
            patch.setattr(store, "get_session_and_user", broken)
            answer = client.get("/auth/me")
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "5"
            assert answer.json()["error"] == "store_unavailable"
            assert "disk" not in answer.text
            assert "sqlite" not in answer.text.lower()
        assert client.get("/auth/me").status_code == 200


def test_unexpected_errors_keep_the_security_headers(
    fresh_live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a 500 is JSON, says nothing of the cause, and carries no-store and nosniff."""
    live = fresh_live

    def explode(token: str) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(live.runtime.authority, "token_principal", explode)
    with live.client() as client:
        answer = client.get("/auth/me", headers={"Authorization": "Bearer x.y.z"})
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal_error"
    assert "secret internals" not in answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_password_hashing_queue_is_bounded(make_server: ServerFactory) -> None:
    """A flood of logins past the hash queue gets 503 busy with Retry-After instead of
    queueing without end."""
    live = make_server(hash_queue=1)
    results: list[int] = []

    def login() -> None:
        # One account each: attempts for one account take turns (the login throttle).
        with live.client() as client:
            answer = session_login(client, live.new_email(), "wrong " + PASSWORD)
            results.append(answer.status_code)

    threads = [threading.Thread(target=login) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 503 in results
    assert 401 in results
    assert set(results) <= {401, 503}


def test_a_slow_body_is_cut_off_with_408(make_server: ServerFactory) -> None:
    """A client that drips its body is answered 408 after body_timeout, not waited for."""
    live = make_server(body_timeout=0.5)
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 4


@pytest.fixture
def https_server(make_server: ServerFactory) -> Iterator[LiveServer]:
    return make_server(public_url="https://auth.example.test")


def test_over_https_the_cookie_is_secure_with_host_prefix(https_server: LiveServer) -> None:
    """With an https public URL: __Host- prefix, Secure, and HSTS (S5, B3)."""
    live = https_server
    email = live.register()
    with live.client() as client:
        answer = session_login(client, email)
    assert answer.status_code == 200
    jar = SimpleCookie()
    for cookie in answer.headers.get_list("set-cookie"):
        jar.load(cookie)
    morsel = jar["__Host-twofold_session"]
    assert jar["__Host-twofold_device"]["secure"] is True
    assert morsel["secure"] is True
    assert morsel["path"] == "/"
    assert morsel["domain"] == ""
    assert answer.headers["strict-transport-security"].startswith("max-age=")
