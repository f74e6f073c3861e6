"""Error pages: a browser navigation that fails gets a friendly HTML page with the same
status and headers; API clients (application/json, */*, no Accept) keep the JSON body."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request

from tests.conftest import LiveServer, ServerFactory
from tests.http.test_pages import BROWSER_ACCEPT, assert_well_formed_page, signed_in
from twofold.errors import StoreUnavailable
from twofold.http.pages.errors import prefers_html

BROWSER = {"Accept": BROWSER_ACCEPT}
API_ACCEPTS = [{"Accept": "application/json"}, {"Accept": "*/*"}, {}]
API_IDS = ["json", "any", "none"]


def request_with(accept: str | None) -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8", True),
        ("text/html", True),
        ("application/xhtml+xml", True),
        ("application/json", False),
        ("*/*", False),
        (None, False),
        ("", False),
        ("application/json, text/html", False),
        ("text/html;q=0.5, application/json", False),
        ("text/html, application/json;q=0.9", True),
        ("application/problem+json", False),
        ("text/html;q=bogus", False),
    ],
    ids=[
        "firefox",
        "chrome",
        "html",
        "xhtml",
        "json",
        "any",
        "absent",
        "empty",
        "tie-is-json",
        "json-preferred",
        "html-preferred",
        "problem-json",
        "bad-quality",
    ],
)
def test_only_a_browser_navigation_prefers_html(accept: str | None, html: bool) -> None:
    assert prefers_html(request_with(accept)) is html


def assert_html_error(answer: httpx.Response, status: int, heading: str) -> None:
    assert answer.status_code == status
    assert_well_formed_page(answer)
    assert f'<h1 id="title">{heading}</h1>' in answer.text
    assert 'href="/"' in answer.text
    csp = answer.headers["content-security-policy"]
    assert "style-src 'self'" in csp
    assert "script-src" not in csp
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_an_unknown_page_is_a_404_page_for_a_browser(live: LiveServer) -> None:
    with live.client() as client:
        answer = client.get("/no/such/page", headers=BROWSER)
    assert_html_error(answer, 404, "Page not found")


@pytest.mark.parametrize("headers", API_ACCEPTS, ids=API_IDS)
def test_an_unknown_path_stays_json_for_api_clients(
    live: LiveServer, headers: dict[str, str]
) -> None:
    with live.client() as client:
        answer = client.get("/no/such/page", headers=headers)
    assert answer.status_code == 404
    assert answer.json() == {"error": "not_found", "detail": "Not Found"}


def test_a_wrong_method_is_a_405_page_keeping_allow(live: LiveServer) -> None:
    with live.client() as client:
        page = client.get("/logout", headers=BROWSER)
        api = client.get("/logout")
    assert_html_error(page, 405, "Not possible here")
    assert page.headers["allow"] == "POST"
    assert api.status_code == 405
    assert api.headers["allow"] == "POST"
    assert api.json()["error"] == "method_not_allowed"


def test_a_forbidden_api_call_is_a_403_page_for_a_browser(live: LiveServer) -> None:
    """A non-admin's browser opening an admin API URL sees the 403 page with the reason;
    the same call as JSON keeps the JSON error."""
    with signed_in(live, live.register()) as client:
        page = client.get("/admin/users", headers=BROWSER)
        api = client.get("/admin/users")
    assert_html_error(page, 403, "Not allowed")
    assert "This needs the admin role." in page.text
    assert api.status_code == 403
    assert api.json() == {"error": "forbidden", "detail": "This needs the admin role."}


def test_a_throttled_browser_gets_a_429_page_keeping_retry_after(
    make_server: ServerFactory,
) -> None:
    server = make_server(login_failures_per_account=1)
    email = server.register()
    body = {"email": email, "password": "wrong", "mode": "jwt"}
    with server.client() as client:
        assert client.post("/auth/login", json=body).status_code == 401
        page = client.post("/auth/login", json=body, headers=BROWSER)
        api = client.post("/auth/login", json=body)
    assert_html_error(page, 429, "Too many attempts")
    assert page.headers["retry-after"] == "1"
    assert "try again in 1 second" in page.text
    assert api.status_code == 429
    assert api.headers["retry-after"] == "1"
    assert api.json()["error"] == "too_many_attempts"


def test_a_store_outage_is_a_503_page_without_the_cause(
    fresh_live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signed-in page while the store is down: 503 page with Retry-After, no driver
    text (O3); the JSON API keeps its 503 body."""
    live = fresh_live
    with signed_in(live, live.register()) as client:

        async def broken(id_hash: bytes) -> None:
            raise StoreUnavailable("The SQLite store is unavailable (disk I/O error)")

        with monkeypatch.context() as patch:
            patch.setattr(live.runtime.store, "get_session_and_user", broken)
            page = client.get("/devices", headers=BROWSER)
            api = client.get("/auth/me")
        assert_html_error(page, 503, "Temporarily unavailable")
        assert page.headers["retry-after"] == "5"
        assert "disk" not in page.text
        assert api.status_code == 503
        assert api.json()["error"] == "store_unavailable"
        assert client.get("/devices", headers=BROWSER).status_code == 200


def test_an_unexpected_error_is_a_500_page_with_the_page_headers(
    fresh_live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug behind a page: a 500 page that says nothing of the cause and still carries
    the page CSP, nosniff and no-store; API clients keep the JSON 500."""
    live = fresh_live

    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    with signed_in(live, live.register()) as client:
        monkeypatch.setattr(live.runtime.authority, "devices", explode)
        page = client.get("/devices", headers=BROWSER)
        api = client.get("/auth/sessions")
    assert_html_error(page, 500, "Something went wrong")
    assert "secret" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert api.status_code == 500
    assert api.json() == {"error": "internal_error", "detail": "An unexpected error occurred."}


def test_other_statuses_stay_json_even_for_a_browser(live: LiveServer) -> None:
    """401, 415 and 422 are answers for API clients, not pages: JSON for anyone."""
    with live.client() as client:
        unauthenticated = client.get("/auth/me", headers=BROWSER)
        form = client.post("/auth/login", data={"email": "x"}, headers=BROWSER)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"] == "unauthenticated"
    assert form.status_code == 415
    assert form.json()["error"] == "unsupported_media_type"
