"""CORS from the configured allow-list only (SECURITY.md B2): allowed, refused and `null`
origins, simple requests and preflights; never `*`, never credentials for a stranger."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory
from twofold.config import Settings

APP = "https://app.example.com"
STRANGER = "https://evil.example.net"


@pytest.fixture
def server(make_server: ServerFactory) -> LiveServer:
    return make_server(cors_origins=[APP, "http://localhost:5173"])


def preflight(server: LiveServer, origin: str | None, **headers: str) -> httpx.Response:
    sent = {"Access-Control-Request-Method": "POST", **headers}
    if origin is not None:
        sent["Origin"] = origin
    with server.client() as client:
        return client.options("/auth/login", headers=sent)


def test_an_allowed_origin_gets_its_own_origin_and_credentials(server: LiveServer) -> None:
    with server.client() as client:
        answer = client.get("/healthz", headers={"Origin": APP})
    assert answer.headers["access-control-allow-origin"] == APP
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in answer.headers["vary"]
    assert "Retry-After" in answer.headers["access-control-expose-headers"]


@pytest.mark.parametrize("origin", [STRANGER, "null", "https://app.example.com.evil.net", "*"])
def test_other_origins_get_no_cors_header_at_all(server: LiveServer, origin: str) -> None:
    with server.client() as client:
        answer = client.get("/healthz", headers={"Origin": origin})
    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.startswith("access-control-")]
    assert "Origin" in answer.headers["vary"]


def test_an_allowed_preflight_answers_204_with_what_may_be_sent(server: LiveServer) -> None:
    answer = preflight(
        server, APP, **{"Access-Control-Request-Headers": "content-type, x-csrf-token"}
    )
    assert answer.status_code == 204
    headers = answer.headers
    assert headers["access-control-allow-origin"] == APP
    assert headers["access-control-allow-credentials"] == "true"
    assert "POST" in headers["access-control-allow-methods"]
    assert "x-csrf-token" in headers["access-control-allow-headers"]
    assert int(headers["access-control-max-age"]) > 0


@pytest.mark.parametrize(
    ("origin", "extra"),
    [
        (STRANGER, {}),
        ("null", {}),
        (None, {}),
        (APP, {"Access-Control-Request-Method": "PATCH"}),
        (APP, {"Access-Control-Request-Headers": "x-something-else"}),
    ],
)
def test_a_refused_preflight_is_a_json_403_without_cors_headers(
    server: LiveServer, origin: str | None, extra: dict[str, str]
) -> None:
    answer = preflight(server, origin, **extra)
    assert answer.status_code == 403
    assert answer.json()["error"] == "cors_refused"
    headers = answer.headers
    assert "access-control-allow-origin" not in headers
    assert "access-control-allow-credentials" not in headers


def test_without_an_allow_list_no_origin_is_allowed(live: LiveServer) -> None:
    with live.client() as client:
        answer = client.get("/healthz", headers={"Origin": "http://localhost:3000"})
        assert "access-control-allow-origin" not in answer.headers
        refused = client.options(
            "/auth/me", headers={"Origin": live.url, "Access-Control-Request-Method": "GET"}
        )
        assert refused.status_code == 403


def test_an_allowed_origin_may_change_state_with_the_csrf_token(server: LiveServer) -> None:
    """An origin trusted with credentials passes the CSRF origin check (the token is
    still needed); a stranger with a valid token does not."""
    email = server.register()
    with server.client() as client:
        login = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
        )
        token = login.json()["csrf_token"]
        foreign = client.post("/auth/logout", headers={"Origin": STRANGER, "X-CSRF-Token": token})
        assert foreign.status_code == 403
        allowed = client.post("/auth/logout", headers={"Origin": APP, "X-CSRF-Token": token})
        assert allowed.status_code == 204


@pytest.mark.parametrize(
    "origin", ["*", "null", "https://app.example.com/", "https://a.example/path", "ftp://a.b", ""]
)
def test_the_allow_list_refuses_wildcards_null_and_non_origins(origin: str) -> None:
    with pytest.raises(ValueError, match="cors_origins"):
        Settings(cors_origins=[origin])


def test_origins_are_kept_as_browsers_send_them() -> None:
    assert Settings(cors_origins=["https://App.Example.com:443"]).cors_origins == [
        "https://app.example.com"
    ]
    for bad in ("https://app.example.com.", "https://bücher.example"):
        with pytest.raises(ValueError, match="cors_origins"):
            Settings(cors_origins=[bad])


def test_an_https_server_refuses_plain_http_origins_except_loopback() -> None:
    with pytest.raises(ValueError, match="plain http"):
        Settings(public_url="https://auth.example.com", cors_origins=["http://app.example.com"])
    allowed = Settings(
        public_url="https://auth.example.com", cors_origins=["http://localhost:5173"]
    )
    assert allowed.cors_origins == ["http://localhost:5173"]
