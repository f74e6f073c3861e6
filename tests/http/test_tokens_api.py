"""Tokens for other applications over a real socket: the exchange at /auth/token (from a
session or a scoped token), the scoped tokens API, and how each kind of ending reaches the
tokens exchanged before it (B1, T5, T9)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, bearer, start_server, stop_server
from twofold.authority import Origin, Principal
from twofold.clock import FrozenClock
from twofold.errors import InvalidToken
from twofold.jose.b64 import b64url_decode

API = "https://api.example"
REPORTS = "reports"
NEW_PASSWORD = "an entirely new passphrase"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server that mints tokens for two other applications, with three scopes."""
    live, running = start_server(
        tmp_path_factory.mktemp("tokens"),
        FrozenClock(time.time()),
        login_failures_per_address=100_000,
        scopes=["read", "write", "billing:admin"],
        token_audiences=[API, REPORTS],
        exchange_token_lifetime=90,
        scoped_token_max_lifetime=30 * 86_400,
    )
    yield live
    stop_server(running)


@contextmanager
def browser(live: LiveServer, email: str) -> Iterator[httpx.Client]:
    """A logged-in browser-like client: session cookie, same Origin, CSRF header set."""
    with live.client(headers={"Origin": live.url}) as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
        )
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        yield client


def claims_of(token: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return found


def assert_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code


def exchange(client: httpx.Client, audience: str = API, **body: Any) -> httpx.Response:
    return client.post("/auth/token", json={"audience": audience, **body})


def exchanged(client: httpx.Client, audience: str = API, **body: Any) -> str:
    answer = exchange(client, audience, **body)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def with_token(live: LiveServer, token: str) -> httpx.Client:
    return live.client(headers=bearer(token))


def verify_for(live: LiveServer, token: str, audience: str) -> Principal:
    """The server's own verdict on a token for ``audience`` (``InvalidToken`` if refused)."""

    async def verify() -> Principal:
        return live.runtime.authority.token_principal(token, audience=audience)

    return live.call(verify())


def refused_for(live: LiveServer, token: str, audience: str) -> bool:
    try:
        verify_for(live, token, audience)
    except InvalidToken:
        return True
    return False


def create_token(client: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = client.post(
        "/auth/scoped-tokens", json={"name": "CI deploy", "scopes": ["read"], **body}
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


# -- exchange from a session ---------------------------------------------------------------


def test_a_session_exchanges_for_a_short_lived_token_of_the_audience(server: LiveServer) -> None:
    """The token names the audience, the granted scopes, the user's roles and an opaque
    sid, and lives exchange_token_lifetime; the answer says the same."""
    email = server.register()
    with browser(server, email) as client:
        answer = exchange(client, scope="write read")
        device = client.get("/auth/sessions").json()["sessions"][0]["id"]
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["audience"] == API
    assert body["scope"] == "read write"
    assert body["expires_in"] == 90
    claims = claims_of(body["access_token"])
    assert claims["aud"] == API
    assert claims["scope"] == "read write"
    assert claims["exp"] - claims["iat"] == 90
    assert claims["roles"] == ["user"]
    assert claims["client_id"] == "twofold"
    assert claims["sid"].startswith("ses_")
    assert len(claims["sid"]) == 26
    assert device.removeprefix("s_")[:22] not in claims["sid"]  # never the session's hash
    principal = verify_for(server, body["access_token"], API)
    assert principal.scopes == ("read", "write")
    assert principal.email == email


def test_without_a_scope_every_scope_is_granted(server: LiveServer) -> None:
    """An exchange that asks for no scope gets all the session holds (every configured one)."""
    with browser(server, server.register()) as client:
        body = exchange(client, REPORTS).json()
    assert body["scope"] == "read write billing:admin"
    assert claims_of(body["access_token"])["aud"] == REPORTS


@pytest.mark.parametrize(
    ("headers", "drop_token"),
    [({}, True), ({"X-CSRF-Token": "A" * 43}, False), ({"Origin": "http://evil.example"}, False)],
    ids=["no-token", "wrong-token", "foreign-origin"],
)
def test_a_session_exchange_needs_csrf_proof(
    server: LiveServer, headers: dict[str, str], drop_token: bool
) -> None:
    """A cookie alone (what a cross-site request carries) mints nothing: 403 (B1)."""
    with browser(server, server.register()) as client:
        if drop_token:
            del client.headers["X-CSRF-Token"]
        answer = client.post("/auth/token", json={"audience": API}, headers=headers)
        assert_error(answer, 403, "csrf_failed")


@pytest.mark.parametrize(
    "audience", ["https://evil.example", "twofold", "https://api.example/"], ids=str
)
def test_an_audience_that_is_not_configured_is_invalid_target(
    server: LiveServer, audience: str
) -> None:
    """Only the configured audiences: not another one, not Twofold's own, not a near miss."""
    with browser(server, server.register()) as client:
        assert_error(exchange(client, audience), 400, "invalid_target")


@pytest.mark.parametrize(
    "scope",
    ["read admin", "READ", "", "   ", "read\twrite", "read  write", "read\u00a0write"],
    ids=["superset", "case", "empty", "blank", "tab", "double-space", "nbsp"],
)
def test_a_scope_the_caller_does_not_hold_is_invalid_scope(server: LiveServer, scope: str) -> None:
    """Asking for more than the caller holds, or for nothing, mints nothing; names are
    separated by single spaces only (RFC 6749 section 3.3)."""
    with browser(server, server.register()) as client:
        assert_error(exchange(client, scope=scope), 400, "invalid_scope")


def test_an_exchanged_token_opens_none_of_twofolds_endpoints(server: LiveServer) -> None:
    """Its audience is another application's: Twofold's own routes refuse it (T5), so it
    cannot read or change the account, or make or exchange tokens."""
    with browser(server, server.register()) as client:
        token = exchanged(client)
    with with_token(server, token) as app:
        assert_error(app.get("/auth/me"), 401, "invalid_token")
        assert_error(app.get("/auth/sessions"), 401, "invalid_token")
        assert_error(app.get("/auth/scoped-tokens"), 401, "invalid_token")
        assert_error(
            app.post("/auth/scoped-tokens", json={"name": "x", "scopes": ["read"]}),
            401,
            "invalid_token",
        )
        assert_error(exchange(app), 401, "invalid_token")
        assert_error(app.post("/auth/logout"), 401, "invalid_token")
    assert verify_for(server, token, API).scopes == ("read", "write", "billing:admin")
    assert refused_for(server, token, REPORTS)


def test_a_token_with_a_scope_is_refused_by_twofolds_endpoints_whatever_its_audience(
    server: LiveServer,
) -> None:
    """Even one signed for Twofold's own audience: a scope marks it as made for an
    application, never as a login."""
    email = server.register()
    with browser(server, email) as client:
        user_id = client.get("/auth/me").json()["id"]
    token, _ = server.runtime.authority.tokens.issue(user_id, ["user"], scope="read")
    with with_token(server, token) as app:
        assert_error(app.get("/auth/me"), 401, "invalid_token")
        assert_error(app.get("/auth/scoped-tokens"), 401, "invalid_token")


def test_a_login_access_token_cannot_exchange(server: LiveServer) -> None:
    """The exchange takes a session or a scoped token; a login JWT gets 403."""
    pair = server.token_pair()
    with with_token(server, pair["access_token"]) as client:
        assert_error(exchange(client), 403, "forbidden")


def test_no_credential_is_401(server: LiveServer) -> None:
    """Without a session or a scoped token nothing is minted."""
    with server.client() as client:
        assert_error(exchange(client), 401, "unauthenticated")


# -- ending a session ends its exchanged tokens --------------------------------------------


def test_logging_out_refuses_the_sessions_exchanged_tokens(server: LiveServer) -> None:
    """Logout appends the session's sid to the revocation stream: its exchanged token is
    refused at once (T9), and another session's is not."""
    email = server.register()
    with browser(server, email) as other:
        survivor = exchanged(other)
        with browser(server, email) as client:
            token = exchanged(client)
            assert verify_for(server, token, API).user_id
            assert client.post("/auth/logout").status_code == 204
    assert refused_for(server, token, API)
    assert not refused_for(server, survivor, API)


def test_revoking_a_session_refuses_its_exchanged_tokens(server: LiveServer) -> None:
    """DELETE /auth/sessions/{id} of another session refuses what it exchanged."""
    email = server.register()
    with browser(server, email) as victim, browser(server, email) as me:
        token = exchanged(victim)
        mine = exchanged(me)
        sessions = me.get("/auth/sessions").json()["sessions"]
        other = next(s["id"] for s in sessions if not s["current"])
        assert me.delete(f"/auth/sessions/{other}").status_code == 204
    assert refused_for(server, token, API)
    assert not refused_for(server, mine, API)


def test_logging_out_other_devices_refuses_their_exchanged_tokens(server: LiveServer) -> None:
    """DELETE /auth/sessions ends the other sessions and what they exchanged; the
    caller's own exchanged token lives."""
    email = server.register()
    with browser(server, email) as other, browser(server, email) as me:
        token = exchanged(other)
        mine = exchanged(me)
        assert me.delete("/auth/sessions").status_code == 200
    assert refused_for(server, token, API)
    assert not refused_for(server, mine, API)


def test_the_stream_never_carries_a_sessions_hash(server: LiveServer) -> None:
    """What logout appends names the session by an opaque derivation: neither the stored
    hash nor its device handle appears in the stream."""
    email = server.register()
    with browser(server, email) as client:
        sid = claims_of(exchanged(client))["sid"]
        handle = client.get("/auth/sessions").json()["sessions"][0]["id"].removeprefix("s_")
        assert client.post("/auth/logout").status_code == 204
    entries = server.call(server.runtime.session_store.revocations_after(0, 0))
    subjects = [entry.subject for entry in entries]
    assert sid in subjects
    assert not any(handle[:16] in subject for subject in subjects)


# -- scoped tokens ---------------------------------------------------------------------------


def test_a_scoped_token_is_shown_once_listed_exchanged_and_revoked(server: LiveServer) -> None:
    """Create → the token once; list → no secret; exchange with it → a token naming it,
    without roles; revoke → it exchanges no more and its access tokens are refused."""
    with browser(server, server.register()) as client:
        created = create_token(client, scopes=["read", "billing:admin"], expires_in=3600)
        token_id = created["id"]
        assert token_id.startswith("tfs_")
        assert len(token_id) == 26
        assert created["token"].startswith(token_id + ".")
        secret = created["token"].partition(".")[2]
        assert created["scopes"] == ["read", "billing:admin"]
        assert created["last_used_at"] is None
        listed = client.get("/auth/scoped-tokens")
        assert listed.status_code == 200
        assert secret not in listed.text
        assert [t["id"] for t in listed.json()["tokens"]] == [token_id]
        assert "token" not in listed.json()["tokens"][0]

        with with_token(server, created["token"]) as app:
            answer = exchange(app, REPORTS, scope="billing:admin")
        assert answer.status_code == 200, answer.text
        access = answer.json()["access_token"]
        claims = claims_of(access)
        assert claims["aud"] == REPORTS
        assert claims["scope"] == "billing:admin"
        assert claims["roles"] == []
        assert claims["client_id"] == token_id
        assert claims["sid"] == token_id
        assert claims["exp"] - claims["iat"] == 90
        assert verify_for(server, access, REPORTS).scopes == ("billing:admin",)
        used = client.get("/auth/scoped-tokens").json()["tokens"][0]
        assert used["last_used_at"] is not None

        assert client.delete(f"/auth/scoped-tokens/{token_id}").status_code == 204
        assert client.get("/auth/scoped-tokens").json()["tokens"] == []
        assert_error(client.delete(f"/auth/scoped-tokens/{token_id}"), 404, "not_found")
    with with_token(server, created["token"]) as app:
        assert_error(exchange(app, REPORTS), 401, "invalid_token")
    assert refused_for(server, access, REPORTS)


def test_a_scoped_token_exchanges_only_within_its_scopes(server: LiveServer) -> None:
    """A read-only token cannot mint a write token; by default it gets just its own."""
    with browser(server, server.register()) as client:
        created = create_token(client)
    with with_token(server, created["token"]) as app:
        assert_error(exchange(app, scope="read write"), 400, "invalid_scope")
        assert exchange(app).json()["scope"] == "read"
        assert_error(exchange(app, "https://evil.example"), 400, "invalid_target")


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="wrong-secret"),
        pytest.param(lambda t: t.partition(".")[0] + ".", id="no-secret"),
        pytest.param(lambda t: "tfs_" + "A" * 22 + "." + t.partition(".")[2], id="unknown-id"),
        pytest.param(lambda t: t.partition(".")[0], id="id-alone"),
        pytest.param(lambda t: t + "x" * 300, id="oversized-secret"),
    ],
)
def test_a_wrong_scoped_token_is_401(server: LiveServer, mangle: Any) -> None:
    """Anything but the exact token is refused alike, before audience or scope are read."""
    with browser(server, server.register()) as client:
        created = create_token(client)
    with with_token(server, mangle(created["token"])) as app:
        assert_error(exchange(app, "https://evil.example", scope="nope"), 401, "invalid_token")


def test_a_scoped_token_revoked_on_the_stream_is_refused_before_its_delete(
    server: LiveServer,
) -> None:
    """Revocation is written before the record is deleted: a failure between the two
    leaves a token that the stream entry alone refuses."""
    with browser(server, server.register()) as client:
        created = create_token(client)
    server.call(server.runtime.authority.revoker.family(created["id"]))
    with with_token(server, created["token"]) as app:
        assert_error(exchange(app), 401, "invalid_token")


def test_a_scoped_token_opens_none_of_twofolds_endpoints(server: LiveServer) -> None:
    """The token itself is no access token: Twofold's routes refuse it."""
    with browser(server, server.register()) as client:
        created = create_token(client)
    with with_token(server, created["token"]) as app:
        assert_error(app.get("/auth/me"), 401, "invalid_token")
        assert_error(app.get("/auth/scoped-tokens"), 401, "invalid_token")


def test_a_password_change_ends_the_users_scoped_tokens(server: LiveServer) -> None:
    """Tokens are bound to the password they were made under: a change ends them, and
    what they exchanged is cut off."""
    with browser(server, server.register()) as client:
        created = create_token(client)
        with with_token(server, created["token"]) as app:
            access = exchanged(app)
        changed = client.post(
            "/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        )
        assert changed.status_code == 200, changed.text
        client.headers["X-CSRF-Token"] = changed.json()["csrf_token"]
        assert client.get("/auth/scoped-tokens").json()["tokens"] == []
    with with_token(server, created["token"]) as app:
        assert_error(exchange(app), 401, "invalid_token")
    assert refused_for(server, access, API)


def test_a_scoped_token_made_before_a_password_change_stays_dead(server: LiveServer) -> None:
    """The epoch binding alone refuses it, even if its record outlived the change."""
    with browser(server, server.register()) as client:
        created = create_token(client)
    runtime = server.runtime
    record = server.call(runtime.store.get_scoped_token(created["id"]))
    assert record is not None
    user = server.call(runtime.store.get_user(record.user_id))
    assert user is not None
    server.call(runtime.store.set_password(user.id, user.password_hash, time.time() + 1))
    with with_token(server, created["token"]) as app:
        assert_error(exchange(app), 401, "invalid_token")


def test_a_locked_users_scoped_token_is_refused(server: LiveServer) -> None:
    """While the user is locked their token exchanges nothing, even before anything is
    deleted; locking through the admin deletes it too."""
    email = server.register()
    with browser(server, email) as client:
        kept = create_token(client)
        deleted = create_token(client)
    runtime = server.runtime
    user = server.call(runtime.admin.find_user(email))
    server.call(runtime.store.set_locked(user.id, True))
    with with_token(server, kept["token"]) as app:
        assert_error(exchange(app), 401, "invalid_token")
    server.call(runtime.store.set_locked(user.id, False))
    with with_token(server, kept["token"]) as app:
        assert exchange(app).status_code == 200
    server.call(runtime.admin.lock(user.id, actor=None, origin=Origin()))
    for created in (kept, deleted):
        with with_token(server, created["token"]) as app:
            assert_error(exchange(app), 401, "invalid_token")
    assert server.call(runtime.store.get_scoped_token(deleted["id"])) is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"expires_in": 30 * 86_400 + 1}, 400),
        ({"expires_in": 10}, 400),
        ({"scopes": ["admin"]}, 400),
        ({"scopes": []}, 422),
        ({"name": "   "}, 400),
        ({"name": "x" * 65}, 422),
        ({"name": "tab\there"}, 400),
    ],
    ids=["beyond-max", "too-short", "unknown-scope", "no-scope", "blank-name", "long-name", "ctrl"],
)
def test_a_scoped_token_outside_the_rules_is_refused(
    server: LiveServer, body: dict[str, Any], status: int
) -> None:
    """Expiry within scoped_token_max_lifetime, configured scopes only, a printable name."""
    with browser(server, server.register()) as client:
        answer = client.post("/auth/scoped-tokens", json={"name": "CI", "scopes": ["read"], **body})
        assert answer.status_code == status, answer.text
        assert client.get("/auth/scoped-tokens").json()["tokens"] == []


def test_an_expired_scoped_token_is_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Past its expiry it exchanges nothing and is no longer listed."""
    clock = FrozenClock(time.time())
    live, running = start_server(tmp_path_factory.mktemp("expiry"), clock, token_audiences=[API])
    try:
        with browser(live, live.register()) as client:
            created = create_token(client, expires_in=120)
            clock.advance(121)
            assert client.get("/auth/scoped-tokens").json()["tokens"] == []
        with with_token(live, created["token"]) as app:
            assert_error(exchange(app), 401, "invalid_token")
    finally:
        stop_server(running)


def test_managing_scoped_tokens_with_a_cookie_needs_csrf_proof(server: LiveServer) -> None:
    """Creating and revoking with the session cookie alone is 403, and nothing changes (B1)."""
    with browser(server, server.register()) as client:
        created = create_token(client)
        token = client.headers.pop("X-CSRF-Token")
        assert_error(
            client.post("/auth/scoped-tokens", json={"name": "x", "scopes": ["read"]}),
            403,
            "csrf_failed",
        )
        assert_error(client.delete(f"/auth/scoped-tokens/{created['id']}"), 403, "csrf_failed")
        client.headers["X-CSRF-Token"] = token
        assert len(client.get("/auth/scoped-tokens").json()["tokens"]) == 1


def test_a_login_token_manages_scoped_tokens(server: LiveServer) -> None:
    """A full login JWT (no scope, Twofold's audience) may list, make and revoke them."""
    pair = server.token_pair()
    with with_token(server, pair["access_token"]) as client:
        created = create_token(client)
        assert [t["id"] for t in client.get("/auth/scoped-tokens").json()["tokens"]] == [
            created["id"]
        ]
        assert client.delete(f"/auth/scoped-tokens/{created['id']}").status_code == 204


def test_another_users_scoped_token_is_404_and_lives_on(server: LiveServer) -> None:
    """Revoking someone else's token is indistinguishable from an unknown one."""
    with browser(server, server.register()) as victim:
        created = create_token(victim)
    with browser(server, server.register()) as attacker:
        assert_error(attacker.delete(f"/auth/scoped-tokens/{created['id']}"), 404, "not_found")
        assert attacker.get("/auth/scoped-tokens").json()["tokens"] == []
    with with_token(server, created["token"]) as app:
        assert exchange(app).status_code == 200


def test_scoped_tokens_are_audited(server: LiveServer) -> None:
    """Making and revoking are audit events naming the token, never its secret (O2)."""
    email = server.register()
    with browser(server, email) as client:
        created = create_token(client)
        assert client.delete(f"/auth/scoped-tokens/{created['id']}").status_code == 204
    runtime = server.runtime
    user = server.call(runtime.admin.find_user(email))
    events = server.call(runtime.authority.audit.page(user_id=user.id))
    kinds = [event.kind for event in events]
    assert "scoped_token_created" in kinds
    assert "scoped_token_revoked" in kinds
    secret = created["token"].partition(".")[2]
    for event in events:
        assert secret not in json.dumps(event.detail)
        if event.kind.startswith("scoped_token"):
            assert event.detail["token"] == created["id"]


def test_an_admin_ending_a_users_logins_ends_their_scoped_tokens(server: LiveServer) -> None:
    """An admin's "end everything" for a user also ends the scoped tokens, which a stolen
    session could have made to outlive its own end."""
    email = server.register()
    with browser(server, email) as client:
        created = create_token(client)
    runtime = server.runtime
    user = server.call(runtime.admin.find_user(email))
    server.call(runtime.admin.end_sessions(user.id, actor=None, origin=Origin()))
    with with_token(server, created["token"]) as app:
        assert_error(exchange(app), 401, "invalid_token")
