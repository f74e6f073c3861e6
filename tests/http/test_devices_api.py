"""A user's devices over a real socket: listing their sessions and token families, ending
one, ending all the others, and the CSRF proof a cookie needs to do so (S8, T9, B1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer
from twofold.jose.b64 import b64url_decode

COOKIE = "twofold_session"
DEVICE_FIELDS = {
    "id",
    "kind",
    "created_at",
    "last_seen_at",
    "expires_at",
    "client_address",
    "user_agent",
    "current",
}


def http(live: LiveServer, **kwargs: Any) -> httpx.Client:
    """A client for the plain-HTTP loopback server (verify=False: no TLS context to build)."""
    return live.client(verify=False, **kwargs)


@contextmanager
def browser(live: LiveServer, email: str, user_agent: str) -> Iterator[httpx.Client]:
    """A logged-in browser-like client: session cookie, same Origin, CSRF header set."""
    with http(live, headers={"Origin": live.url, "User-Agent": user_agent}) as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
        )
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        yield client


def token_login(live: LiveServer, email: str, user_agent: str = "Api-Client") -> dict[str, Any]:
    with http(live, headers={"User-Agent": user_agent}) as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"}
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_bearer(live: LiveServer, method: str, path: str, token: str) -> httpx.Response:
    with http(live) as client:
        return client.request(method, path, headers=bearer(token))


def refresh(live: LiveServer, refresh_token: str) -> httpx.Response:
    with http(live) as client:
        return client.post("/auth/refresh", json={"refresh_token": refresh_token})


def family_id(access_token: str) -> str:
    sid: str = json.loads(b64url_decode(access_token.split(".")[1]))["sid"]
    return "f_" + sid


def devices(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["sessions"]
    return found


def by_agent(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["user_agent"]: d for d in found}


def assert_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code


def test_each_side_sees_all_devices_and_itself_as_current(live: LiveServer) -> None:
    """Two sessions and one token family: every caller sees the same three devices and
    exactly one `current`, its own; no handle is a credential."""
    email = live.register()
    pair = token_login(live, email, user_agent="Client-C")
    with browser(live, email, "Client-A") as a, browser(live, email, "Client-B") as b:
        seen = {
            "Client-A": devices(a.get("/auth/sessions")),
            "Client-B": devices(b.get("/auth/sessions")),
            "Client-C": devices(as_bearer(live, "GET", "/auth/sessions", pair["access_token"])),
        }
        credentials = {a.cookies[COOKIE], b.cookies[COOKIE], pair["refresh_token"]}
    ids = {d["id"] for d in seen["Client-A"]}
    assert len(ids) == 3
    for caller, found in seen.items():
        assert len(found) == 3
        assert {d["id"] for d in found} == ids
        assert all(set(d) == DEVICE_FIELDS for d in found)
        assert [d["user_agent"] for d in found if d["current"]] == [caller]
        kinds = {d["user_agent"]: d["kind"] for d in found}
        assert kinds == {"Client-A": "session", "Client-B": "session", "Client-C": "token_family"}
        assert {d["client_address"] for d in found} == {"127.0.0.1"}
    assert by_agent(seen["Client-A"])["Client-C"]["id"] == family_id(pair["access_token"])
    for credential in credentials:
        assert not any(credential in device_id for device_id in ids)


def test_ending_another_session_logs_that_client_out(live: LiveServer) -> None:
    """DELETE /auth/sessions/{id} of the other session: its next request is 401 and the
    caller carries on (S8)."""
    email = live.register()
    with browser(live, email, "Client-A") as a, browser(live, email, "Client-B") as b:
        target = by_agent(devices(a.get("/auth/sessions")))["Client-B"]["id"]
        ended = a.delete(f"/auth/sessions/{target}")
        assert ended.status_code == 204
        assert "set-cookie" not in ended.headers  # the caller's own cookie is untouched
        assert_error(b.get("/auth/me"), 401, "unauthenticated")
        assert a.get("/auth/me").status_code == 200
        assert [d["user_agent"] for d in devices(a.get("/auth/sessions"))] == ["Client-A"]
        assert_error(a.delete(f"/auth/sessions/{target}"), 404, "not_found")


def test_ending_a_family_refuses_its_access_and_refresh_tokens(live: LiveServer) -> None:
    """Ending a token family refuses its unexpired access token at once and its refresh
    token (T9)."""
    email = live.register()
    pair = token_login(live, email)
    with browser(live, email, "Client-A") as a:
        assert a.delete(f"/auth/sessions/{family_id(pair['access_token'])}").status_code == 204
    assert_error(as_bearer(live, "GET", "/auth/me", pair["access_token"]), 401, "invalid_token")
    assert_error(refresh(live, pair["refresh_token"]), 401, "invalid_grant")


def test_a_jwt_caller_can_end_a_session_and_its_own_family(live: LiveServer) -> None:
    """A Bearer caller ends a session of theirs, and then its own family: both die."""
    email = live.register()
    pair = token_login(live, email)
    token = pair["access_token"]
    with browser(live, email, "Client-A") as a:
        session = by_agent(devices(as_bearer(live, "GET", "/auth/sessions", token)))["Client-A"]
        assert (
            as_bearer(live, "DELETE", f"/auth/sessions/{session['id']}", token).status_code == 204
        )
        assert_error(a.get("/auth/me"), 401, "unauthenticated")
    own = as_bearer(live, "DELETE", f"/auth/sessions/{family_id(token)}", token)
    assert own.status_code == 204
    assert_error(as_bearer(live, "GET", "/auth/me", token), 401, "invalid_token")
    assert_error(refresh(live, pair["refresh_token"]), 401, "invalid_grant")


def test_ending_the_current_session_clears_its_cookie(live: LiveServer) -> None:
    """Ending one's own current session answers a cleared cookie; the old id is 401 (S7)."""
    email = live.register()
    with browser(live, email, "Client-A") as a:
        old = a.cookies[COOKIE]
        own = by_agent(devices(a.get("/auth/sessions")))["Client-A"]
        assert own["current"] is True
        ended = a.delete(f"/auth/sessions/{own['id']}")
        assert ended.status_code == 204
        assert f"{COOKIE}=" in ended.headers["set-cookie"]
        assert "max-age=0" in ended.headers["set-cookie"].lower()
    with http(live, cookies={COOKIE: old}) as replay:
        assert_error(replay.get("/auth/me"), 401, "unauthenticated")


def test_another_users_devices_are_404(live: LiveServer) -> None:
    """A device id of another user is 404 for session and Bearer callers, and that device
    lives on."""
    victim = live.register()
    victim_pair = token_login(live, victim)
    attacker = live.register()
    attacker_token = token_login(live, attacker)["access_token"]
    with browser(live, victim, "Victim") as v, browser(live, attacker, "Attacker") as a:
        targets = [d["id"] for d in devices(v.get("/auth/sessions"))]
        assert len(targets) == 2
        for target in targets:
            assert_error(a.delete(f"/auth/sessions/{target}"), 404, "not_found")
            answer = as_bearer(live, "DELETE", f"/auth/sessions/{target}", attacker_token)
            assert_error(answer, 404, "not_found")
        assert v.get("/auth/me").status_code == 200
    assert as_bearer(live, "GET", "/auth/me", victim_pair["access_token"]).status_code == 200
    assert refresh(live, victim_pair["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "device_id",
    [
        pytest.param("garbage", id="no-prefix"),
        pytest.param("s_" + "!" * 43, id="session-not-base64"),
        pytest.param("f_" + "x" * 100, id="family-too-long"),
        pytest.param("f_%00", id="family-nul"),
    ],
)
def test_a_malformed_device_id_is_404(live: LiveServer, device_id: str) -> None:
    """Malformed device ids are 404 `not_found`, never a 500."""
    token = token_login(live, live.register())["access_token"]
    assert_error(as_bearer(live, "DELETE", f"/auth/sessions/{device_id}", token), 404, "not_found")


def test_ending_all_others_from_a_session_keeps_it(live: LiveServer) -> None:
    """DELETE /auth/sessions from a session ends the other session and the family (its
    access token too) and keeps the caller's session (S8, T9)."""
    email = live.register()
    pair = token_login(live, email)
    with browser(live, email, "Client-A") as a, browser(live, email, "Client-B") as b:
        answer = a.delete("/auth/sessions")
        assert answer.status_code == 200
        assert answer.json() == {"ended": 2}
        assert a.get("/auth/me").status_code == 200
        assert_error(b.get("/auth/me"), 401, "unauthenticated")
        left = devices(a.get("/auth/sessions"))
    assert [(d["user_agent"], d["current"]) for d in left] == [("Client-A", True)]
    assert_error(as_bearer(live, "GET", "/auth/me", pair["access_token"]), 401, "invalid_token")
    assert_error(refresh(live, pair["refresh_token"]), 401, "invalid_grant")


def test_ending_all_others_from_a_jwt_keeps_its_family(live: LiveServer) -> None:
    """DELETE /auth/sessions with a Bearer token ends every session and the other family
    and keeps the caller's family: its access and refresh tokens still work."""
    email = live.register()
    mine = token_login(live, email, user_agent="Client-C")
    other = token_login(live, email, user_agent="Client-D")
    with browser(live, email, "Client-A") as a, browser(live, email, "Client-B") as b:
        answer = as_bearer(live, "DELETE", "/auth/sessions", mine["access_token"])
        assert answer.status_code == 200
        assert answer.json() == {"ended": 3}
        assert_error(a.get("/auth/me"), 401, "unauthenticated")
        assert_error(b.get("/auth/me"), 401, "unauthenticated")
    assert as_bearer(live, "GET", "/auth/me", mine["access_token"]).status_code == 200
    assert_error(as_bearer(live, "GET", "/auth/me", other["access_token"]), 401, "invalid_token")
    assert_error(refresh(live, other["refresh_token"]), 401, "invalid_grant")
    left = devices(as_bearer(live, "GET", "/auth/sessions", mine["access_token"]))
    assert [(d["user_agent"], d["current"]) for d in left] == [("Client-C", True)]
    assert refresh(live, mine["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/auth/sessions/{target}", {}, id="one-no-token"),
        pytest.param("/auth/sessions", {}, id="all-no-token"),
        pytest.param("/auth/sessions/{target}", {"X-CSRF-Token": "x" * 43}, id="one-bad-token"),
        pytest.param(
            "/auth/sessions/{target}",
            {"Origin": "https://evil.example"},
            id="one-foreign-origin",
        ),
        pytest.param("/auth/sessions", {"Origin": "https://evil.example"}, id="all-foreign-origin"),
    ],
)
def test_cookie_deletes_need_csrf_proof(
    live: LiveServer, path: str, headers: dict[str, str]
) -> None:
    """A cookie-authenticated DELETE without the CSRF token, with a wrong one, or from
    another origin is 403 `csrf_failed` and ends nothing (B1)."""
    email = live.register()
    with browser(live, email, "Client-A") as a, browser(live, email, "Client-B") as b:
        target = by_agent(devices(a.get("/auth/sessions")))["Client-B"]["id"]
        token = a.headers["X-CSRF-Token"]
        if "X-CSRF-Token" not in headers and "Origin" not in headers:
            del a.headers["X-CSRF-Token"]
        answer = a.delete(path.format(target=target), headers=headers)
        assert_error(answer, 403, "csrf_failed")
        assert b.get("/auth/me").status_code == 200
        a.headers["X-CSRF-Token"] = token
        assert len(devices(a.get("/auth/sessions"))) == 2
