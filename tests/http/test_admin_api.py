"""The admin API over a real socket: authorization, the bank scenario (lock), role changes,
key rotation and the JWKS, who is logged in, and the audit log (S7, S8, T9, T10, B1)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory
from twofold.jose.b64 import b64url_decode

COOKIE = "twofold_session"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


# -- helpers ---------------------------------------------------------------------------


def http(live: LiveServer, **kwargs: Any) -> httpx.Client:
    """A client for the plain-HTTP loopback server; verify=False skips building a TLS
    context (~50 ms a client) that would never be used."""
    return live.client(verify=False, **kwargs)


def grant(live: LiveServer, email: str, *roles: str) -> str:
    """Give a user these roles through the server's own core, on its loop; returns the id."""

    async def run() -> str:
        user = await live.runtime.admin.find_user(email)
        await live.runtime.authority.accounts.set_roles(user.id, roles)
        return user.id

    return live.call(run())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_login(live: LiveServer, email: str, password: str = PASSWORD) -> dict[str, Any]:
    with http(live) as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": password, "mode": "jwt"}
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def refresh(live: LiveServer, refresh_token: str) -> httpx.Response:
    with http(live) as client:
        return client.post("/auth/refresh", json={"refresh_token": refresh_token})


def me(live: LiveServer, token: str) -> httpx.Response:
    with http(live) as client:
        return client.get("/auth/me", headers=bearer(token))


@contextmanager
def session_client(
    live: LiveServer, email: str, user_agent: str = "Twofold-Test"
) -> Iterator[httpx.Client]:
    """A logged-in browser-like client: session cookie, same Origin, CSRF header set."""
    with http(live, headers={"Origin": live.url, "User-Agent": user_agent}) as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
        )
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        yield client


def jws_header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(b64url_decode(token.split(".")[0]))
    return header


def jws_payload(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return payload


def jwks(live: LiveServer) -> list[dict[str, str]]:
    with http(live) as client:
        answer = client.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    keys: list[dict[str, str]] = answer.json()["keys"]
    return keys


@dataclass
class Admin:
    """An admin calling with a Bearer token (no CSRF needed)."""

    live: LiveServer
    id: str
    email: str
    token: str

    def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        with http(self.live) as client:
            return client.request(
                method, path, headers={**bearer(self.token), **(headers or {})}, **kwargs
            )


def make_admin(live: LiveServer) -> Admin:
    email = live.register()
    admin_id = grant(live, email, "user", "admin")
    return Admin(live, admin_id, email, token_login(live, email)["access_token"])


def user_id_of(live: LiveServer, email: str) -> str:
    token = token_login(live, email)["access_token"]
    answer = me(live, token)
    assert answer.status_code == 200
    user_id: str = answer.json()["id"]
    return user_id


def assert_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == code


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> Admin:
    """One admin for the shared server (nothing here locks or demotes it)."""
    return make_admin(live)


@pytest.fixture(scope="module")
def bystander(live: LiveServer) -> str:
    """A plain user's id, for requests that must change nothing."""
    return user_id_of(live, live.register())


# -- who may call ----------------------------------------------------------------------

ANY_ID = "7d0c3e3a-0000-4000-8000-000000000000"
ROUTES = [
    pytest.param("GET", "/admin/users", None, id="list-users"),
    pytest.param("GET", f"/admin/users/{ANY_ID}", None, id="get-user"),
    pytest.param("POST", f"/admin/users/{ANY_ID}/lock", None, id="lock"),
    pytest.param("POST", f"/admin/users/{ANY_ID}/unlock", None, id="unlock"),
    pytest.param("PUT", f"/admin/users/{ANY_ID}/roles", {"roles": ["admin"]}, id="roles"),
    pytest.param("GET", "/admin/sessions", None, id="list-sessions"),
    pytest.param("DELETE", "/admin/sessions/f_" + ANY_ID, None, id="end-session"),
    pytest.param("GET", "/admin/keys", None, id="list-keys"),
    pytest.param("POST", "/admin/keys/rotate", {"compromised": False}, id="rotate"),
    pytest.param("GET", "/admin/audit", None, id="audit"),
]


@dataclass
class PlainUser:
    token: str
    session: httpx.Client


@pytest.fixture(scope="module")
def plain_user(live: LiveServer) -> Iterator[PlainUser]:
    email = live.register()
    with session_client(live, email) as client:
        yield PlainUser(token_login(live, email)["access_token"], client)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_a_bearer_without_the_admin_role_is_forbidden(
    live: LiveServer, plain_user: PlainUser, method: str, path: str, body: object
) -> None:
    """Every admin route answers a plain user's Bearer token with 403 `forbidden`."""
    with http(live) as client:
        answer = client.request(method, path, json=body, headers=bearer(plain_user.token))
    assert_error(answer, 403, "forbidden")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_a_session_without_the_admin_role_is_forbidden(
    plain_user: PlainUser, method: str, path: str, body: object
) -> None:
    """Every admin route answers a plain user's session (with CSRF proof) with 403."""
    answer = plain_user.session.request(method, path, json=body)
    assert_error(answer, 403, "forbidden")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_anonymous_callers_get_401(live: LiveServer, method: str, path: str, body: object) -> None:
    """Every admin route answers a request without credentials with 401."""
    with http(live) as client:
        answer = client.request(method, path, json=body)
    assert_error(answer, 401, "unauthenticated")
    assert answer.headers["www-authenticate"] == 'Bearer realm="twofold"'


def test_a_cookie_admin_change_needs_csrf_proof(live: LiveServer) -> None:
    """An admin's cookie-authenticated lock needs the CSRF token and our Origin (B1)."""
    email = live.register()
    grant(live, email, "user", "admin")
    victim = live.register()
    victim_id = user_id_of(live, victim)
    with session_client(live, email) as client:
        token = client.headers.pop("X-CSRF-Token")
        assert_error(client.post(f"/admin/users/{victim_id}/lock"), 403, "csrf_failed")
        foreign = {"X-CSRF-Token": token, "Origin": "https://evil.example"}
        assert_error(
            client.post(f"/admin/users/{victim_id}/lock", headers=foreign), 403, "csrf_failed"
        )
        assert client.get(f"/admin/users/{victim_id}").json()["locked"] is False
        done = client.post(f"/admin/users/{victim_id}/lock", headers={"X-CSRF-Token": token})
    assert done.status_code == 200
    assert done.json()["locked"] is True


def test_admin_lists_and_reads_users(live: LiveServer, admin: Admin) -> None:
    """GET /admin/users pages accounts; GET /admin/users/{id} answers one, 404 if unknown;
    neither shows a password hash."""
    email = live.register()
    user_id = user_id_of(live, email)
    one = admin.call("GET", f"/admin/users/{user_id}")
    assert one.status_code == 200
    body = one.json()
    assert set(body) == {"id", "email", "roles", "locked", "created_at"}
    assert (body["email"], body["roles"], body["locked"]) == (email, ["user"], False)
    listed = admin.call("GET", "/admin/users", params={"limit": 2})
    assert listed.status_code == 200
    assert len(listed.json()["users"]) == 2
    assert "argon2" not in listed.text
    assert_error(admin.call("GET", f"/admin/users/{uuid.uuid4()}"), 404, "not_found")


# -- lock: the bank scenario -----------------------------------------------------------


def test_lock_ends_every_session_and_token_at_once(live: LiveServer, admin: Admin) -> None:
    """After a lock, with no clock movement, the session cookie, the unexpired access token
    and the refresh token are all refused on the very next request, and login is refused;
    unlocking allows login again but never revives the old credentials (S7, T9)."""
    email = live.register()
    with session_client(live, email) as browser:
        pair = token_login(live, email)
        user_id = me(live, pair["access_token"]).json()["id"]
        assert browser.get("/auth/me").status_code == 200

        locked = admin.call("POST", f"/admin/users/{user_id}/lock")
        assert locked.status_code == 200
        assert locked.json()["locked"] is True

        assert_error(browser.get("/auth/me"), 401, "unauthenticated")
    refused = me(live, pair["access_token"])
    assert_error(refused, 401, "invalid_token")
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert_error(refresh(live, pair["refresh_token"]), 401, "invalid_grant")
    with http(live) as client:
        for mode in ("session", "jwt"):
            login = client.post(
                "/auth/login", json={"email": email, "password": PASSWORD, "mode": mode}
            )
            assert_error(login, 401, "invalid_credentials")

    unlocked = admin.call("POST", f"/admin/users/{user_id}/unlock")
    assert unlocked.status_code == 200
    assert unlocked.json()["locked"] is False
    fresh = token_login(live, email)
    assert me(live, fresh["access_token"]).status_code == 200
    with session_client(live, email) as again:
        assert again.get("/auth/me").status_code == 200
    assert_error(me(live, pair["access_token"]), 401, "invalid_token")
    assert_error(refresh(live, pair["refresh_token"]), 401, "invalid_grant")


def test_an_admin_cannot_lock_themselves(admin: Admin) -> None:
    """Locking one's own account is a 400, and the admin keeps working."""
    assert_error(admin.call("POST", f"/admin/users/{admin.id}/lock"), 400, "invalid_request")
    assert admin.call("GET", f"/admin/users/{admin.id}").json()["locked"] is False


@pytest.mark.parametrize("action", ["lock", "unlock"])
def test_lock_or_unlock_of_an_unknown_user_is_404(admin: Admin, action: str) -> None:
    """An unknown user id is 404 `not_found`, for lock and unlock alike."""
    answer = admin.call("POST", f"/admin/users/{uuid.uuid4()}/{action}")
    assert_error(answer, 404, "not_found")


# -- roles ------------------------------------------------------------------------------


def test_role_change_takes_effect_on_the_next_request(live: LiveServer, admin: Admin) -> None:
    """New roles: the old access token is refused at once, the refresh carries the new
    roles, and the session shows them on its next request (T9)."""
    email = live.register()
    pair = token_login(live, email)
    user_id = me(live, pair["access_token"]).json()["id"]
    with session_client(live, email) as browser:
        assert browser.get("/auth/me").json()["roles"] == ["user"]

        changed = admin.call(
            "PUT", f"/admin/users/{user_id}/roles", json={"roles": ["user", "auditor"]}
        )
        assert changed.status_code == 200
        assert changed.json()["roles"] == ["user", "auditor"]

        assert_error(me(live, pair["access_token"]), 401, "invalid_token")
        renewed = refresh(live, pair["refresh_token"])
        assert renewed.status_code == 200, renewed.text
        new_token = renewed.json()["access_token"]
        assert jws_payload(new_token)["roles"] == ["user", "auditor"]
        assert me(live, new_token).json()["roles"] == ["user", "auditor"]
        assert browser.get("/auth/me").json()["roles"] == ["user", "auditor"]


def test_granting_admin_works_at_once_and_revoking_it_too(live: LiveServer, admin: Admin) -> None:
    """A user made admin reaches /admin with the next session request; demoted, the
    session is forbidden again on the next request."""
    email = live.register()
    user_id = user_id_of(live, email)
    with session_client(live, email) as browser:
        assert browser.get("/admin/keys").status_code == 403
        grant_admin = {"roles": ["user", "admin"]}
        assert (
            admin.call("PUT", f"/admin/users/{user_id}/roles", json=grant_admin).status_code == 200
        )
        assert browser.get("/admin/keys").status_code == 200
        assert (
            admin.call("PUT", f"/admin/users/{user_id}/roles", json={"roles": ["user"]}).status_code
            == 200
        )
        assert_error(browser.get("/admin/keys"), 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"roles": ["User"]}, 400, id="uppercase"),
        pytest.param({"roles": ["1user"]}, 400, id="leading-digit"),
        pytest.param({"roles": [""]}, 400, id="empty-name"),
        pytest.param({"roles": ["a" * 33]}, 400, id="name-too-long"),
        pytest.param({"roles": ["r o"]}, 400, id="space"),
        pytest.param({"roles": [f"r{i}" for i in range(17)]}, 422, id="too-many"),
        pytest.param({"roles": [1]}, 422, id="integer"),
        pytest.param({"roles": [None]}, 422, id="null-item"),
        pytest.param({"roles": [["user"]]}, 422, id="nested-list"),
        pytest.param({"roles": "user"}, 422, id="string-not-list"),
        pytest.param({"roles": None}, 422, id="null"),
        pytest.param({}, 422, id="missing"),
        pytest.param({"roles": ["user"], "extra": 1}, 422, id="unknown-field"),
    ],
)
def test_invalid_roles_are_a_client_error(
    admin: Admin, bystander: str, body: dict[str, Any], status: int
) -> None:
    """Malformed roles get a JSON 400/422 `invalid_request`, never a 500, and change nothing."""
    user_id = bystander
    answer = admin.call("PUT", f"/admin/users/{user_id}/roles", json=body)
    assert_error(answer, status, "invalid_request")
    assert admin.call("GET", f"/admin/users/{user_id}").json()["roles"] == ["user"]


def test_roles_body_that_is_not_json_is_400(admin: Admin, bystander: str) -> None:
    """A broken JSON body is a 400 `invalid_json`."""
    broken = admin.call(
        "PUT",
        f"/admin/users/{bystander}/roles",
        content=b'{"roles": [',
        headers={"Content-Type": "application/json"},
    )
    assert_error(broken, 400, "invalid_json")


@pytest.mark.parametrize(
    ("path", "content_type", "content"),
    [
        pytest.param(
            "/admin/users/{id}/roles",
            "application/x-www-form-urlencoded",
            b"roles=admin",
            id="roles-form",
        ),
        pytest.param(
            "/admin/users/{id}/roles", "text/plain", b'{"roles": ["user"]}', id="roles-text"
        ),
        pytest.param("/admin/keys/rotate", "text/plain", b'{"compromised": true}', id="rotate"),
    ],
)
def test_admin_json_routes_refuse_other_media_types(
    admin: Admin, bystander: str, path: str, content_type: str, content: bytes
) -> None:
    """Like every JSON route, admin routes refuse a form or text/plain body with 415 before
    parsing it (what a cross-site form can send without a preflight)."""
    method = "PUT" if "roles" in path else "POST"
    answer = admin.call(
        method,
        path.format(id=bystander),
        content=content,
        headers={"Content-Type": content_type},
    )
    assert_error(answer, 415, "unsupported_media_type")


def test_roles_of_an_unknown_user_is_404(admin: Admin) -> None:
    answer = admin.call("PUT", f"/admin/users/{uuid.uuid4()}/roles", json={"roles": ["user"]})
    assert_error(answer, 404, "not_found")


# -- keys ------------------------------------------------------------------------------


def test_normal_rotation_keeps_old_tokens_and_signs_with_the_new_key(
    fresh_live: LiveServer,
) -> None:
    """After a normal rotation old tokens still verify, new ones carry the new kid, and the
    JWKS lists both keys."""
    live = fresh_live
    admin = make_admin(live)
    old_kid = jws_header(admin.token)["kid"]
    assert [k["kid"] for k in jwks(live)] == [old_kid]

    rotated = admin.call("POST", "/admin/keys/rotate", json={"compromised": False})
    assert rotated.status_code == 200
    body = rotated.json()
    new_kid = body["kid"]
    assert new_kid != old_kid
    assert (body["alg"], body["previous"], body["compromised"]) == ("ES256", [old_kid], False)

    assert me(live, admin.token).status_code == 200
    new = token_login(live, admin.email)["access_token"]
    assert jws_header(new)["kid"] == new_kid
    assert me(live, new).status_code == 200
    assert {k["kid"] for k in jwks(live)} == {old_kid, new_kid}

    states = {k["kid"]: k for k in admin.call("GET", "/admin/keys").json()["keys"]}
    assert states[old_kid]["state"] == "verify"
    assert states[old_kid]["retire_after"] is not None
    assert states[new_kid]["state"] == "active"
    assert states[new_kid]["retire_after"] is None


def test_compromised_rotation_refuses_old_tokens_at_once(fresh_live: LiveServer) -> None:
    """A rotation for a compromised key retires every older key (active and verifying):
    their tokens are refused on the next request and the JWKS drops them (T9)."""
    live = fresh_live
    email = live.register()
    grant(live, email, "user", "admin")
    holder = live.register()
    with session_client(live, email) as admin:
        first = token_login(live, holder)
        first_kid = jws_header(first["access_token"])["kid"]
        second_kid = admin.post("/admin/keys/rotate", json={}).json()["kid"]
        second = token_login(live, holder)["access_token"]
        assert jws_header(second)["kid"] == second_kid

        rotated = admin.post("/admin/keys/rotate", json={"compromised": True})
        assert rotated.status_code == 200
        body = rotated.json()
        third_kid = body["kid"]
        assert body["compromised"] is True
        assert set(body["previous"]) == {first_kid, second_kid}

        for token in (first["access_token"], second):
            assert_error(me(live, token), 401, "invalid_token")
        assert [k["kid"] for k in jwks(live)] == [third_kid]
        third = token_login(live, holder)["access_token"]
        assert jws_header(third)["kid"] == third_kid
        assert me(live, third).status_code == 200
        # The refresh token is not a JWT: it lives on, and its next access token is new.
        renewed = refresh(live, first["refresh_token"])
        assert renewed.status_code == 200
        assert jws_header(renewed.json()["access_token"])["kid"] == third_kid

        states = {k["kid"]: k["state"] for k in admin.get("/admin/keys").json()["keys"]}
        assert states == {first_kid: "retired", second_kid: "retired", third_kid: "active"}
        assert admin.get("/auth/me").status_code == 200  # a session is no JWT


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "RS256", "HS256"])
def test_jwks_and_key_list_never_show_private_material(
    make_server: ServerFactory, algorithm: str
) -> None:
    """Before and after a rotation (with no body: a normal one), the JWKS holds no private
    or symmetric member, an HS256 server publishes `{"keys": []}`, and GET /admin/keys
    holds only public facts (T10)."""
    live = make_server(signing_algorithm=algorithm)
    admin = make_admin(live)
    assert jws_header(admin.token)["alg"] == algorithm
    assert me(live, admin.token).status_code == 200
    with http(live) as client:
        first = client.get("/.well-known/jwks.json")
    if algorithm == "HS256":
        assert first.json() == {"keys": []}
    rotated = admin.call("POST", "/admin/keys/rotate")
    assert rotated.status_code == 200
    assert rotated.json()["compromised"] is False
    published = jwks(live)
    assert len(published) == (0 if algorithm == "HS256" else 2)
    for key in [*first.json()["keys"], *published]:
        assert not PRIVATE_MEMBERS & set(key)
        assert key["alg"] == algorithm
    listed = admin.call("GET", "/admin/keys")
    assert listed.status_code == 200
    keys = listed.json()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert set(key) == {"kid", "alg", "state", "created_at", "retire_after"}
        assert key["alg"] == algorithm
    for secret in live.runtime.keyring:
        material = secret.to_material()
        assert material.decode("latin-1") not in listed.text
        assert b"PRIVATE KEY" not in listed.content


# -- who is logged in ------------------------------------------------------------------


def test_admin_sees_and_ends_live_sessions_and_families(fresh_live: LiveServer) -> None:
    """GET /admin/sessions lists a user's session and token family with the e-mail;
    DELETE ends each: the cookie and the access and refresh tokens get 401 (S8, T9)."""
    live = fresh_live
    admin = make_admin(live)
    email = live.register()
    with session_client(live, email, user_agent="Browser-One") as browser:
        pair = token_login(live, email)
        user_id = me(live, pair["access_token"]).json()["id"]

        listed = admin.call("GET", "/admin/sessions")
        assert listed.status_code == 200
        mine = {d["kind"]: d for d in listed.json()["sessions"] if d["user_id"] == user_id}
        assert set(mine) == {"session", "token_family"}
        assert {d["email"] for d in mine.values()} == {email}
        assert mine["session"]["user_agent"] == "Browser-One"
        assert mine["token_family"]["id"] == "f_" + jws_payload(pair["access_token"])["sid"]
        cookie = browser.cookies[COOKIE]
        assert cookie not in listed.text
        assert pair["refresh_token"] not in listed.text

        assert admin.call("DELETE", f"/admin/sessions/{mine['session']['id']}").status_code == 204
        assert_error(browser.get("/auth/me"), 401, "unauthenticated")
    assert me(live, pair["access_token"]).status_code == 200

    assert admin.call("DELETE", f"/admin/sessions/{mine['token_family']['id']}").status_code == 204
    assert_error(me(live, pair["access_token"]), 401, "invalid_token")
    assert_error(refresh(live, pair["refresh_token"]), 401, "invalid_grant")

    after = admin.call("GET", "/admin/sessions").json()["sessions"]
    assert [d for d in after if d["user_id"] == user_id] == []
    for device in mine.values():
        assert_error(admin.call("DELETE", f"/admin/sessions/{device['id']}"), 404, "not_found")


@pytest.mark.parametrize(
    "device_id",
    [
        pytest.param("f_" + str(uuid.UUID(int=7)), id="unknown-family"),
        pytest.param("s_" + "A" * 43, id="unknown-session"),
        pytest.param("garbage", id="no-prefix"),
        pytest.param("s_short", id="short-session"),
        pytest.param("s_" + "!" * 43, id="session-not-base64"),
        pytest.param("s_" + "A" * 44, id="session-too-long"),
        pytest.param("f_", id="empty-family"),
        pytest.param("f_" + "x" * 100, id="family-too-long"),
        pytest.param("f_%C3%A9", id="family-not-ascii"),
        pytest.param("f_%00", id="family-nul"),
        pytest.param("s_%00" + "A" * 42, id="session-nul"),
    ],
)
def test_ending_an_unknown_or_malformed_device_is_404(admin: Admin, device_id: str) -> None:
    """Unknown and malformed device ids are 404 `not_found`, never a 500."""
    assert_error(admin.call("DELETE", f"/admin/sessions/{device_id}"), 404, "not_found")


# -- audit -----------------------------------------------------------------------------


def test_audit_log_pages_filters_and_keeps_no_secrets(fresh_live: LiveServer) -> None:
    """Security events appear newest first; limit/next_before pages walk them all without
    overlap; kind and user_id filter; no password, token or cookie is in the log (O2)."""
    live = fresh_live
    admin = make_admin(live)
    email = live.register()
    wrong = "not-the-password-7f3a9c"
    typed_as_email = "my-secret-passphrase-4d21"
    with http(live) as client:
        for who, password in ((email, wrong), (typed_as_email, PASSWORD)):
            failed = client.post("/auth/login", json={"email": who, "password": password})
            assert failed.status_code == 401
    with session_client(live, email) as browser:
        secrets = [PASSWORD, wrong, typed_as_email, browser.cookies[COOKIE]]
        secrets.append(str(browser.headers["X-CSRF-Token"]))
    pair = token_login(live, email)
    secrets += [pair["access_token"], pair["refresh_token"], admin.token]
    user_id = me(live, pair["access_token"]).json()["id"]
    assert admin.call("POST", f"/admin/users/{user_id}/lock").status_code == 200
    assert admin.call("POST", f"/admin/users/{user_id}/unlock").status_code == 200
    roles = {"roles": ["user", "auditor"]}
    assert admin.call("PUT", f"/admin/users/{user_id}/roles", json=roles).status_code == 200

    own = admin.call("GET", "/admin/audit", params={"user_id": user_id})
    assert own.status_code == 200
    events = own.json()["events"]
    assert [e["kind"] for e in events] == [
        "roles_changed",
        "account_unlocked",
        "account_locked",
        "login_succeeded",
        "login_succeeded",
        "login_failed",
    ]
    assert own.json()["next_before"] is None
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs, reverse=True)
    assert {e["user_id"] for e in events} == {user_id}
    assert events[0]["actor_id"] == admin.id
    assert events[0]["detail"] == {"before": ["user"], "after": ["user", "auditor"]}
    assert events[2]["actor_id"] == admin.id
    assert [e["detail"]["mode"] for e in events[3:5]] == ["jwt", "session"]
    assert events[5]["detail"] == {"mode": "session", "reason": "bad_credentials"}

    everything = admin.call("GET", "/admin/audit", params={"limit": 500}).json()
    assert everything["next_before"] is None
    all_seqs = [e["seq"] for e in everything["events"]]
    assert len(all_seqs) >= 8
    assert all_seqs == sorted(all_seqs, reverse=True)

    walked: list[int] = []
    before: int | None = None
    pages = 0
    while True:
        params: dict[str, int] = {"limit": 2} if before is None else {"limit": 2, "before": before}
        page = admin.call("GET", "/admin/audit", params=params).json()
        assert len(page["events"]) <= 2
        walked += [e["seq"] for e in page["events"]]
        pages += 1
        before = page["next_before"]
        if before is None:
            break
        assert before == page["events"][-1]["seq"]
    assert walked == all_seqs
    assert pages >= len(all_seqs) // 2

    failed = admin.call("GET", "/admin/audit", params={"kind": "login_failed"}).json()["events"]
    assert [e["kind"] for e in failed] == ["login_failed", "login_failed"]
    assert [e["user_id"] for e in failed] == [None, user_id]
    assert failed[0]["detail"] == {"mode": "session", "reason": "unknown_account"}
    both = admin.call(
        "GET", "/admin/audit", params={"kind": "account_locked", "user_id": user_id}
    ).json()["events"]
    assert [(e["kind"], e["user_id"]) for e in both] == [("account_locked", user_id)]
    nothing = admin.call("GET", "/admin/audit", params={"user_id": str(uuid.uuid4())}).json()
    assert nothing == {"events": [], "next_before": None}

    text = json.dumps(everything)
    for secret in secrets:
        assert secret not in text


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"limit": 0}, id="limit-0"),
        pytest.param({"limit": 1000}, id="limit-1000"),
        pytest.param({"limit": -1}, id="limit-negative"),
        pytest.param({"limit": "ten"}, id="limit-text"),
        pytest.param({"before": 0}, id="before-0"),
        pytest.param({"before": "x"}, id="before-text"),
        pytest.param({"before": 2**63}, id="before-over-64-bits"),
        pytest.param({"before": 10**30}, id="before-huge"),
        pytest.param({"kind": "k" * 65}, id="kind-too-long"),
        pytest.param({"user_id": "u" * 65}, id="user-too-long"),
    ],
)
def test_audit_rejects_bad_paging(admin: Admin, params: dict[str, object]) -> None:
    """Out-of-range or malformed paging parameters are a JSON 422, never a 500."""
    answer = admin.call("GET", "/admin/audit", params=params)
    # Uvicorn logs a 500's traceback after sending it; one more request waits for that, so
    # pytest never parses source (for its own traceback) while the server thread does:
    # CPython 3.11's ast module is not safe to use from two threads at once.
    assert admin.call("GET", "/healthz").status_code == 200
    assert_error(answer, 422, "invalid_request")
