"""What the browser tests share besides fixtures: the Twofold servers as a user's browser sees
them, a hostile origin on this machine, screenshots, and the steps a user takes (log in,
find a row, submit a form)."""

from __future__ import annotations

import html
import re
import subprocess
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import ConsoleMessage, Locator, Page, Response, ViewportSize

from tests.conftest import PASSWORD
from tests.processes import TWOFOLD, TwofoldProcess

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
# Playwright passes --headless itself (Chromium's new headless mode) and, as root in a
# container, the sandbox cannot start: --no-sandbox. No GPU, and /dev/shm is small in
# containers.
LAUNCH_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 740}

# The login failures one account may have (from browsers that have not logged in to it)
# before each further attempt must wait; small, so the throttle test is quick. The limit
# per address is high: every browser here comes from 127.0.0.1.
#: The audience tokens made on the devices page may be exchanged for.
API_AUDIENCE = "notes"
SERVER_SETTINGS: dict[str, object] = {
    "login_failures_per_account": 3,
    "login_failures_per_address": 10_000,
    "token_audiences": API_AUDIENCE,
}

THROTTLED = re.compile(r"Too many failed attempts; try again in (\d+) seconds?\.")


def shot(page: Page, name: str) -> Path:
    """A full-page PNG at ``artifacts/browser/<name>.png`` under the repository root."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True, animations="disabled")
    return path


# -- the servers ------------------------------------------------------------------------


@dataclass
class Site:
    """One ``twofold serve`` process, with an admin made by the CLI, and the ways a test
    reaches it without a browser (to prepare a user or check what a browser did)."""

    server: TwofoldProcess
    admin_email: str = "admin@example.com"

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def secure(self) -> bool:
        return self.server.tls

    def cookie_name(self, base: str) -> str:
        """``twofold_session`` over HTTP, ``__Host-twofold_session`` over HTTPS."""
        return f"__Host-{base}" if self.secure else base

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """``twofold ARGS`` with the server's own settings (data directory, store)."""
        result = subprocess.run(
            [str(TWOFOLD), *args],
            env=self.server.environment(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"twofold {' '.join(args)}: {result.stderr}"
        return result.stdout

    def create_admin(self) -> None:
        self.cli("user", "add", self.admin_email, "--role", "admin", stdin=f"{PASSWORD}\n")

    def client(self) -> httpx.Client:
        # The HTTPS server's certificate is self-signed: no verification (as the browser
        # contexts are told to ignore it).
        return httpx.Client(base_url=self.url, verify=False, timeout=30)  # noqa: S501

    def new_email(self, label: str = "user") -> str:
        return f"{label}-{uuid.uuid4().hex[:12]}@example.com"

    def register(self, label: str = "user", password: str = PASSWORD) -> str:
        """A new account through the JSON API (quicker than the form); its e-mail."""
        email = self.new_email(label)
        with self.client() as client:
            answer = client.post("/auth/register", json={"email": email, "password": password})
        assert answer.status_code == 201, answer.text
        return email

    def api_login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        """A session login through the JSON API, logged out again at once (so it leaves
        no device behind); the login's answer."""
        with self.client() as client:
            answer = client.post(
                "/auth/login", json={"email": email, "password": password, "mode": "session"}
            )
            if answer.status_code == 200:
                client.post("/auth/logout", headers={"x-csrf-token": answer.json()["csrf_token"]})
        return answer

    def can_log_in(self, email: str, password: str = PASSWORD) -> bool:
        return self.api_login(email, password).status_code == 200

    def user_id(self, email: str) -> str:
        answer = self.api_login(email)
        assert answer.status_code == 200, answer.text
        user_id: str = answer.json()["user"]["id"]
        return user_id


# -- watching pages ---------------------------------------------------------------------


@dataclass
class Watch:
    """Console errors, uncaught exceptions and CSP violations of one page, and the status
    of each document it loaded. A document answered with an error status is logged by
    Chromium as "Failed to load resource"; that one is the test's business (it checks the
    status), every other error is a fault of the page."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    documents: set[tuple[str, int]] = field(default_factory=set)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append((str(error), page.url)))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append((message.text, str(message.location.get("url", ""))))

    def _response(self, response: Response) -> None:
        if response.request.is_navigation_request():
            self.documents.add((response.url, response.status))

    def faults(self) -> list[str]:
        found = []
        for text, url in self.messages:
            status = re.match(
                r"Failed to load resource: the server responded with a status of (\d+)", text
            )
            if status and (url, int(status.group(1))) in self.documents:
                continue
            found.append(f"{text} ({url})")
        return found


# -- what a user does -------------------------------------------------------------------


def main(page: Page) -> Locator:
    return page.locator("main")


def submit(page: Page, button: Locator) -> Response:
    """Click a form's submit button and wait for the page it leads to; that page's answer
    (after any redirects)."""
    with page.expect_navigation() as navigation:
        button.click()
    response = navigation.value
    assert response is not None
    return response


def log_in(page: Page, email: str, password: str = PASSWORD) -> Response:
    """Type into the login form and press its button, as a user does (from the login page
    the browser is on, as after a failure, or else from a freshly loaded one)."""
    if path_of(page).split("?")[0] != "/login":
        page.goto("/login")
    form = main(page)
    form.get_by_label("E-mail address").fill(email)
    form.get_by_label("Password", exact=True).fill(password)
    return submit(page, form.get_by_role("button", name="Log in"))


def sign_in(page: Page, site: Site, email: str, password: str = PASSWORD) -> None:
    """Log in through the JSON API and give the session cookie to the browser: a quick
    start for tests whose subject is not the login form."""
    # The browser's own user agent, so the session shows on the devices page as this
    # browser's.
    agent = page.evaluate("navigator.userAgent")
    with site.client() as client:
        answer = client.post(
            "/auth/login",
            json={"email": email, "password": password, "mode": "session"},
            headers={"user-agent": agent},
        )
    assert answer.status_code == 200, answer.text
    name = site.cookie_name("twofold_session")
    page.context.add_cookies(
        [
            {
                "name": name,
                "value": answer.cookies[name],
                "url": f"{site.url}/",
                "httpOnly": True,
                "secure": site.secure,
                "sameSite": "Lax",
            }
        ]
    )


def log_out(page: Page) -> Response:
    """The "Log out" button in the header."""
    return submit(page, page.locator("header").get_by_role("button", name="Log out"))


def path_of(page: Page) -> str:
    """The page's path and query (no origin)."""
    url = httpx.URL(page.url)
    return url.raw_path.decode()


def assert_on_login(page: Page, private: str) -> None:
    """The page is the login page and shows nothing of the signed-out user."""
    assert path_of(page).split("?")[0] == "/login", page.url
    assert private not in page.content()


def find_account_row(page: Page, email: str) -> Locator:
    """The row of ``email`` on /admin/accounts, following "Next page" as a user would."""
    page.goto("/admin/accounts")
    for _ in range(100):
        found = page.locator("tbody tr").filter(has_text=email)
        if found.count():
            assert found.count() == 1
            return found
        following = page.locator("a[rel=next]")
        assert following.count(), f"{email} is on no page of /admin/accounts"
        with page.expect_navigation():
            following.click()
    raise AssertionError(f"{email} not found in 100 pages of /admin/accounts")


# -- a hostile origin -------------------------------------------------------------------


class Hostile:
    """A web server of its own on another port of this machine: pages that attack Twofold
    from the victim's browser. Reached as http://127.0.0.1:PORT (another origin, but the
    same site as Twofold's 127.0.0.1, so SameSite=Lax cookies still go along) or as
    http://localhost:PORT (another site)."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/favicon.ico":
                    # Chromium asks every origin for one; a 404 would be a console error.
                    self.send_response(204)
                    self.end_headers()
                    return
                body = pages.get(self.path.split("?")[0])
                data = (body or "not here").encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, body: str, host: str = "127.0.0.1") -> str:
        """Serve ``body`` at a new path; its URL on ``host``."""
        path = f"/{uuid.uuid4().hex}"
        self.pages[path] = body
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def hostile_page(body: str) -> str:
    return f'<!doctype html><html lang="en"><title>You won!</title><body>{body}</body></html>'


def auto_submit(action: str, fields: Mapping[str, str]) -> str:
    """A page whose form posts ``fields`` to ``action`` as soon as it loads."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    return hostile_page(
        f'<form id="f" method="post" action="{html.escape(action)}">{inputs}</form>'
        '<script>document.getElementById("f").submit()</script>'
    )
