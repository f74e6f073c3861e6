"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, and two real
``twofold serve`` processes, one over plain HTTP and one over HTTPS (self-signed), shared by
the whole run; every test gets fresh browser contexts (their own cookie jars).

Outside CI a missing Chromium skips these tests; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

from tests.processes import TwofoldProcess
from tests.services import require

from .support import (
    CHROMIUM,
    DESKTOP,
    LAUNCH_ARGS,
    SERVER_SETTINGS,
    Hostile,
    Site,
    Watch,
    sign_in,
)

# Per action: a page that takes longer than this on loopback is a failure, not a wait.
ACTION_TIMEOUT_MS = 10_000


# Package scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and every async test after it would fail to start its own.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    executable = require(
        "Chromium (/usr/bin/chromium)", str(CHROMIUM) if CHROMIUM.exists() else None
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def sites(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Site]]:
    """Both servers, started side by side (each start takes seconds), each with an admin
    made by ``twofold user add``. After the browser: without Chromium nothing starts."""
    base = tmp_path_factory.mktemp("browser")
    servers = {
        "http": TwofoldProcess(base / "http" / "data", settings=SERVER_SETTINGS),
        "https": TwofoldProcess(base / "https" / "data", settings=SERVER_SETTINGS, tls=True),
    }
    started = {name: Site(server) for name, server in servers.items()}
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda site: site.server.start(), started.values()))
            list(pool.map(Site.create_admin, started.values()))
        yield started
    finally:
        for site in started.values():
            site.server.stop()


@pytest.fixture
def http_site(sites: dict[str, Site]) -> Site:
    return sites["http"]


@pytest.fixture(params=["http", "https"])
def site(request: pytest.FixtureRequest, sites: dict[str, Site]) -> Site:
    """Each server in turn."""
    return sites[request.param]


@pytest.fixture(scope="package")
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.close()


@dataclass
class Browsing:
    """The browser contexts of one test. Each is a user's browser of its own (cookie jar,
    cache, history); every page is watched for console errors, which fail the test."""

    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    watches: list[Watch] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def new_page(self, site: Site, viewport: ViewportSize = DESKTOP) -> Page:
        """A page in a new context whose relative URLs go to ``site``."""
        context = self.browser.new_context(
            base_url=site.url,
            viewport=viewport,
            ignore_https_errors=True,
            locale="en-GB",
        )
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        self.watch(page)
        return page

    def watch(self, page: Page) -> Watch:
        watch = Watch()
        watch.attach(page)
        self.watches.append(watch)
        return watch

    def allow(self, pattern: str) -> None:
        """A console error this test provokes on purpose, on any of its pages."""
        self.allowed.append(re.compile(pattern))

    def close(self) -> list[str]:
        for context in self.contexts:
            context.close()
        return [
            fault
            for watch in self.watches
            for fault in watch.faults()
            if not any(pattern.search(fault) for pattern in self.allowed)
        ]


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    session = Browsing(browser)
    yield session
    faults = session.close()
    assert not faults, "console errors: " + "; ".join(faults)


@pytest.fixture
def new_page(browsing: Browsing) -> Callable[..., Page]:
    """``new_page(site, viewport=DESKTOP)``: a page in a fresh browser context."""
    return browsing.new_page


@pytest.fixture
def page(browsing: Browsing, http_site: Site) -> Page:
    """A page in a fresh browser context on the HTTP server."""
    return browsing.new_page(http_site)


@dataclass
class TwoBrowsers:
    """One user logged in on the HTTP server from two browsers of their own."""

    email: str
    here: Page
    elsewhere: Page


@pytest.fixture
def two_browsers(browsing: Browsing, http_site: Site) -> TwoBrowsers:
    email = http_site.register()
    pages = [browsing.new_page(http_site) for _ in range(2)]
    for page in pages:
        sign_in(page, http_site, email)
        page.goto("/")
        assert email in page.content()
    return TwoBrowsers(email, *pages)
