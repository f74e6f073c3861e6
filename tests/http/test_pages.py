"""The server-rendered pages: forms with CSRF tokens, escaping, headers, no JavaScript."""

from __future__ import annotations

import re

import httpx

from tests.conftest import PASSWORD, LiveServer

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(page: httpx.Response) -> str:
    match = TOKEN.search(page.text)
    assert match, "the form has no CSRF token"
    return match.group(1)


def page_login(live: LiveServer, client: httpx.Client, email: str) -> httpx.Response:
    token = form_token(client.get("/login"))
    return client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})


def test_pages_send_strict_security_headers(live: LiveServer) -> None:
    """Pages carry a CSP with no script source, frame-ancestors 'none', nosniff and a
    Referrer-Policy (B3), and no inline script or style."""
    with live.client() as client:
        for path in ("/login", "/register"):
            page = client.get(path)
            assert page.status_code == 200
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp
            assert "frame-ancestors 'none'" in csp
            assert "script-src" not in csp
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["referrer-policy"] == "same-origin"
            assert "<script" not in page.text
            assert "style=" not in page.text


def test_register_then_login_through_the_forms(live: LiveServer) -> None:
    """Register form → login form → profile page showing who and how, then log out."""
    email = live.new_email()
    with live.client() as client:
        token = form_token(client.get("/register"))
        registered = client.post(
            "/register", data={"email": email, "password": PASSWORD, "csrf_token": token}
        )
        assert registered.status_code == 303
        assert registered.headers["location"] == "/login?registered=1"
        logged_in = page_login(live, client, email)
        assert logged_in.status_code == 303
        assert logged_in.headers["location"] == "/"
        profile = client.get("/")
        assert profile.status_code == 200
        assert email in profile.text
        assert "server-side session" in profile.text
        logout_token = form_token(profile)
        out = client.post("/logout", data={"csrf_token": logout_token})
        assert out.status_code == 303
        assert client.get("/").headers["location"] == "/login"


def test_profile_requires_a_session(live: LiveServer) -> None:
    """Without a session the profile page redirects to the login page."""
    with live.client() as client:
        answer = client.get("/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"


def test_login_form_without_its_csrf_token_is_refused(live: LiveServer) -> None:
    """A login form post without the token bound to the form cookie is refused (login CSRF)."""
    email = live.register()
    with live.client() as client:
        client.get("/login")
        missing = client.post("/login", data={"email": email, "password": PASSWORD})
        forged = client.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": "A" * 43}
        )
    assert missing.status_code == 403
    assert forged.status_code == 403
    assert "twofold_session" not in missing.headers.get("set-cookie", "")


def test_a_form_posted_from_another_origin_is_refused(live: LiveServer) -> None:
    """A valid token is still refused when the Origin names another site (B1)."""
    email = live.register()
    with live.client() as client:
        token = form_token(client.get("/login"))
        answer = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": token},
            headers={"Origin": "http://evil.example"},
        )
    assert answer.status_code == 403


def test_logout_form_needs_the_session_token(live: LiveServer) -> None:
    """The logout form without its token ends nothing; the user is sent back to the
    profile, whose fresh form works."""
    email = live.register()
    with live.client() as client:
        page_login(live, client, email)
        answer = client.post("/logout", data={"csrf_token": "wrong"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"
        assert "set-cookie" not in answer.headers
        assert client.get("/").status_code == 200


def test_wrong_password_on_the_form_is_a_friendly_error(live: LiveServer) -> None:
    """A failed form login re-renders the form with a message and status 401."""
    email = live.register()
    with live.client() as client:
        token = form_token(client.get("/login"))
        answer = client.post(
            "/login", data={"email": email, "password": "wrong password", "csrf_token": token}
        )
    assert answer.status_code == 401
    assert "incorrect" in answer.text
    assert "wrong password" not in answer.text


def test_output_is_escaped(live: LiveServer) -> None:
    """User-controlled text is HTML-escaped on every page (B3)."""
    email = f"o'neil&co-{live.new_email()}"
    with live.client() as client:
        token = form_token(client.get("/register"))
        client.post("/register", data={"email": email, "password": PASSWORD, "csrf_token": token})
        page_login(live, client, email)
        profile = client.get("/")
        assert "o&#39;neil&amp;co" in profile.text
        assert "o'neil&co" not in profile.text
        bad = client.post(
            "/login",
            data={
                "email": '"><img src=x onerror=alert(1)>',
                "password": "x",
                "csrf_token": form_token(client.get("/register")),
            },
        )
    assert "<img src=x" not in bad.text


def test_forms_posted_as_a_browser_does_are_accepted(live: LiveServer) -> None:
    """A browser sends its own Origin on same-origin form posts: that is accepted, and
    'Origin: null' (what no-referrer pages cause) is refused (B1)."""
    email = live.register()
    with live.client() as client:
        token = form_token(client.get("/login"))
        fields = {"email": email, "password": PASSWORD, "csrf_token": token}
        null = client.post("/login", data=fields, headers={"Origin": "null"})
        assert null.status_code == 403
        token = form_token(client.get("/login"))
        fields["csrf_token"] = token
        own = client.post("/login", data=fields, headers={"Origin": live.url})
        assert own.status_code == 303


def test_form_login_replaces_an_existing_session(live: LiveServer) -> None:
    """Logging in through the form with a session cookie set ends that session (S3)."""
    email = live.register()
    with live.client() as client:
        page_login(live, client, email)
        first = client.cookies["twofold_session"]
        client.cookies.clear()
        client.cookies.set("twofold_session", first, domain="127.0.0.1")
        token = form_token(client.get("/register"))
        client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        second = client.cookies["twofold_session"]
    assert second != first
    with live.client(cookies={"twofold_session": first}) as replay:
        assert replay.get("/auth/me").status_code == 401
