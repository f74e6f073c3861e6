"""Which origins may change state with a cookie (SECURITY.md B1): the public URL's, its
loopback aliases in development, and the CORS allow-list; never whatever Host says."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory
from twofold.http.csrf import own_origins


def session_login(server: LiveServer) -> tuple[dict[str, str], str]:
    """A session of a new account: its cookies and CSRF token."""
    email = server.register()
    with server.client() as client:
        answer = client.post(
            "/auth/login",
            json={"email": email, "password": PASSWORD, "mode": "session"},
            headers={"Origin": server.settings.effective_public_url},
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.cookies.items()), answer.json()["csrf_token"]


def test_the_host_header_does_not_make_an_origin_trusted(make_server: ServerFactory) -> None:
    """A request whose Host and Origin both name another site (DNS rebinding, a
    misrouted proxy) is refused even with a valid token."""
    server = make_server(public_url="https://auth.example.com")
    cookies, token = session_login(server)
    with server.client(cookies=cookies) as client:
        answer = client.post(
            "/auth/logout",
            headers={
                "Host": "evil.example",
                "Origin": "http://evil.example",
                "X-CSRF-Token": token,
            },
        )
        assert answer.status_code == 403
        answer = client.post(
            "/auth/logout",
            headers={"Origin": "https://auth.example.com", "X-CSRF-Token": token},
        )
        assert answer.status_code == 204


def test_loopback_aliases_are_one_server_in_development(live: LiveServer) -> None:
    port = live.url.rsplit(":", 1)[1]
    cookies, token = session_login(live)
    with live.client(cookies=cookies) as client:
        answer = client.post(
            "/auth/logout", headers={"Origin": f"http://localhost:{port}", "X-CSRF-Token": token}
        )
        assert answer.status_code == 204


def test_own_origins() -> None:
    assert own_origins("https://auth.example.com") == {"https://auth.example.com"}
    assert own_origins("http://127.0.0.1:8000") == {
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "http://[::1]:8000",
    }
    # Another port of this machine is another origin.
    assert "http://localhost:9000" not in own_origins("http://localhost:8000")


@pytest.mark.parametrize(
    "referer",
    ["http://[", "https://x]/", "not a url", "//evil.example/", "http://own@evil.example/"],
)
def test_a_malformed_or_foreign_referer_is_refused_not_a_500(
    live: LiveServer, referer: str
) -> None:
    cookies, token = session_login(live)
    with live.client(cookies=cookies) as client:
        answer = client.post("/auth/logout", headers={"Referer": referer, "X-CSRF-Token": token})
        assert answer.status_code == 403
        assert answer.json()["error"] == "csrf_failed"
        for path in ("/login", "/register"):
            page = client.post(path, data={"email": "a@b.example"}, headers={"Referer": referer})
            assert page.status_code == 403


def test_the_default_port_is_the_same_origin() -> None:
    assert own_origins("https://auth.example.com:443") == {"https://auth.example.com"}
