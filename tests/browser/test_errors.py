"""Error pages for browsers: a navigation that ends in an error status gets a friendly HTML
page with that status and a way home; API clients keep JSON. Nothing changes on GET."""

from __future__ import annotations

from playwright.sync_api import Page

from .support import Site, main, path_of, sign_in

FORM_ADDRESSES = ("/logout", "/devices/revoke-others")


def test_friendly_error_pages_and_no_change_on_get(page: Page, http_site: Site) -> None:
    """404, and 405 for a GET of a form's address (following a link to /logout, say), are
    HTML pages with the status, one heading and a link home; the signed-in user is still
    signed in after them (nothing changes on GET). An API client gets JSON."""
    email = http_site.register("getter")
    sign_in(page, http_site, email)
    for path, status in (("/no/such/page", 404), *((path, 405) for path in FORM_ADDRESSES)):
        answer = page.goto(path)
        assert answer is not None
        assert answer.status == status, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert page.get_by_role("heading", level=1).count() == 1, path
        assert main(page).locator("a[href='/']").count() == 1, path
        page.goto("/")
        assert path_of(page) == "/", path
        assert email in main(page).inner_text(), path

    with http_site.client() as client:
        api = client.get("/no/such/page", headers={"accept": "application/json"})
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/json")
    assert set(api.json()) == {"error", "detail"}
