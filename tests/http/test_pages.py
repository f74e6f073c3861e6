"""The server-rendered pages: forms with CSRF tokens, escaping, headers, no JavaScript;
the helpers the other page tests share."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer, ServerFactory, make_admin

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
COOKIE = "twofold_session"
#: What a browser sends when it navigates (Firefox's and Chrome's are alike).
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
FOREIGN = {"Origin": "http://evil.example"}


def form_token(page: httpx.Response) -> str:
    match = TOKEN.search(page.text)
    assert match, "the form has no CSRF token"
    return match.group(1)


def page_login(live: LiveServer, client: httpx.Client, email: str) -> httpx.Response:
    token = form_token(client.get("/login"))
    return client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})


@contextmanager
def signed_in(
    live: LiveServer, email: str, user_agent: str = "Page-Browser"
) -> Iterator[httpx.Client]:
    """A client logged in through the login form, as a browser is."""
    with live.client(headers={"User-Agent": user_agent}) as client:
        answer = page_login(live, client, email)
        assert answer.status_code == 303, answer.text
        yield client


def submit(client: httpx.Client, page: str, action: str, **fields: str) -> httpx.Response:
    """Post a form of ``page`` to ``action`` with the page's CSRF token."""
    shown = client.get(page)
    assert shown.status_code == 200, shown.text
    return client.post(action, data={"csrf_token": form_token(shown), **fields})


def alive(live: LiveServer, cookie: str) -> bool:
    """Whether a session cookie still authenticates."""
    with live.client(cookies={COOKIE: cookie}) as client:
        return client.get("/auth/me").status_code == 200


class Structure(HTMLParser):
    """What a page's accessibility and CSP rules are checked on."""

    def __init__(self) -> None:
        super().__init__()
        self.h1 = 0
        self.ids: set[str] = set()
        self.labels: set[str] = set()
        self.inputs: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.skip_link = False
        self.tables = 0
        self.captions = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(found["id"] or "")
        if tag == "h1":
            self.h1 += 1
        elif tag == "label" and found.get("for"):
            self.labels.add(found["for"] or "")
        elif tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.inputs.append(found)
        elif tag == "script" or tag == "style":
            self.inline.append(tag)
        elif tag == "a" and found.get("href") == "#main":
            self.skip_link = True
        elif tag == "table":
            self.tables += 1
        elif tag == "caption":
            self.captions += 1
        if "style" in found or any(name.startswith("on") for name in found):
            self.inline.append(f"{tag} attribute")


def assert_well_formed_page(page: httpx.Response) -> None:
    """One h1, a skip link to <main id="main">, a label for every field, captioned tables,
    no inline script or style (the CSP would block it)."""
    assert page.headers["content-type"].startswith("text/html")
    structure = Structure()
    structure.feed(page.text)
    assert structure.h1 == 1
    assert structure.skip_link
    assert "Skip to content" in page.text
    assert '<main id="main"' in page.text
    assert "main" in structure.ids
    for field in structure.inputs:
        assert field.get("id") in structure.labels, field
    assert structure.tables == structure.captions
    assert not structure.inline
    assert 'href="/static/twofold.css"' in page.text


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


@pytest.mark.parametrize("path", ["/login", "/register"], ids=["login", "register"])
def test_anonymous_pages_are_well_formed(live: LiveServer, path: str) -> None:
    """The anonymous pages follow the page contract: one h1, skip link, labelled fields."""
    with live.client() as client:
        page = client.get(path)
    assert page.status_code == 200
    assert_well_formed_page(page)


@pytest.mark.parametrize(
    "path",
    ["/", "/devices", "/account/password", "/account/email"],
    ids=["profile", "devices", "password", "email"],
)
def test_signed_in_pages_render_and_are_not_cached(live: LiveServer, path: str) -> None:
    """Each signed-in page renders for its user, with the user's nav and no-store (S9),
    and sends anyone without a session to the login page."""
    email = live.register()
    with signed_in(live, email) as client:
        page = client.get(path)
        assert page.status_code == 200
        assert_well_formed_page(page)
        assert page.headers["cache-control"] == "no-store"
        assert email in page.text
        for link in ('href="/"', 'href="/devices"', ">Log out</button>"):
            assert link in page.text
        assert 'href="/admin"' not in page.text  # not an admin
    with live.client() as anonymous:
        answer = anonymous.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"


def test_a_signed_in_page_of_an_ended_session_goes_to_login(live: LiveServer) -> None:
    """A session that ended elsewhere: the page sends the browser to log in again and
    clears the dead cookie."""
    email = live.register()
    with signed_in(live, email) as client:
        cookie = client.cookies[COOKIE]
        client.post("/logout", data={"csrf_token": form_token(client.get("/"))})
        client.cookies.set(COOKIE, cookie, domain="127.0.0.1")
        answer = client.get("/devices")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    assert f"{COOKIE}=" in answer.headers["set-cookie"]
    assert "Max-Age=0" in answer.headers["set-cookie"]


def test_profile_shows_what_changed(live: LiveServer) -> None:
    """The profile confirms a change it was sent back from, in a status message; an
    unknown value shows nothing (and is never echoed)."""
    email = live.register()
    with signed_in(live, email) as client:
        changed = client.get("/?changed=password")
        assert 'role="status"' in changed.text
        assert "password was changed" in changed.text
        other = client.get("/?changed=%3Cb%3Ehi")
        assert 'role="status"' not in other.text
        assert "<b>hi" not in other.text


def test_a_page_login_remembers_the_device(live: LiveServer) -> None:
    """A successful form login sets the known-device cookie (HttpOnly, SameSite=Strict), so
    the login throttle does not slow this browser for others' failures."""
    email = live.register()
    with live.client() as client:
        answer = page_login(live, client, email)
    cookies = answer.headers.get_list("set-cookie")
    device = [c for c in cookies if c.startswith("twofold_device=")]
    assert len(device) == 1
    assert "HttpOnly" in device[0]
    assert "SameSite=strict" in device[0] or "SameSite=Strict" in device[0]


def test_a_throttled_page_login_says_how_long_to_wait(make_server: ServerFactory) -> None:
    """Past the free failures the login page answers 429 with Retry-After and the wait in
    words, and the right password does not get through meanwhile (P3)."""
    server = make_server(login_failures_per_account=2)
    email = server.register()
    with server.client() as client:
        for _ in range(2):
            token = form_token(client.get("/login"))
            failed = client.post(
                "/login", data={"email": email, "password": "wrong one", "csrf_token": token}
            )
            assert failed.status_code == 401
        refused = page_login(server, client, email)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert "Too many failed attempts; try again in 1 second." in refused.text
    assert 'role="alert"' in refused.text
    assert "twofold_session" not in refused.headers.get("set-cookie", "")


def test_register_errors_rerender_the_form(live: LiveServer) -> None:
    """A weak password re-renders the register form with 400 and the reason, keeping the
    address typed (escaped)."""
    with live.client() as client:
        token = form_token(client.get("/register"))
        answer = client.post(
            "/register", data={"email": live.new_email(), "password": "short", "csrf_token": token}
        )
    assert answer.status_code == 400
    assert 'role="alert"' in answer.text
    assert_well_formed_page(answer)


@pytest.mark.parametrize(
    "path",
    [
        "/logout",
        "/devices/revoke-others",
        "/devices/s_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/revoke",
        "/admin/live/s_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/end",
        "/admin/accounts/someone/lock",
        "/admin/accounts/someone/unlock",
        "/admin/accounts/someone/roles",
    ],
    ids=["logout", "revoke-others", "revoke", "end", "lock", "unlock", "roles"],
)
def test_get_never_changes_state(live: LiveServer, path: str) -> None:
    """Every state-changing page URL takes POST only: GET is 405 and the session lives (B1)."""
    email = make_admin(live)
    with signed_in(live, email) as client:
        answer = client.get(path)
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        assert client.get("/").status_code == 200
        assert alive(live, client.cookies[COOKIE])
