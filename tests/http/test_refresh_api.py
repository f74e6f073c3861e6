"""/auth/refresh end to end over real sockets: rotation, reuse detection that ends the
family and its access tokens, racing clients, the refresh cookie, and logout and password
changes in JWT mode (SECURITY.md T6, T8, T9)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory, start_server, stop_server
from twofold.clock import FrozenClock
from twofold.jose.b64 import b64url_decode
from twofold.store.records import AuditEvent

NEW_PASSWORD = "a different passphrase entirely"
REFRESH_SHAPE = re.compile(r"tfr_[A-Za-z0-9_-]{43}")
COOKIE = "twofold_refresh"

T = TypeVar("T")


# -- helpers ---------------------------------------------------------------------------


def on_server(live: LiveServer, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on the server's event loop: the store's read connection belongs to it."""
    return live.call(work)


def jwt_login(live: LiveServer, email: str, *, cookie: bool = False) -> httpx.Response:
    body: dict[str, str] = {"email": email, "password": PASSWORD, "mode": "jwt"}
    if cookie:
        body["refresh_transport"] = "cookie"
    with live.client() as client:
        answer = client.post("/auth/login", json=body)
    assert answer.status_code == 200, answer.text
    return answer


def pair(live: LiveServer, email: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = jwt_login(live, email or live.register()).json()
    return body


def refresh(live: LiveServer, token: str) -> httpx.Response:
    with live.client() as client:
        return client.post("/auth/refresh", json={"refresh_token": token})


def me(live: LiveServer, access_token: str) -> httpx.Response:
    with live.client() as client:
        return client.get("/auth/me", headers={"Authorization": f"Bearer {access_token}"})


def cookie_refresh(live: LiveServer, token: str, *, origin: str | None) -> httpx.Response:
    headers = {"Cookie": f"{COOKIE}={token}"}
    if origin is not None:
        headers["Origin"] = origin
    with live.client() as client:
        return client.post("/auth/refresh", json={}, headers=headers)


def set_cookie(answer: httpx.Response) -> str:
    (header,) = [h for h in answer.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    return header


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1].strip('"')


def attributes(header: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        found[name.lower()] = value
    return found


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWS, read without verification (the server verified it)."""
    payload: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return payload


def assert_invalid_grant(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_grant"
    assert "access_token" not in answer.text
    assert "tfr_" not in answer.text


def assert_token_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_token"


def reuse_events(live: LiveServer, user_id: str) -> list[AuditEvent]:
    audit = live.runtime.authority.audit
    return on_server(live, audit.page(kind="refresh_reuse", user_id=user_id))


async def race(live: LiveServer, token: str, count: int) -> list[httpx.Response]:
    """``count`` refreshes of one token, all sent at once on their own connections."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=live.url, timeout=15, limits=limits) as client:
        calls = [client.post("/auth/refresh", json={"refresh_token": token}) for _ in range(count)]
        return await asyncio.wait_for(asyncio.gather(*calls), timeout=20)


# -- the contract ----------------------------------------------------------------------


def test_jwt_login_answers_an_access_and_a_refresh_token(live: LiveServer) -> None:
    """mode=jwt answers access_token, token_type Bearer, expires_in and an opaque
    refresh_token; the access token's sid names the refresh family."""
    email = live.register()
    answer = jwt_login(live, email)
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == live.settings.access_token_lifetime
    assert REFRESH_SHAPE.fullmatch(body["refresh_token"])
    assert body["access_token"].count(".") == 2
    payload = claims(body["access_token"])
    assert payload["email"] == email
    assert isinstance(payload["sid"], str)
    assert payload["sid"]
    assert "set-cookie" not in answer.headers
    assert answer.headers["cache-control"] == "no-store"


def test_refresh_rotates_and_the_new_access_token_works(live: LiveServer) -> None:
    """A refresh answers a new pair of the same family; the new access token is accepted."""
    email = live.register()
    first = pair(live, email)
    answer = refresh(live, first["refresh_token"])
    assert answer.status_code == 200, answer.text
    second = answer.json()
    assert answer.headers["cache-control"] == "no-store"
    assert second["token_type"] == "Bearer"
    assert second["expires_in"] == live.settings.access_token_lifetime
    assert REFRESH_SHAPE.fullmatch(second["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    old, new = claims(first["access_token"]), claims(second["access_token"])
    assert new["sid"] == old["sid"]
    assert new["jti"] != old["jti"]
    assert new["sub"] == old["sub"]
    who = me(live, second["access_token"])
    assert who.status_code == 200, who.text
    assert who.json()["email"] == email
    assert who.json()["auth"]["mode"] == "jwt"
    # And the new refresh token rotates in turn.
    assert refresh(live, second["refresh_token"]).status_code == 200


def test_refreshed_access_token_carries_current_roles(live: LiveServer) -> None:
    """Roles are read at refresh time: a role granted since login is in the new token."""
    first = pair(live)
    user_id = claims(first["access_token"])["sub"]
    assert claims(first["access_token"])["roles"] == ["user"]
    on_server(live, live.runtime.authority.accounts.set_roles(user_id, ["user", "editor"]))
    answer = refresh(live, first["refresh_token"])
    assert answer.status_code == 200, answer.text
    assert claims(answer.json()["access_token"])["roles"] == ["user", "editor"]
    assert me(live, answer.json()["access_token"]).json()["roles"] == ["user", "editor"]


def test_duplicate_within_grace_gets_the_same_pair_of_the_family(live: LiveServer) -> None:
    """A client retrying within refresh_reuse_grace gets the same refresh token and an
    access token with the same jti; the family stays alive."""
    first = pair(live)
    one, two = refresh(live, first["refresh_token"]), refresh(live, first["refresh_token"])
    assert one.status_code == 200, one.text
    assert two.status_code == 200, two.text
    assert one.json()["refresh_token"] == two.json()["refresh_token"]
    assert claims(one.json()["access_token"])["jti"] == claims(two.json()["access_token"])["jti"]
    assert me(live, two.json()["access_token"]).status_code == 200
    assert refresh(live, two.json()["refresh_token"]).status_code == 200


# -- reuse -----------------------------------------------------------------------------


def test_replay_after_grace_revokes_the_whole_family(fresh_live: LiveServer) -> None:
    """A spent refresh token presented after the grace window: 401 invalid_grant, and the
    family's newest refresh token and newest access token are refused at once (T8, T9);
    the event is audited without the token."""
    live = fresh_live
    first = pair(live)
    user_id = claims(first["access_token"])["sub"]
    second = refresh(live, first["refresh_token"]).json()
    assert me(live, second["access_token"]).status_code == 200
    live.clock.advance(live.settings.refresh_reuse_grace + 1)

    replay = refresh(live, first["refresh_token"])
    assert_invalid_grant(replay)
    assert replay.headers["www-authenticate"].startswith("Bearer")

    assert_invalid_grant(refresh(live, second["refresh_token"]))
    assert_token_refused(me(live, second["access_token"]))
    assert_token_refused(me(live, first["access_token"]))

    (event,) = reuse_events(live, user_id)
    assert event.user_id == user_id
    assert event.detail == {"device": "f_" + claims(first["access_token"])["sid"]}
    assert event.client_address == "127.0.0.1"
    assert first["refresh_token"] not in repr(event)
    # A second login of the same user is a different family and is untouched.
    other = pair(live, claims(first["access_token"])["email"])
    assert refresh(live, other["refresh_token"]).status_code == 200


def test_replay_after_successor_was_used_is_reuse_even_within_grace(live: LiveServer) -> None:
    """t0 -> t1 -> t2, then t0 again at once: t1 is spent, so this is theft, not a race."""
    first = pair(live)
    user_id = claims(first["access_token"])["sub"]
    second = refresh(live, first["refresh_token"]).json()
    third = refresh(live, second["refresh_token"]).json()
    assert_invalid_grant(refresh(live, first["refresh_token"]))
    assert_invalid_grant(refresh(live, third["refresh_token"]))
    assert_token_refused(me(live, third["access_token"]))
    assert len(reuse_events(live, user_id)) == 1


def test_fifty_concurrent_refreshes_share_one_new_refresh_token(live: LiveServer) -> None:
    """50 simultaneous refreshes of one token (grace 5 s): all 200 with one identical new
    refresh token and one access-token jti; that token then rotates normally."""
    assert live.settings.refresh_reuse_grace == 5.0
    first = pair(live)
    answers = asyncio.run(race(live, first["refresh_token"], 50))
    assert [a.status_code for a in answers] == [200] * 50, [a.text for a in answers[:3]]
    tokens = {a.json()["refresh_token"] for a in answers}
    assert len(tokens) == 1
    (successor,) = tokens
    assert successor != first["refresh_token"]
    assert len({claims(a.json()["access_token"])["jti"] for a in answers}) == 1
    assert me(live, answers[-1].json()["access_token"]).status_code == 200
    after = refresh(live, successor)
    assert after.status_code == 200, after.text
    assert after.json()["refresh_token"] not in (successor, first["refresh_token"])


def test_fifty_concurrent_refreshes_without_grace_give_one_pair_then_none(
    make_server: ServerFactory,
) -> None:
    """refresh_reuse_grace=0: of 50 simultaneous refreshes at most one gets a pair (none,
    when a loser ends the family before the winner signs), the rest 401 invalid_grant;
    the race counts as reuse, so any winner's pair dies too."""
    live = make_server(refresh_reuse_grace=0)
    first = pair(live)
    user_id = claims(first["access_token"])["sub"]
    answers = asyncio.run(race(live, first["refresh_token"], 50))
    winners = [a for a in answers if a.status_code == 200]
    assert len(winners) <= 1, [a.status_code for a in answers]
    for loser in answers:
        if loser.status_code != 200:
            assert_invalid_grant(loser)
    for winner in winners:
        assert_invalid_grant(refresh(live, winner.json()["refresh_token"]))
        assert_token_refused(me(live, winner.json()["access_token"]))
    assert_token_refused(me(live, first["access_token"]))
    assert len(reuse_events(live, user_id)) == 1  # one theft, one event


def test_revocation_reaches_another_instance(tmp_path: Path) -> None:
    """Two instances on one store: reuse detected on A ends the family's access token on B
    as soon as B reads the revocation stream (T9: every instance)."""
    shared = {"issuer": "https://auth.example"}
    a, running_a = start_server(tmp_path / "shared", FrozenClock(time.time()), **shared)
    try:
        b, running_b = start_server(tmp_path / "shared", a.clock, **shared)
        try:
            first = pair(a)
            second = refresh(a, first["refresh_token"]).json()
            assert me(b, second["access_token"]).status_code == 200
            a.clock.advance(a.settings.refresh_reuse_grace + 1)
            assert_invalid_grant(refresh(b, first["refresh_token"]))
            # B detected it: A learns from the stream within a few poll intervals.
            deadline = time.monotonic() + 5
            while me(a, second["access_token"]).status_code == 200:
                assert time.monotonic() < deadline, "instance A never saw the revocation"
                time.sleep(0.02)
            assert_token_refused(me(a, second["access_token"]))
            assert_invalid_grant(refresh(a, second["refresh_token"]))
        finally:
            stop_server(running_b)
    finally:
        stop_server(running_a)


# -- tokens cannot stand in for each other (T6) ----------------------------------------


def test_access_token_is_refused_as_refresh_token(live: LiveServer) -> None:
    """A JWT sent as refresh_token gets no pair: invalid_grant, the token not echoed (T6)."""
    first = pair(live)
    answer = refresh(live, first["access_token"])
    assert_invalid_grant(answer)
    assert "access_token" not in answer.json()
    assert first["access_token"].split(".")[1] not in answer.text
    short_jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"
    assert_invalid_grant(refresh(live, short_jwt))
    # The real refresh token was not touched by either attempt.
    assert refresh(live, first["refresh_token"]).status_code == 200


def test_refresh_token_is_refused_as_bearer(live: LiveServer) -> None:
    """A refresh token in the Authorization header is an invalid access token (401) and
    is not spent by the attempt."""
    first = pair(live)
    answer = me(live, first["refresh_token"])
    assert_token_refused(answer)
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert first["refresh_token"] not in answer.text
    assert refresh(live, first["refresh_token"]).status_code == 200


# -- the refresh cookie ----------------------------------------------------------------


def test_cookie_login_sets_a_strict_http_only_refresh_cookie(live: LiveServer) -> None:
    """refresh_transport=cookie: no refresh_token in the body; the cookie is HttpOnly,
    SameSite=Strict, Path=/auth/refresh, lives as long as the family, no Domain."""
    answer = jwt_login(live, live.register(), cookie=True)
    body = answer.json()
    assert "refresh_token" not in body
    assert body["token_type"] == "Bearer"
    assert me(live, body["access_token"]).status_code == 200
    header = set_cookie(answer)
    assert REFRESH_SHAPE.fullmatch(cookie_value(header))
    attrs = attributes(header)
    assert "httponly" in attrs
    assert attrs["samesite"].lower() == "strict"
    assert attrs["path"] == "/auth/refresh"
    assert attrs["max-age"] == str(live.settings.refresh_absolute_lifetime)
    assert "domain" not in attrs
    assert "secure" not in attrs  # plain HTTP on loopback


def test_cookie_refresh_rotates_the_cookie(live: LiveServer) -> None:
    """POST /auth/refresh with {} and the cookie from our own origin answers an access
    token and a new cookie (not a body refresh token); the new cookie works."""
    login = jwt_login(live, live.register(), cookie=True)
    token = cookie_value(set_cookie(login))
    answer = cookie_refresh(live, token, origin=live.url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert "refresh_token" not in answer.json()
    assert me(live, answer.json()["access_token"]).status_code == 200
    header = set_cookie(answer)
    rotated = cookie_value(header)
    assert REFRESH_SHAPE.fullmatch(rotated)
    assert rotated != token
    assert attributes(header)["path"] == "/auth/refresh"
    assert "httponly" in attributes(header)
    again = cookie_refresh(live, rotated, origin=live.url)
    assert again.status_code == 200, again.text


def test_cookie_refresh_from_another_origin_is_forbidden(live: LiveServer) -> None:
    """A cross-origin request carrying the cookie is 403 and does not spend the token."""
    login = jwt_login(live, live.register(), cookie=True)
    token = cookie_value(set_cookie(login))
    # Another port of this machine is another origin (localhost:PORT is this server).
    other_port = live.url.rsplit(":", 1)[0] + ":1"
    for origin in ("https://evil.example", "null", other_port):
        answer = cookie_refresh(live, token, origin=origin)
        assert answer.status_code == 403, (origin, answer.text)
        assert answer.json()["error"] == "csrf_failed"
        assert "access_token" not in answer.json()
        assert not answer.headers.get_list("set-cookie")
    with live.client() as client:
        answer = client.post(
            "/auth/refresh",
            json={},
            headers={"Cookie": f"{COOKIE}={token}", "Referer": "https://evil.example/page"},
        )
    assert answer.status_code == 403, answer.text
    assert cookie_refresh(live, token, origin=live.url).status_code == 200


def test_dead_refresh_cookie_is_refused_and_cleared(live: LiveServer) -> None:
    """A cookie whose family has ended gets 401 invalid_grant and a Set-Cookie that
    deletes it on the same path."""
    login = jwt_login(live, live.register(), cookie=True)
    token = cookie_value(set_cookie(login))
    with live.client() as client:
        bye = client.post(
            "/auth/logout", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
        )
    assert bye.status_code == 204
    for dead in (token, "tfr_" + "A" * 43, "garbage"):
        answer = cookie_refresh(live, dead, origin=live.url)
        assert_invalid_grant(answer)
        header = set_cookie(answer)
        assert cookie_value(header) == ""
        attrs = attributes(header)
        assert attrs["path"] == "/auth/refresh"
        assert attrs["max-age"] == "0"


def test_refresh_without_any_token_is_401(live: LiveServer) -> None:
    """No body token and no cookie: 401 invalid_grant."""
    with live.client() as client:
        for body in ({}, {"refresh_token": None}):
            answer = client.post("/auth/refresh", json=body)
            assert_invalid_grant(answer)


# -- logout and password change --------------------------------------------------------


def test_logout_ends_the_family_and_its_access_token_at_once(live: LiveServer) -> None:
    """Logout with the Bearer token: 204, the family's refresh token is refused and the
    access token is refused on the very next request (no waiting for expiry)."""
    first = pair(live)
    second = refresh(live, first["refresh_token"]).json()
    with live.client() as client:
        bye = client.post(
            "/auth/logout", headers={"Authorization": f"Bearer {second['access_token']}"}
        )
    assert bye.status_code == 204
    assert_token_refused(me(live, second["access_token"]))
    assert_invalid_grant(refresh(live, second["refresh_token"]))


def test_password_change_in_jwt_mode_replaces_every_pair(live: LiveServer) -> None:
    """POST /auth/password with a Bearer token answers a new pair; every old refresh and
    access token of the user (this family and others) is refused, the new pair works."""
    email = live.register()
    mine, other = pair(live, email), pair(live, email)
    with live.client() as client:
        answer = client.post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers={"Authorization": f"Bearer {mine['access_token']}"},
        )
    assert answer.status_code == 200, answer.text
    fresh = answer.json()
    assert fresh["token_type"] == "Bearer"
    assert REFRESH_SHAPE.fullmatch(fresh["refresh_token"])
    for old in (mine, other):
        assert_token_refused(me(live, old["access_token"]))
        assert_invalid_grant(refresh(live, old["refresh_token"]))
    assert claims(fresh["access_token"])["sid"] not in {
        claims(mine["access_token"])["sid"],
        claims(other["access_token"])["sid"],
    }
    who = me(live, fresh["access_token"])
    assert who.status_code == 200, who.text
    assert who.json()["email"] == email
    rotated = refresh(live, fresh["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert me(live, rotated.json()["access_token"]).status_code == 200


def test_password_change_keeps_a_cookie_client_on_cookies(live: LiveServer) -> None:
    """A browser that keeps its refresh token in the cookie asks for the new one there too:
    the answer sets the cookie and leaves the token out of the body (JavaScript never sees
    it), and the new cookie refreshes."""
    email = live.register()
    login = jwt_login(live, email, cookie=True)
    with live.client() as client:
        answer = client.post(
            "/auth/password",
            json={
                "current_password": PASSWORD,
                "new_password": NEW_PASSWORD,
                "refresh_transport": "cookie",
            },
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
    assert answer.status_code == 200, answer.text
    assert "refresh_token" not in answer.json()
    new_cookie = answer.cookies.get(COOKIE)
    assert new_cookie is not None
    assert REFRESH_SHAPE.fullmatch(new_cookie)
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    assert "path=/auth/refresh" in set_cookie
    assert "samesite=strict" in set_cookie
    assert cookie_refresh(live, new_cookie, origin=live.url).status_code == 200
    old_cookie = login.cookies.get(COOKIE)
    assert old_cookie is not None
    assert_invalid_grant(cookie_refresh(live, old_cookie, origin=live.url))


def test_idle_refresh_family_expires(make_server: ServerFactory) -> None:
    """A family unused for refresh_idle_timeout is refused."""
    live = make_server(refresh_idle_timeout=60, refresh_absolute_lifetime=600)
    first = pair(live)
    live.clock.advance(59)
    second = refresh(live, first["refresh_token"])
    assert second.status_code == 200, second.text
    live.clock.advance(60)
    assert_invalid_grant(refresh(live, second.json()["refresh_token"]))


# -- malformed input (T7) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"refresh_token=tfr_x", "application/x-www-form-urlencoded"),
        (b'{"refresh_token": "tfr_x"}', "text/plain"),
        (b'{"refresh_token": "tfr_x"}', None),
    ],
    ids=["form", "text-plain", "no-content-type"],
)
def test_non_json_body_is_415(live: LiveServer, content: bytes, content_type: str | None) -> None:
    """/auth/refresh takes JSON only (what a cross-site form cannot send)."""
    headers = {"Content-Type": content_type} if content_type else {}
    with live.client() as client:
        answer = client.post("/auth/refresh", content=content, headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "body",
    [
        {"refresh_token": "tfr_" + "A" * 8189},
        {"refresh_token": "x" * 10_000},
        {"refresh_token": 12345},
        {"refresh_token": ["tfr_" + "A" * 43]},
        {"refresh_token": "tfr_" + "A" * 43, "extra": 1},
    ],
    ids=["8193-chars", "10k-chars", "number", "list", "extra-field"],
)
def test_invalid_refresh_body_is_422_json(live: LiveServer, body: dict[str, Any]) -> None:
    """Oversized or mistyped refresh_token: 422 invalid_request as JSON, never a 500."""
    with live.client() as client:
        answer = client.post("/auth/refresh", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == "invalid_request"
    assert "AAAAAAAA" not in answer.text  # the submitted value is not echoed
    assert "xxxxxxxx" not in answer.text


def test_malformed_json_is_400_json(live: LiveServer) -> None:
    """Broken JSON is 400 invalid_json, never a 500."""
    with live.client() as client:
        answer = client.post(
            "/auth/refresh",
            content=b'{"refresh_token": ',
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_json"
