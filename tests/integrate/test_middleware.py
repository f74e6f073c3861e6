"""TwofoldMiddleware in a plain Starlette app of a user's own, beside a Twofold server on the
same store, over real sockets: who is calling, CSRF for cookie-authenticated changes,
audiences, dead cookies, renewed sessions and revocations that reach the app."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import (
    PASSWORD,
    LiveServer,
    Running,
    bearer,
    loopback_socket,
    make_settings,
    serve_in_thread,
    start_server,
    stop_server,
)
from twofold.authority import Principal
from twofold.clock import FrozenClock
from twofold.errors import StoreUnavailable
from twofold.integrate import Twofold, TwofoldMiddleware, principal_of

AUDIENCE = "notes"


async def whoami(request: Request) -> JSONResponse:
    principal = principal_of(request.scope)
    if principal is None:
        return JSONResponse({"caller": None})
    caller = {
        "user_id": principal.user_id,
        "mode": principal.mode,
        "roles": list(principal.roles),
        "scopes": list(principal.scopes),
    }
    return JSONResponse({"caller": caller})


async def change(request: Request) -> JSONResponse:
    """Echoes the form's ``text``: the body the middleware read for its CSRF token must
    still reach the app."""
    form = await request.form()
    principal = principal_of(request.scope)
    return JSONResponse({"text": form.get("text"), "user_id": principal and principal.user_id})


async def whoami_socket(socket: WebSocket) -> None:
    await socket.accept()
    principal = principal_of(socket.scope)
    await socket.send_json({"user_id": principal and principal.user_id})
    await socket.close()


def user_app(auth: Twofold) -> Starlette:
    async def csrf(request: Request) -> JSONResponse:
        return JSONResponse({"csrf_token": auth.csrf_token(request)})

    routes = [
        Route("/whoami", whoami),
        Route("/csrf", csrf),
        Route("/change", change, methods=["POST"]),
        WebSocketRoute("/socket", whoami_socket),
    ]
    inner = Starlette(routes=routes)
    return Starlette(
        routes=[
            Mount("/own", app=TwofoldMiddleware(inner, auth=auth)),
            Mount("/notes", app=TwofoldMiddleware(inner, auth=auth, audience=AUDIENCE)),
        ],
        lifespan=auth.lifespan,
    )


@dataclass
class Deployment:
    server: LiveServer
    app_url: str
    auth: Twofold


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data_dir = tmp_path_factory.mktemp("integrate") / "data"
    shared = {"token_audiences": [AUDIENCE], "login_failures_per_address": 100_000}
    server, server_running = start_server(data_dir, FrozenClock(time.time()), **shared)
    sock = loopback_socket()
    app_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(
        Path(data_dir),
        public_url=app_url,
        issuer=server.settings.effective_issuer,
        event_poll_interval=0.05,
        **shared,
    )
    auth = Twofold(settings)
    app_running: Running = serve_in_thread(user_app(auth), sock)
    yield Deployment(server, app_url, auth)
    stop_server(app_running)
    stop_server(server_running)


@dataclass
class Browser:
    client: httpx.Client
    email: str
    csrf: str


@pytest.fixture
def browser(deployment: Deployment) -> Iterator[Browser]:
    """A logged-in session (made at the server) in a client that calls the app."""
    server = deployment.server
    email = server.register()
    client = httpx.Client(base_url=deployment.app_url, timeout=10)
    login = client.post(
        f"{server.url}/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
    )
    assert login.status_code == 200, login.text
    yield Browser(client, email, login.json()["csrf_token"])
    client.close()


def origin(deployment: Deployment) -> dict[str, str]:
    return {"Origin": deployment.app_url}


def test_anonymous_request_has_no_caller(deployment: Deployment) -> None:
    """No credential: the route runs and finds no caller."""
    answer = httpx.get(f"{deployment.app_url}/own/whoami")
    assert answer.json() == {"caller": None}


def test_session_cookie_authenticates_with_every_scope(browser: Browser) -> None:
    """The server's session cookie is good in the app; a session holds every scope."""
    caller = browser.client.get("/own/whoami").json()["caller"]
    assert caller["mode"] == "session"
    assert caller["scopes"] == ["read", "write"]


def test_cookie_post_without_csrf_token_is_refused(
    browser: Browser, deployment: Deployment
) -> None:
    """B1: a cookie-authenticated POST without the session's token is 403, and the route
    does not run."""
    answer = browser.client.post("/own/change", data={"text": "x"}, headers=origin(deployment))
    assert answer.status_code == 403
    assert answer.json()["error"] == "csrf_failed"


def test_cookie_post_with_header_token_passes(browser: Browser, deployment: Deployment) -> None:
    """The X-CSRF-Token header from the login answer is proof."""
    headers = {**origin(deployment), "X-CSRF-Token": browser.csrf}
    answer = browser.client.post("/own/change", data={"text": "hello"}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "hello"


def test_cookie_post_with_form_field_passes_and_body_reaches_app(
    browser: Browser, deployment: Deployment
) -> None:
    """A urlencoded form's csrf_token field is proof; the app still reads the whole body."""
    answer = browser.client.post(
        "/own/change",
        data={"csrf_token": browser.csrf, "text": "from a form"},
        headers=origin(deployment),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "from a form"


def test_right_token_from_another_origin_is_refused(browser: Browser) -> None:
    """The session's token on a request whose Origin is not trusted is still 403."""
    headers = {"Origin": "https://evil.test", "X-CSRF-Token": browser.csrf}
    answer = browser.client.post("/own/change", data={"text": "x"}, headers=headers)
    assert answer.status_code == 403


def test_token_of_another_session_is_refused(browser: Browser, deployment: Deployment) -> None:
    """A CSRF token is bound to its session: another session's token is no proof."""
    with deployment.server.client() as other:
        login = other.post(
            "/auth/login",
            json={"email": deployment.server.register(), "password": PASSWORD, "mode": "session"},
        )
    headers = {**origin(deployment), "X-CSRF-Token": login.json()["csrf_token"]}
    answer = browser.client.post("/own/change", data={"text": "x"}, headers=headers)
    assert answer.status_code == 403


def test_oversized_form_is_refused(browser: Browser, deployment: Deployment) -> None:
    """A form read for its CSRF field is read up to the body limit, then 413."""
    limit = deployment.auth.settings.max_body_bytes
    answer = browser.client.post(
        "/own/change",
        data={"csrf_token": browser.csrf, "text": "x" * (limit + 1)},
        headers=origin(deployment),
    )
    assert answer.status_code == 413


def test_bearer_post_needs_no_csrf_token(deployment: Deployment) -> None:
    """A Bearer token is not sent by browsers on their own: no CSRF proof needed."""
    token = deployment.server.token_pair()["access_token"]
    answer = httpx.post(
        f"{deployment.app_url}/own/change", data={"text": "api"}, headers=bearer(token)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "api"


def test_bad_bearer_is_refused_even_with_a_good_cookie(browser: Browser) -> None:
    """A bad Bearer token is 401 with WWW-Authenticate; the cookie does not rescue it."""
    answer = browser.client.get("/own/whoami", headers=bearer("not.a.token"))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith('Bearer realm="twofold"')


def test_audience_bound_token_is_good_only_for_its_audience(
    browser: Browser, deployment: Deployment
) -> None:
    """A token the session exchanged for the notes audience passes where the middleware
    expects that audience, with the scopes asked for, and not where it expects Twofold's."""
    exchanged = browser.client.post(
        f"{deployment.server.url}/auth/token",
        json={"audience": AUDIENCE, "scope": "read"},
        headers={"X-CSRF-Token": browser.csrf},
    )
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()["access_token"]
    notes = httpx.get(f"{deployment.app_url}/notes/whoami", headers=bearer(token))
    assert notes.status_code == 200, notes.text
    assert notes.json()["caller"]["scopes"] == ["read"]
    own = httpx.get(f"{deployment.app_url}/own/whoami", headers=bearer(token))
    assert own.status_code == 401
    assert "wrong_audience" in own.headers["www-authenticate"]


def test_dead_cookie_makes_caller_anonymous_and_is_cleared(
    browser: Browser, deployment: Deployment
) -> None:
    """After "log out everywhere" at the server, the app sees no caller and clears the
    cookie (S7)."""
    token = deployment.server.token_pair(browser.email)["access_token"]
    ended = httpx.delete(f"{deployment.server.url}/auth/sessions", headers=bearer(token))
    assert ended.status_code == 200
    answer = browser.client.get("/own/whoami")
    assert answer.json() == {"caller": None}
    assert 'twofold_session=""' in answer.headers["set-cookie"]


def test_revoked_token_is_refused_by_the_app_within_a_second(deployment: Deployment) -> None:
    """T9: the app follows the revocation stream: a token logged out at the server is
    refused here within a second, with no call per request."""
    token = deployment.server.token_pair()["access_token"]
    url = f"{deployment.app_url}/own/whoami"
    assert httpx.get(url, headers=bearer(token)).status_code == 200
    ended = httpx.post(f"{deployment.server.url}/auth/logout", headers=bearer(token))
    assert ended.status_code == 204
    started = time.monotonic()
    while httpx.get(url, headers=bearer(token)).status_code == 200:
        assert time.monotonic() - started < 1.0, "the revoked token still passes after 1 s"
        time.sleep(0.01)


def test_role_change_renews_the_session_in_the_app(
    browser: Browser, deployment: Deployment
) -> None:
    """S3: after the user's roles change, the next request continues under a new session
    id, handed over with its CSRF token; the role counts at once."""
    caller = browser.client.get("/own/whoami").json()["caller"]
    old_cookie = browser.client.cookies["twofold_session"]
    runtime = deployment.server.runtime
    deployment.server.call(
        runtime.authority.accounts.set_roles(caller["user_id"], ["user", "editor"])
    )
    answer = browser.client.get("/own/whoami")
    assert answer.json()["caller"]["roles"] == ["user", "editor"]
    assert browser.client.cookies["twofold_session"] != old_cookie
    headers = {**origin(deployment), "X-CSRF-Token": answer.headers["x-csrf-token"]}
    change = browser.client.post("/own/change", data={"text": "renewed"}, headers=headers)
    assert change.status_code == 200, change.text


@pytest.mark.parametrize(
    ("origin_header", "known"),
    [("app", True), ("https://evil.test", False), (None, False)],
    ids=["own-origin", "other-origin", "no-origin"],
)
def test_websocket_cookie_counts_only_from_our_origin(
    browser: Browser, deployment: Deployment, origin_header: str | None, known: bool
) -> None:
    """A websocket handshake carries cookies from any site: the session counts only with an
    Origin of ours (cross-site websocket hijacking); otherwise the caller is anonymous."""
    cookie = browser.client.cookies["twofold_session"]
    headers = {"Cookie": f"twofold_session={cookie}"}
    if origin_header is not None:
        headers["Origin"] = deployment.app_url if origin_header == "app" else origin_header
    url = deployment.app_url.replace("http://", "ws://") + "/own/socket"
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        answer = json.loads(socket.recv(timeout=10))
    assert (answer["user_id"] is not None) is known


def renew(browser: Browser, deployment: Deployment, *roles: str) -> None:
    """Change the browser's user's roles at the server: its next request renews."""
    caller = browser.client.get("/own/whoami").json()["caller"]
    runtime = deployment.server.runtime
    deployment.server.call(runtime.authority.accounts.set_roles(caller["user_id"], list(roles)))


def test_form_with_many_fields_is_not_a_server_error(
    browser: Browser, deployment: Deployment
) -> None:
    """T7: a form of 1,500 fields passes the middleware's CSRF check (bounded by the body
    limit, not a field count) and reaches the app, whose own form parser refuses it: a
    400, never a 500."""
    body = "&".join(f"f{i}=x" for i in range(1500)) + f"&csrf_token={browser.csrf}&text=many"
    answer = browser.client.post(
        "/own/change",
        content=body,
        headers={**origin(deployment), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400, answer.text
    assert "Too many fields" in answer.text  # Starlette's words: the app ran


def test_form_token_in_a_chunked_body(browser: Browser, deployment: Deployment) -> None:
    """A form body arriving in several chunks is read whole for its token and replayed
    whole to the app."""

    def chunks() -> Iterator[bytes]:
        yield b"text=split+acr"
        yield b"oss&csrf_to"
        yield f"ken={browser.csrf}".encode()

    answer = browser.client.post(
        "/own/change",
        content=chunks(),
        headers={**origin(deployment), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "split across"


@pytest.mark.parametrize(
    ("referer", "allowed"),
    [("own", True), ("https://evil.test/page", False), ("http://[", False)],
    ids=["own", "other", "malformed"],
)
def test_referer_stands_in_for_a_missing_origin(
    browser: Browser, deployment: Deployment, referer: str, allowed: bool
) -> None:
    """Without Origin, the Referer must name a trusted origin (a malformed one is 403,
    not a 500)."""
    value = f"{deployment.app_url}/form" if referer == "own" else referer
    headers = {"Referer": value, "X-CSRF-Token": browser.csrf}
    answer = browser.client.post("/own/change", data={"text": "r"}, headers=headers)
    assert answer.status_code == (200 if allowed else 403), answer.text


def test_refused_request_still_hands_over_a_renewed_session(
    browser: Browser, deployment: Deployment
) -> None:
    """S3 with B1: a request that renews the session and is then refused for lack of CSRF
    proof still hands over the new id, so the user is not logged out after the grace."""
    renew(browser, deployment, "user", "refused")
    old_cookie = browser.client.cookies["twofold_session"]
    answer = browser.client.post("/own/change", data={"text": "x"}, headers=origin(deployment))
    assert answer.status_code == 403
    assert browser.client.cookies["twofold_session"] != old_cookie
    assert "x-csrf-token" in answer.headers


def test_csrf_token_for_forms_follows_a_renewal(browser: Browser, deployment: Deployment) -> None:
    """The token an app puts in its forms on the renewing request is the new session's."""
    renew(browser, deployment, "user", "forms")
    answer = browser.client.get("/own/csrf")
    assert answer.json()["csrf_token"] == answer.headers["x-csrf-token"]


def test_websocket_handshake_hands_over_a_renewed_session(
    browser: Browser, deployment: Deployment
) -> None:
    """A handshake that renews the session sets the new cookie on its answer."""
    renew(browser, deployment, "user", "socket")
    cookie = browser.client.cookies["twofold_session"]
    headers = {"Cookie": f"twofold_session={cookie}", "Origin": deployment.app_url}
    url = deployment.app_url.replace("http://", "ws://") + "/own/socket"
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["user_id"] is not None
        set_cookie = socket.response.headers.get_all("set-cookie")
    assert any(c.startswith("twofold_session=") and cookie not in c for c in set_cookie)


def test_store_outage_fails_closed(
    browser: Browser, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O3: when the session cannot be read, a request is 503 with Retry-After and no
    driver words, and a websocket handshake is refused -- never served as anonymous."""
    authority = deployment.auth.runtime.authority

    async def store_down(session_id: str) -> Principal:
        raise StoreUnavailable("connection refused by 10.0.0.7")

    monkeypatch.setattr(authority, "session_principal", store_down)
    answer = browser.client.get("/own/whoami")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert "10.0.0.7" not in answer.text
    cookie = browser.client.cookies["twofold_session"]
    headers = {"Cookie": f"twofold_session={cookie}", "Origin": deployment.app_url}
    url = deployment.app_url.replace("http://", "ws://") + "/own/socket"
    with pytest.raises(InvalidStatus):
        connect(url, additional_headers=headers, open_timeout=10)
