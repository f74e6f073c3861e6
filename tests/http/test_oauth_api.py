"""RFC 7662 introspection and RFC 7009 revocation over a real socket, client
authentication, and the discovery documents that point at them (SECURITY.md T6, T9, T10)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory, start_server, stop_server
from twofold import audit
from twofold.clients import Clients
from twofold.clock import FrozenClock, SystemClock
from twofold.jose.b64 import b64url_decode, b64url_encode
from twofold.store.base import Store
from twofold.store.factory import store_from_url
from twofold.store.records import AuditEvent

T = TypeVar("T")
FORM = "application/x-www-form-urlencoded"
# Loaded once: building a client's default TLS context costs ~100 ms, more than a request.
TLS = ssl.create_default_context()


# -- helpers -----------------------------------------------------------------------------


def http(live: LiveServer) -> httpx.Client:
    return live.client(verify=TLS)


def in_store(live: LiveServer, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` on a second connection to the server's database (as the CLI does)."""

    async def run() -> T:
        store = store_from_url(live.settings.effective_database_url)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def add_client(live: LiveServer) -> tuple[str, str]:
    """Register a resource server (as `twofold client add` does); the server reads
    clients from the store on every call."""

    async def add(store: Store) -> tuple[str, str]:
        new = await Clients(store, SystemClock()).add(f"rs-{uuid.uuid4().hex[:12]}")
        return new.client.id, new.secret

    return in_store(live, add)


@pytest.fixture(scope="module")
def client_creds(live: LiveServer) -> tuple[str, str]:
    return add_client(live)


def basic(client_id: str, secret: str) -> dict[str, str]:
    # RFC 6749 section 2.3.1: each part form-urlencoded, then Basic.
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def post(
    live: LiveServer,
    path: str,
    form: dict[str, str] | None = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    with http(live) as client:
        if content is not None:
            merged = {"Content-Type": FORM, **(headers or {})}
            return client.post(path, content=content, headers=merged)
        return client.post(path, data=form or {}, headers=headers or {})


def introspect(live: LiveServer, creds: tuple[str, str], token: str) -> httpx.Response:
    return post(live, "/oauth/introspect", {"token": token}, headers=basic(*creds))


def revoke(live: LiveServer, creds: tuple[str, str], token: str, **form: str) -> httpx.Response:
    return post(live, "/oauth/revoke", {"token": token, **form}, headers=basic(*creds))


@pytest.fixture(scope="module")
def email(live: LiveServer) -> str:
    """One account for the module: every login starts its own token family, and nothing
    here revokes more than a family or a token."""
    return live.register()


@pytest.fixture(scope="module")
def spare(live: LiveServer, email: str) -> dict[str, Any]:
    """A login that tests read but never end."""
    return token_login(live, email)


def token_login(live: LiveServer, email: str) -> dict[str, Any]:
    with http(live) as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"}
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def payload(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return claims


def me_status(live: LiveServer, access_token: str) -> int:
    with http(live) as client:
        answer = client.get("/auth/me", headers={"Authorization": f"Bearer {access_token}"})
    return answer.status_code


def refresh_status(live: LiveServer, refresh_token: str) -> int:
    with http(live) as client:
        return client.post("/auth/refresh", json={"refresh_token": refresh_token}).status_code


INACTIVE = {"active": False}


# -- introspection -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_introspect_an_active_access_token(
    live: LiveServer, email: str, spare: dict[str, Any], client_creds: tuple[str, str], method: str
) -> None:
    """An active access token: active, its claims, token_type Bearer, the e-mail as
    username; with either client authentication method."""
    tokens = spare
    token = tokens["access_token"]
    if method == "client_secret_basic":
        answer = introspect(live, client_creds, token)
    else:
        client_id, secret = client_creds
        answer = post(
            live,
            "/oauth/introspect",
            {"token": token, "client_id": client_id, "client_secret": secret},
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    claims = payload(token)
    with http(live) as client:
        user_id = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).json()["id"]
    assert answer.json() == {
        "active": True,
        "token_type": "Bearer",
        "sub": user_id,
        "username": email,
        "client_id": "twofold",
        "iss": live.settings.effective_issuer,
        "aud": live.settings.audience,
        "exp": claims["iat"] + live.settings.access_token_lifetime,
        "iat": claims["iat"],
        "nbf": claims["iat"],
        "jti": claims["jti"],
        "roles": ["user"],
        "sid": claims["sid"],
    }
    assert isinstance(claims["sid"], str)
    assert claims["sid"]
    assert isinstance(claims["jti"], str)
    assert claims["jti"]
    assert abs(claims["iat"] - live.clock.now()) < 2


def test_introspect_an_active_refresh_token(
    live: LiveServer, email: str, spare: dict[str, Any], client_creds: tuple[str, str]
) -> None:
    """An unspent refresh token: active, token_type refresh_token, its family as sid."""
    tokens = spare
    answer = introspect(live, client_creds, tokens["refresh_token"])
    assert answer.status_code == 200
    body = answer.json()
    claims = payload(tokens["access_token"])
    assert body == {
        "active": True,
        "token_type": "refresh_token",
        "sub": claims["sub"],
        "username": email,
        "client_id": "twofold",
        "iss": live.settings.effective_issuer,
        "exp": body["iat"] + live.settings.refresh_idle_timeout,
        "iat": body["iat"],
        "sid": claims["sid"],
    }
    assert abs(body["iat"] - live.clock.now()) < 2


def test_introspect_a_spent_refresh_token_is_inactive(
    live: LiveServer, email: str, client_creds: tuple[str, str]
) -> None:
    """After rotation the old refresh token is inactive and the new one active."""
    tokens = token_login(live, email)
    with http(live) as client:
        rotated = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    assert introspect(live, client_creds, tokens["refresh_token"]).json() == INACTIVE
    assert introspect(live, client_creds, rotated.json()["refresh_token"]).json()["active"]


def test_introspect_an_expired_access_token_is_inactive(fresh_live: LiveServer) -> None:
    """Past exp plus the leeway: exactly {"active": false}."""
    creds = add_client(fresh_live)
    tokens = token_login(fresh_live, fresh_live.register())
    token = tokens["access_token"]
    assert introspect(fresh_live, creds, token).json()["active"] is True
    settings = fresh_live.settings
    fresh_live.clock.advance(settings.access_token_lifetime + settings.token_leeway + 1)
    answer = introspect(fresh_live, creds, token)
    assert answer.status_code == 200
    assert answer.json() == INACTIVE


def test_introspect_after_logout_is_inactive(
    live: LiveServer, email: str, client_creds: tuple[str, str]
) -> None:
    """Logout ends the family: its access and refresh tokens are inactive at once."""
    tokens = token_login(live, email)
    access = tokens["access_token"]
    assert introspect(live, client_creds, access).json()["active"] is True
    with http(live) as client:
        out = client.post("/auth/logout", headers={"Authorization": f"Bearer {access}"})
    assert out.status_code == 204
    assert introspect(live, client_creds, access).json() == INACTIVE
    assert introspect(live, client_creds, tokens["refresh_token"]).json() == INACTIVE


def _flip_signature_byte(token: str) -> str:
    head, body, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{b64url_encode(bytes(raw))}"


def _with_claim(token: str, **changes: Any) -> str:
    head, body, signature = token.split(".")
    claims = {**json.loads(b64url_decode(body)), **changes}
    return f"{head}.{b64url_encode(json.dumps(claims).encode())}.{signature}"


FORGERIES = {
    "flipped-signature-byte": _flip_signature_byte,
    "admin-role-added": lambda t: _with_claim(t, roles=["admin"]),
    "signature-dropped": lambda t: t.rsplit(".", 1)[0] + ".",
    "alg-none": lambda t: (
        b64url_encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
        + "."
        + t.split(".")[1]
        + "."
    ),
}


@pytest.mark.parametrize("forge", list(FORGERIES.values()), ids=list(FORGERIES))
def test_introspect_a_forged_token_is_inactive(
    live: LiveServer, spare: dict[str, Any], client_creds: tuple[str, str], forge: Any
) -> None:
    """A token whose signature does not verify is exactly {"active": false}."""
    tokens = spare
    forged = forge(tokens["access_token"])
    assert forged != tokens["access_token"]
    answer = introspect(live, client_creds, forged)
    assert answer.status_code == 200
    assert answer.json() == INACTIVE


GARBAGE = {
    "word": "garbage",
    "three-dots": "a.b.c",
    "dots-only": "....",
    "space": " ",
    "tab": "\t",
    "nul": "\x00",
    "non-ascii": "é.é.é",
    "emoji": "🔑",
    "empty-parts": "..",
    "json-parts": "eyJ9.eyJ9.",
    "refresh-prefix-unknown": "tfr_" + "A" * 43,
    "refresh-prefix-short": "tfr_x",
    "refresh-prefix-only": "tfr_",
    "long": "a" * 8000,
    "long-jws-shape": "e" * 3000 + "." + "e" * 3000 + "." + "e" * 1000,
}


@pytest.mark.parametrize("token", list(GARBAGE.values()), ids=list(GARBAGE))
def test_introspect_garbage_is_inactive(
    live: LiveServer, client_creds: tuple[str, str], token: str
) -> None:
    """Anything that is not a live token is exactly {"active": false}, never an error."""
    answer = introspect(live, client_creds, token)
    assert answer.status_code == 200, answer.text
    assert answer.json() == INACTIVE


def test_introspect_answers_no_store(
    live: LiveServer, spare: dict[str, Any], client_creds: tuple[str, str]
) -> None:
    """Introspection answers (active, inactive, refused) are never cached."""
    for answer in (
        introspect(live, client_creds, spare["access_token"]),
        introspect(live, client_creds, "garbage"),
        post(live, "/oauth/introspect", {"token": "x"}),
    ):
        assert answer.headers["cache-control"] == "no-store"


# -- client authentication and the request -----------------------------------------------


def _bad_auth(creds: tuple[str, str]) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """name -> (headers, form fields besides the token, already form-encoded)."""
    client_id, secret = creds
    wrong = ("A" if secret[0] != "A" else "B") + secret[1:]
    return {
        "basic-wrong-secret": (basic(client_id, wrong), {}),
        "post-wrong-secret": ({}, {"client_id": client_id, "client_secret": wrong}),
        "basic-unknown-client": (basic("tfc_" + "A" * 22, secret), {}),
        "post-unknown-client": ({}, {"client_id": "tfc_" + "A" * 22, "client_secret": secret}),
        "post-id-only": ({}, {"client_id": client_id}),
        "no-credentials": ({}, {}),
        "bearer-scheme": ({"Authorization": f"Bearer {secret}"}, {}),
        "digest-scheme": ({"Authorization": "Digest username=x"}, {}),
        "basic-malformed-base64": ({"Authorization": "Basic !!!not-base64!!!"}, {}),
        "basic-bad-padding": ({"Authorization": "Basic YWJj="}, {}),
        "basic-no-colon": (
            {"Authorization": "Basic " + base64.b64encode(client_id.encode()).decode()},
            {},
        ),
        "basic-bare": ({"Authorization": "Basic"}, {}),
        "basic-not-utf8": (
            {"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()},
            {},
        ),
        "basic-and-post-secret": (basic(client_id, secret), {"client_secret": secret}),
        # The UTF-8 bytes of a lone surrogate, which no str secret can match.
        "post-surrogate-secret": ({}, {"client_id": client_id, "client_secret": "%ED%B2%80"}),
    }


BAD_AUTH_IDS = list(_bad_auth(("tfc_" + "x" * 22, "s" * 43)))


@pytest.mark.parametrize("endpoint", ["/oauth/introspect", "/oauth/revoke"])
@pytest.mark.parametrize("case", BAD_AUTH_IDS)
def test_bad_client_authentication_is_invalid_client(
    live: LiveServer, spare: dict[str, Any], client_creds: tuple[str, str], endpoint: str, case: str
) -> None:
    """Every failed client authentication: 401 invalid_client with a Basic challenge."""
    headers, fields = _bad_auth(client_creds)[case]
    token = spare["access_token"]
    body = "&".join(f"{name}={value}" for name, value in {"token": token, **fields}.items())
    answer = post(live, endpoint, content=body.encode(), headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic ")
    if endpoint == "/oauth/revoke":
        # The refused revocation did nothing.
        assert me_status(live, token) == 200


def test_basic_credentials_are_form_urldecoded(
    live: LiveServer, client_creds: tuple[str, str]
) -> None:
    """RFC 6749 section 2.3.1: the id and secret are form-urlencoded inside Basic; a
    client that percent-encodes every character still authenticates."""
    client_id, secret = client_creds
    encoded = "".join(f"%{byte:02X}" for byte in client_id.encode())
    raw = f"{encoded}:{secret}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    answer = post(live, "/oauth/introspect", {"token": "garbage"}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == INACTIVE


def test_basic_scheme_is_case_insensitive(live: LiveServer, client_creds: tuple[str, str]) -> None:
    """The auth scheme name is case-insensitive (RFC 9110 section 11.1)."""
    headers = basic(*client_creds)
    headers["Authorization"] = headers["Authorization"].replace("Basic", "bAsIc", 1)
    answer = post(live, "/oauth/introspect", {"token": "garbage"}, headers=headers)
    assert answer.status_code == 200


@pytest.mark.parametrize("endpoint", ["/oauth/introspect", "/oauth/revoke"])
def test_missing_or_empty_token_is_invalid_request(
    live: LiveServer, client_creds: tuple[str, str], endpoint: str
) -> None:
    """No token parameter, or an empty one: 400 invalid_request."""
    for body in (b"", b"token=", b"token_type_hint=access_token"):
        answer = post(live, endpoint, content=body, headers=basic(*client_creds))
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"] == "invalid_request"


def test_token_over_the_length_limit_is_invalid_request(
    live: LiveServer, client_creds: tuple[str, str]
) -> None:
    """A token past 8192 characters (but within the body limit): 400."""
    answer = introspect(live, client_creds, "a" * 8193)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


BAD_BODIES: dict[str, tuple[int, str, bytes]] = {
    # name -> (status, content type, body)
    "json": (415, "application/json", b'{"token": "x"}'),
    "text": (415, "text/plain", b"token=x"),
    "multipart": (415, "multipart/form-data; boundary=b", b"--b--\r\n"),
    "no-content-type": (415, "", b"token=x"),
    "repeated-token": (400, FORM, b"token=a&token=b"),
    "repeated-client-id": (400, FORM, b"token=a&client_id=x&client_id=y"),
    "bare-name": (400, FORM, b"token"),
    "empty-pair": (400, FORM, b"token=a&&x=1"),
    "invalid-utf8": (400, FORM, b"token=\xff\xfe"),
}


@pytest.mark.parametrize("endpoint", ["/oauth/introspect", "/oauth/revoke"])
@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_malformed_bodies_are_refused_with_4xx(
    live: LiveServer, client_creds: tuple[str, str], endpoint: str, case: str
) -> None:
    """Wrong media type: 415; repeated parameters or a malformed form: 400; never 500."""
    status, content_type, body = BAD_BODIES[case]
    headers = {**basic(*client_creds), "Content-Type": content_type}
    if not content_type:
        del headers["Content-Type"]
    with http(live) as client:
        answer = client.post(endpoint, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    expected = "unsupported_media_type" if status == 415 else "invalid_request"
    assert answer.json()["error"] == expected


def test_form_with_charset_parameter_is_accepted(
    live: LiveServer, client_creds: tuple[str, str]
) -> None:
    """`application/x-www-form-urlencoded; charset=UTF-8` is the same media type."""
    headers = {**basic(*client_creds), "Content-Type": f"{FORM}; charset=UTF-8"}
    answer = post(live, "/oauth/introspect", content=b"token=garbage", headers=headers)
    assert answer.status_code == 200
    assert answer.json() == INACTIVE


@pytest.mark.parametrize("endpoint", ["/oauth/introspect", "/oauth/revoke"])
def test_body_over_the_size_limit_is_413(
    live: LiveServer, client_creds: tuple[str, str], endpoint: str
) -> None:
    """A form past max_body_bytes is refused before any route sees it."""
    body = b"token=" + b"a" * (live.settings.max_body_bytes + 1)
    answer = post(live, endpoint, content=body, headers=basic(*client_creds))
    assert answer.status_code == 413
    assert answer.json()["error"] == "body_too_large"


# -- revocation --------------------------------------------------------------------------


def test_revoke_an_access_token_refuses_it_at_once(
    live: LiveServer, email: str, client_creds: tuple[str, str]
) -> None:
    """200 with an empty JSON object; the very next /auth/me with it is 401 and introspection
    says inactive; the family's refresh token still works (only this token ended)."""
    tokens = token_login(live, email)
    access = tokens["access_token"]
    assert me_status(live, access) == 200
    answer = revoke(live, client_creds, access)
    assert answer.status_code == 200
    assert answer.json() == {}
    assert me_status(live, access) == 401
    assert introspect(live, client_creds, access).json() == INACTIVE
    assert revoke(live, client_creds, access).status_code == 200  # again: still 200
    assert refresh_status(live, tokens["refresh_token"]) == 200


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
def test_revoke_a_refresh_token_ends_its_family(
    live: LiveServer, email: str, client_creds: tuple[str, str], hint: str | None
) -> None:
    """Revoking a refresh token (whatever the hint) ends the family: the refresh token is
    refused and the family's access token is refused on the next request."""
    tokens = token_login(live, email)
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    assert me_status(live, access) == 200
    form = {"token_type_hint": hint} if hint else {}
    answer = revoke(live, client_creds, refresh, **form)
    assert answer.status_code == 200
    assert me_status(live, access) == 401
    assert refresh_status(live, refresh) == 401
    assert introspect(live, client_creds, refresh).json() == INACTIVE
    assert introspect(live, client_creds, access).json() == INACTIVE


def test_revoke_leaves_other_logins_alone(
    live: LiveServer, email: str, client_creds: tuple[str, str]
) -> None:
    """Revoking one login's refresh token does not touch the user's other login."""
    first = token_login(live, email)
    second = token_login(live, email)
    assert revoke(live, client_creds, first["refresh_token"]).status_code == 200
    assert me_status(live, first["access_token"]) == 401
    assert me_status(live, second["access_token"]) == 200
    assert refresh_status(live, second["refresh_token"]) == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "tfr_" + "A" * 43], ids=str)
def test_revoke_garbage_is_200(live: LiveServer, client_creds: tuple[str, str], token: str) -> None:
    """An invalid token is not an error to revocation (RFC 7009 section 2.2)."""
    answer = revoke(live, client_creds, token)
    assert answer.status_code == 200
    assert answer.json() == {}


def test_unauthenticated_revoke_is_401_and_revokes_nothing(live: LiveServer, email: str) -> None:
    """Without client credentials: 401 invalid_client, and the token keeps working."""
    tokens = token_login(live, email)
    answer = post(live, "/oauth/revoke", {"token": tokens["refresh_token"]})
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert me_status(live, tokens["access_token"]) == 200
    assert refresh_status(live, tokens["refresh_token"]) == 200


def test_revocation_is_audited_with_the_client(
    live: LiveServer, email: str, client_creds: tuple[str, str]
) -> None:
    """A revocation leaves a token_revoked event naming the client and the token type."""
    tokens = token_login(live, email)
    user_id = payload(tokens["access_token"])["sub"]
    assert revoke(live, client_creds, tokens["access_token"]).status_code == 200

    async def events(store: Store) -> list[AuditEvent]:
        return await store.list_audit(user_id=user_id, kind=audit.TOKEN_REVOKED, limit=100)

    client_id = client_creds[0]

    async def name(store: Store) -> str:
        client = await store.get_client(client_id)
        assert client is not None
        return client.name

    details = [event.detail for event in in_store(live, events)]
    assert {"client": in_store(live, name), "token_type": "access_token"} in details


def test_a_removed_client_is_refused_at_once(live: LiveServer) -> None:
    """Client credentials stop working on the next request after removal."""
    creds = add_client(live)
    assert introspect(live, creds, "garbage").status_code == 200

    async def remove(store: Store) -> bool:
        return await store.delete_client(creds[0])

    assert in_store(live, remove) is True
    answer = introspect(live, creds, "garbage")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_password_change_makes_older_access_tokens_inactive(
    live: LiveServer, client_creds: tuple[str, str]
) -> None:
    """A password change cuts off the user's access tokens issued before it (a user
    revocation), while the pair it answers, issued in the same second, is active."""
    email = live.register()
    old = token_login(live, email)
    with http(live) as client:
        changed = client.post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": PASSWORD + " changed"},
            headers={"Authorization": f"Bearer {old['access_token']}"},
        )
    assert changed.status_code == 200, changed.text
    new = changed.json()
    assert introspect(live, client_creds, old["access_token"]).json() == INACTIVE
    assert introspect(live, client_creds, old["refresh_token"]).json() == INACTIVE
    assert me_status(live, old["access_token"]) == 401
    assert introspect(live, client_creds, new["access_token"]).json()["active"] is True
    assert introspect(live, client_creds, new["refresh_token"]).json()["active"] is True
    assert me_status(live, new["access_token"]) == 200


def test_refresh_token_of_a_locked_user_is_inactive(
    live: LiveServer, client_creds: tuple[str, str]
) -> None:
    """Introspection reads the account: once it is locked (here straight in the store,
    with no family ended), its refresh token is inactive."""
    email = live.register()
    tokens = token_login(live, email)
    user_id = payload(tokens["access_token"])["sub"]
    assert introspect(live, client_creds, tokens["refresh_token"]).json()["active"] is True

    async def lock(store: Store) -> bool:
        return await store.set_locked(user_id, True)

    assert in_store(live, lock) is True
    assert introspect(live, client_creds, tokens["refresh_token"]).json() == INACTIVE


def test_revocation_reaches_another_instance(tmp_path: Path) -> None:
    """Two servers on one database: a token revoked through one is refused by the other
    within a few poll intervals (T9; propagation is by polling the stream)."""
    data = tmp_path / "shared"
    # One deployment: one issuer, whatever port each instance listens on.
    issuer = "http://twofold.test"
    first, running_first = start_server(data, FrozenClock(time.time()), issuer=issuer)
    try:
        second, running_second = start_server(data, FrozenClock(time.time()), issuer=issuer)
        try:
            creds = add_client(first)
            tokens = token_login(first, first.register())
            access = tokens["access_token"]
            assert me_status(second, access) == 200
            assert revoke(first, creds, tokens["refresh_token"]).status_code == 200
            assert me_status(first, access) == 401
            deadline = time.monotonic() + 1.0 + 5 * second.settings.event_poll_interval
            while me_status(second, access) != 401:
                assert time.monotonic() < deadline, "the other instance still accepts it"
                time.sleep(0.02)
            assert introspect(second, creds, access).json() == INACTIVE
            assert refresh_status(second, tokens["refresh_token"]) == 401
        finally:
            stop_server(running_second)
    finally:
        stop_server(running_first)


NON_ASCII_BASIC = {
    "latin1-bytes": b"Basic \xff\xfe",
    "e-acute": "Basic \u00e9t\u00e9".encode("latin-1"),
    "valid-then-non-ascii": b"Basic YWJjOmRlZg==\xe9",
}


@pytest.mark.parametrize("header", list(NON_ASCII_BASIC.values()), ids=list(NON_ASCII_BASIC))
def test_non_ascii_basic_credentials_are_invalid_client(live: LiveServer, header: bytes) -> None:
    """Bytes outside ASCII in the Basic credentials: 401 invalid_client, never 500 (T7)."""
    headers = {b"Content-Type": FORM.encode(), b"Authorization": header}
    with http(live) as client:
        answer = client.post("/oauth/introspect", content=b"token=x", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"


# -- discovery ---------------------------------------------------------------------------

DISCOVERY = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def _walk_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _walk_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _walk_keys(v)}
    return set()


@pytest.mark.parametrize("path", DISCOVERY, ids=["openid", "rfc8414"])
def test_discovery_points_at_working_endpoints(live: LiveServer, path: str) -> None:
    """issuer is the server's; jwks_uri answers the key set; the introspection and
    revocation endpoints exist (401 without credentials, not 404); the signing algorithm
    is listed; both client authentication methods are advertised."""
    with http(live) as client:
        answer = client.get(path)
        assert answer.status_code == 200
        document = answer.json()
        assert document["issuer"] == live.settings.effective_issuer
        assert document["issuer"] == live.url
        assert document["jwks_uri"] == f"{live.url}/.well-known/jwks.json"
        jwks = client.get(document["jwks_uri"])
        assert jwks.status_code == 200
        kids = {key["kid"] for key in jwks.json()["keys"]}
        assert live.runtime.keyring.signing_key.kid in kids
        for name in ("introspection_endpoint", "revocation_endpoint"):
            assert document[name].startswith(live.url + "/oauth/")
            refused = client.post(document[name], data={"token": "x"})
            assert refused.status_code == 401, name
            assert refused.json()["error"] == "invalid_client"
            assert document[f"{name}_auth_methods_supported"] == [
                "client_secret_basic",
                "client_secret_post",
            ]
    assert document["access_token_signing_alg_values_supported"] == [
        live.settings.signing_algorithm
    ]
    assert "none" not in document["access_token_signing_alg_values_supported"]
    assert not PRIVATE_MEMBERS & _walk_keys(document)


def test_both_discovery_documents_are_the_same(live: LiveServer) -> None:
    """The OpenID and RFC 8414 locations serve one document."""
    with http(live) as client:
        first, second = (client.get(path).json() for path in DISCOVERY)
    assert first == second


def test_hmac_server_publishes_no_secret(make_server: ServerFactory) -> None:
    """With an HS256 key: discovery lists HS256, the JWKS publishes no key at all, and the
    secret appears in neither document, in any encoding (T10)."""
    server = make_server(signing_algorithm="HS256")
    secret = server.runtime.keyring.signing_key.to_material()
    assert len(secret) >= 32
    encodings = {
        b64url_encode(secret),
        base64.b64encode(secret).decode(),
        secret.hex(),
        secret.hex().upper(),
    }
    with http(server) as client:
        texts = [client.get(path).text for path in [*DISCOVERY, "/.well-known/jwks.json"]]
    document = json.loads(texts[0])
    assert document["access_token_signing_alg_values_supported"] == ["HS256"]
    assert json.loads(texts[2]) == {"keys": []}
    for text in texts:
        assert not PRIVATE_MEMBERS & _walk_keys(json.loads(text))
        for encoded in encodings:
            assert encoded not in text
