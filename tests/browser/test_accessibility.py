"""Every page of the contract at desktop width and at 375 px (a phone): one <h1>, labelled
inputs that get_by_label finds, the skip link as the first Tab stop, no sideways
scrolling, a CSRF token in every POST form, no console errors or CSP violations (the
browsing fixture fails on any). Each page is photographed into artifacts/browser/."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, ViewportSize

from .conftest import Browsing
from .support import DESKTOP, PHONE, Site, shot, sign_in

ANONYMOUS = [("login", "/login", 200), ("register", "/register", 200), ("error-404", "/nope", 404)]
ADMIN = [
    ("profile", "/", 200),
    ("devices", "/devices", 200),
    ("account-password", "/account/password", 200),
    ("account-email", "/account/email", 200),
    ("admin-live", "/admin", 200),
    ("admin-accounts", "/admin/accounts", 200),
    ("admin-events", "/admin/events", 200),
]
USER = [("error-403", "/admin", 403)]

# What can be read off the page in one go: the <h1>s, every control a user can reach with
# the text of its label (or aria-label), the skip link, <main id=main>, the first element
# in the Tab order (tabindex 0 or natural, by document order), whether something has the
# focus already (autofocus), the document's width, and POST forms without a CSRF token.
SURVEY = """() => {
  const controls = [...document.querySelectorAll(
      'input:not([type=hidden]), select, textarea')]
    .filter(e => e.getClientRects().length > 0)
    .map(e => ({
      id: e.id,
      name: e.name,
      label: e.labels && e.labels.length ? e.labels[0].textContent.trim()
        : (e.getAttribute('aria-label') || ''),
    }));
  const skips = [...document.querySelectorAll('a[href="#main"]')];
  const focusable = [...document.querySelectorAll(
      'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]')]
    .find(e => e.tabIndex >= 0 && !e.disabled);
  return {
    h1: document.querySelectorAll('h1').length,
    controls,
    skip: skips.length === 1 ? skips[0].textContent.trim() : null,
    main: document.querySelectorAll('main#main').length,
    first: focusable ? focusable.outerHTML.slice(0, 80) : '',
    focused: document.activeElement !== document.body,
    width: document.documentElement.scrollWidth,
    tokenless: [...document.querySelectorAll('form')]
      .filter(f => f.method === 'post' && !f.querySelector('input[type=hidden][name=csrf_token]'))
      .map(f => f.getAttribute('action')),
  };
}"""
LABEL_CHECKS_PER_PAGE = 3


def check_page(page: Page, name: str, viewport: ViewportSize) -> list[str]:
    """What is wrong with the page now in ``page``."""
    # The browser applies autofocus at a later rendering step than the load: on a busy
    # machine the survey could run before it, and the Tab below race it.
    page.wait_for_function(
        "() => { const a = document.querySelector('[autofocus]');"
        " return !a || document.activeElement === a; }"
    )
    survey: dict[str, Any] = page.evaluate(SURVEY)
    problems = []
    if survey["h1"] != 1:
        problems.append(f"{survey['h1']} h1 elements")
    controls = survey["controls"]
    problems += [f"no label for {c['name'] or c['id']}" for c in controls if not c["label"]]
    for control in [c for c in controls if c["label"]][:LABEL_CHECKS_PER_PAGE]:
        found = page.get_by_label(control["label"], exact=True).evaluate_all(
            "es => es.map(e => e.id)"
        )
        if control["id"] not in found:
            problems.append(f"get_by_label({control['label']!r}) misses #{control['id']}")
    if survey["skip"] != "Skip to content":
        problems.append("no single 'Skip to content' link")
    if survey["main"] != 1:
        problems.append("no <main id=main>")
    if 'href="#main"' not in survey["first"]:
        problems.append(f"first Tab stop is {survey['first']}")
    if not survey["focused"]:
        # No autofocus: press Tab for real, then follow the skip link.
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") != "#main":
            problems.append("Tab does not reach the skip link first")
        else:
            page.keyboard.press("Enter")
            if page.evaluate("document.activeElement.id") != "main":
                problems.append("the skip link does not move the focus to <main>")
    problems += [f"a form without csrf_token posts to {action}" for action in survey["tokenless"]]
    if survey["width"] > viewport["width"]:
        problems.append(f"scrolls sideways: {survey['width']} px wide at {viewport['width']} px")
    return [f"{name} at {viewport['width']} px: {problem}" for problem in problems]


def test_every_page_is_accessible(http_site: Site, browsing: Browsing) -> None:
    problems: list[str] = []

    def visit(page: Page, pages: list[tuple[str, str, int]]) -> None:
        for viewport, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
            page.set_viewport_size(viewport)
            for name, path, status in pages:
                answer = page.goto(path)
                assert answer is not None
                assert answer.status == status, path
                problems.extend(check_page(page, name, viewport))
                shot(page, name + suffix)

    admin = browsing.new_page(http_site)
    visit(admin, ANONYMOUS)
    sign_in(admin, http_site, http_site.admin_email)
    visit(admin, ADMIN)

    user = browsing.new_page(http_site)
    sign_in(user, http_site, http_site.register("plain"))
    visit(user, USER)
    assert not problems, "\n".join(problems)
