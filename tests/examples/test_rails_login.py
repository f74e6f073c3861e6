"""The seed article's login flow (examples/rails_login), run as a user would: uvicorn on the
example file, beside a `twofold serve` on the same data directory, over real sockets."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.processes import TwofoldProcess

EXAMPLE = Path(__file__).parents[2] / "examples" / "rails_login" / "app.py"
CSRF_FIELD = re.compile(r'name=csrf_token value="([^"]+)"')


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the example's URL, the Twofold server's URL), sharing one data directory."""
    data_dir = tmp_path_factory.mktemp("rails") / "data"
    server = TwofoldProcess(data_dir).start()
    example = TwofoldProcess(data_dir, app=EXAMPLE, ready_path="/login")
    # Its own pages' origin for CSRF; the server's issuer, so that tokens it issued verify.
    example.settings.update(public_url=example.url, issuer=server.url)
    example.start()
    yield example.url, server.url
    example.stop()
    server.stop()


@pytest.fixture
def browser(deployment: tuple[str, str]) -> Iterator[httpx.Client]:
    """A cookie-keeping client that sends the Origin a browser would on its forms."""
    url = deployment[0]
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=10) as client:
        yield client


def new_email() -> str:
    return f"rails-{uuid.uuid4().hex[:10]}@example.com"


def sign_up_and_in(client: httpx.Client) -> str:
    email = new_email()
    answer = client.post("/register", data={"email": email, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    answer = client.post("/login", data={"email": email, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return email


def jwt_login(server_url: str, email: str) -> str:
    """An access token from the Twofold server itself."""
    login = httpx.post(
        f"{server_url}/auth/login",
        json={"email": email, "password": PASSWORD, "mode": "jwt"},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    token: str = login.json()["access_token"]
    return token


def test_login_flow_of_the_seed_article(browser: httpx.Client) -> None:
    """GET /login, POST /login, the main page knows the user, logout forgets them."""
    assert "<form" in browser.get("/login").text
    email = sign_up_and_in(browser)
    home = browser.get("/")
    assert f"Logged in as <strong>{email}</strong>" in home.text
    token = CSRF_FIELD.search(home.text)
    assert token is not None
    answer = browser.post("/logout", data={"csrf_token": token.group(1)})
    assert answer.status_code == 303
    assert "Log in" in browser.get("/").text


def test_session_cookie_is_hardened(browser: httpx.Client) -> None:
    """The example's cookie is Twofold's: HttpOnly, SameSite=Lax, Path=/, no Domain (S5)."""
    email = new_email()
    browser.post("/register", data={"email": email, "password": PASSWORD})
    answer = browser.post("/login", data={"email": email, "password": PASSWORD})
    cookie = next(
        h for h in answer.headers.get_list("set-cookie") if h.startswith("twofold_session=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "domain" not in attributes
    assert "samesite=lax" in cookie.lower()


def test_wrong_password_is_refused_without_a_cookie(browser: httpx.Client) -> None:
    """A wrong password shows the form again with 401 and sets no session."""
    email = new_email()
    browser.post("/register", data={"email": email, "password": PASSWORD})
    answer = browser.post("/login", data={"email": email, "password": "wrong " + PASSWORD})
    assert answer.status_code == 401
    assert "twofold_session" not in answer.headers.get("set-cookie", "")


def test_logout_without_csrf_token_is_refused(browser: httpx.Client) -> None:
    """A cookie-authenticated POST without the session's token is 403 and ends nothing (B1)."""
    email = sign_up_and_in(browser)
    assert browser.post("/logout").status_code == 403
    assert browser.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    assert email in browser.get("/").text


def test_logout_from_another_origin_is_refused(browser: httpx.Client) -> None:
    """The right token from a page of another origin is still refused (B1's Origin check)."""
    email = sign_up_and_in(browser)
    token = CSRF_FIELD.search(browser.get("/").text)
    assert token is not None
    answer = browser.post(
        "/logout", data={"csrf_token": token.group(1)}, headers={"Origin": "https://evil.test"}
    )
    assert answer.status_code == 403
    assert email in browser.get("/").text


def test_login_form_from_another_origin_is_refused(browser: httpx.Client) -> None:
    """Login CSRF: a form posted from another origin does not log the browser in."""
    email = new_email()
    browser.post("/register", data={"email": email, "password": PASSWORD})
    answer = browser.post(
        "/login",
        data={"email": email, "password": PASSWORD},
        headers={"Origin": "https://evil.test"},
    )
    assert answer.status_code == 403
    assert "twofold_session" not in answer.headers.get("set-cookie", "")


def test_api_takes_the_session_and_the_servers_tokens(
    browser: httpx.Client, deployment: tuple[str, str]
) -> None:
    """/api/me answers for the session cookie, and for an access token that the Twofold
    server issued (shared keys); without either it is 401 with WWW-Authenticate."""
    email = sign_up_and_in(browser)
    assert browser.get("/api/me").json()["via"] == "session"
    token = jwt_login(deployment[1], email)
    with httpx.Client(base_url=deployment[0], timeout=10) as api:
        me = api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json() == {"id": me.json()["id"], "email": email, "roles": ["user"], "via": "jwt"}
        anonymous = api.get("/api/me")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        forged = api.get("/api/me", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
        assert forged.status_code == 401


def test_logout_at_the_server_ends_the_session_here(
    browser: httpx.Client, deployment: tuple[str, str]
) -> None:
    """One store: the session that the server's "log out everywhere" ended is gone here,
    and its dead cookie is cleared (S7)."""
    email = sign_up_and_in(browser)
    token = jwt_login(deployment[1], email)
    with httpx.Client(base_url=deployment[1], timeout=10) as server:
        ended = server.delete("/auth/sessions", headers={"Authorization": f"Bearer {token}"})
        assert ended.status_code == 200, ended.text
    home = browser.get("/")
    assert "Log in" in home.text
    assert 'twofold_session=""' in home.headers.get("set-cookie", "")


def test_admin_page_needs_the_role(browser: httpx.Client) -> None:
    """/admin is 403 for a user without the admin role."""
    sign_up_and_in(browser)
    assert browser.get("/admin").status_code == 403
