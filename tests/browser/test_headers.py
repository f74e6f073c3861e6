"""The security headers as the browser receives them, and what they make it do: no
framing by another site, HSTS only over HTTPS (SECURITY.md B3, S9)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, Response

from .conftest import Browsing
from .support import Hostile, Site, hostile_page, sign_in

SIGNED_IN_PAGES = (
    "/",
    "/devices",
    "/account/password",
    "/account/email",
    "/admin",
    "/admin/accounts",
    "/admin/events",
)
ANONYMOUS_PAGES = ("/login", "/register", "/no-such-page")


def test_every_page_sends_the_security_headers(site: Site, new_page: Callable[..., Page]) -> None:
    """Every page (anonymous, signed in, admin, error) has a CSP without any script source
    and with frame-ancestors 'none', nosniff, a Referrer-Policy, no-store; HSTS over HTTPS
    only. No page has a script or an inline style."""
    page = new_page(site)
    answers: dict[str, Response] = {}
    bodies: dict[str, str] = {}

    def visit(path: str) -> None:
        answer = page.goto(path)
        assert answer is not None
        answers[path] = answer
        bodies[path] = answer.text()  # readable only until the next navigation

    for path in ANONYMOUS_PAGES:
        visit(path)
    sign_in(page, site, site.admin_email)
    for path in SIGNED_IN_PAGES:
        visit(path)

    assert answers["/no-such-page"].status == 404
    for path, answer in answers.items():
        headers = answer.headers
        assert headers["content-type"].startswith("text/html"), path
        csp = [part.strip() for part in headers["content-security-policy"].split(";")]
        assert "default-src 'none'" in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert not [part for part in csp if part.startswith("script-src")], path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] in (
            "no-referrer",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin",
        ), path
        assert "no-store" in headers["cache-control"], path
        if site.secure:
            assert headers["strict-transport-security"].startswith("max-age="), path
        else:
            assert "strict-transport-security" not in headers, path
        body = bodies[path]
        assert "<script" not in body, path
        assert "<style" not in body, path
        assert " style=" not in body, path


def test_another_site_cannot_frame_twofold(
    http_site: Site, hostile: Hostile, browsing: Browsing
) -> None:
    """A hostile page that puts Twofold's login page (or a signed-in page) in an iframe
    gets an error page in the frame (frame-ancestors 'none'), not the form."""
    page = browsing.new_page(http_site)
    browsing.allow("frame-ancestors")
    for path in ("/login", "/devices"):
        if path == "/devices":
            sign_in(page, http_site, http_site.admin_email)
        url = hostile.publish(
            hostile_page(f'<h1>Click here</h1><iframe src="{http_site.url}{path}"></iframe>'),
            "localhost",
        )
        page.goto(url)
        page.wait_for_load_state("load")
        child = page.main_frame.child_frames
        assert len(child) == 1
        assert not child[0].url.startswith(http_site.url), child[0].url
        assert child[0].locator("input, button, table").count() == 0
