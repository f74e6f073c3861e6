"""Authenticate every request of your own ASGI app by session cookie or Bearer token.

A plain ASGI middleware, so it works under FastAPI, Starlette and Litestar alike. It leaves
the caller (a :class:`~twofold.authority.Principal`, or None) in the scope for the route
(``twofold.integrate.context``); whether a route needs one is the route's business
(``twofold.integrate.fastapi``, ``twofold.integrate.guards``). What it refuses itself:

- a Bearer token that is not good: 401 (a bad token is never rescued by a cookie);
- a state-changing request (not GET/HEAD/OPTIONS) that a session cookie authenticates,
  without CSRF proof (SECURITY.md B1): 403. The proof is the session's token in the
  ``X-CSRF-Token`` header or, for a urlencoded form, its ``csrf_token`` field, and an
  Origin or Referer that is Twofold's public URL or a trusted origin;
- a store or revocation-stream outage: 503 (O3), never a wrong answer.

A websocket handshake gets its caller the same way, or None when the credential is not
good; a session cookie counts only with an Origin of ours; an outage refuses the handshake.

A session cookie that is no longer good (logged out, expired, password changed) makes the
caller anonymous and is cleared. A session renewed on the way (its user's roles changed,
S3) continues under a new id, which the response hands to the client.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twofold.authority import Principal
from twofold.errors import (
    CsrfFailed,
    NotAuthenticated,
    PayloadTooLarge,
    StoreUnavailable,
    TwofoldError,
)
from twofold.http.body_limit import replaying
from twofold.http.csrf import FORM_FIELD, HEADER, SAFE_METHODS
from twofold.http.errors import plain_error
from twofold.http.session_renewal import add_cookies, hand_over
from twofold.http.transport import bearer_token, session_cookie
from twofold.integrate.context import set_principal
from twofold.integrate.embedded import Twofold

FORM_TYPE = "application/x-www-form-urlencoded"


class TwofoldMiddleware:
    """``audience``: the ``aud`` Bearer tokens must carry here; Twofold's own audience by
    default. Set it to the audience this app is registered under in ``token_audiences``
    to take the short-lived tokens of ``POST /auth/token``."""

    def __init__(self, app: ASGIApp, *, auth: Twofold, audience: str | None = None) -> None:
        self.app = app
        self.auth = auth
        self.audience = audience

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        principal: Principal | None = None
        dead_cookie = False
        try:
            principal, dead_cookie = await self._caller(connection)
            if principal is not None and principal.mode == "session":
                receive = await self._check_csrf(connection, receive, principal)
        except TwofoldError as exc:
            # A session renewed on the way is handed over even with a refusal: its old id
            # dies after a grace, and the user with it.
            await plain_error(exc)(scope, receive, self._handing_over(send, principal))
            return
        set_principal(scope, principal)
        if dead_cookie:
            send = self._clearing(send)
        await self.app(scope, receive, self._handing_over(send, principal))

    async def _caller(self, connection: HTTPConnection) -> tuple[Principal | None, bool]:
        """The caller, and whether a dead session cookie came (to be cleared)."""
        authority = self.auth.runtime.authority
        token = bearer_token(connection)
        if token is not None:
            return authority.token_principal(token, audience=self.audience), False
        session_id = session_cookie(connection, self.auth.cookies)
        if session_id is None:
            return None, False
        try:
            return await authority.session_principal(session_id), False
        except NotAuthenticated:
            return None, True

    async def _check_csrf(
        self, connection: HTTPConnection, receive: Receive, principal: Principal
    ) -> Receive:
        """CSRF proof for a state change that the session cookie authenticates (B1); the
        ``receive`` to pass on (a form body read for its token is replayed)."""
        if connection.scope["method"] in SAFE_METHODS:
            return receive
        presented = connection.headers.get(HEADER)
        if presented is None:
            presented, receive = await _form_token(connection, receive, self._body_limit)
        # The token is bound to the id the browser sent, renewed or not.
        session_id = session_cookie(connection, self.auth.cookies)
        assert session_id is not None
        self.auth.csrf.check(connection, session_id, presented)
        return receive

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket handshake gets its caller the same way, or None when its credential
        is not good. A browser sends cookies with a handshake from any site, so a cookie
        counts only with an Origin of ours (cross-site websocket hijacking). A store
        outage refuses the handshake (O3)."""
        connection = HTTPConnection(scope)
        principal: Principal | None = None
        try:
            if bearer_token(connection) is not None or self._origin_is_ours(connection):
                principal, _ = await self._caller(connection)
        except StoreUnavailable:
            await send({"type": "websocket.close", "code": 1011})
            return
        except TwofoldError:
            principal = None
        set_principal(scope, principal)
        await self.app(scope, receive, self._handing_over(send, principal))

    def _origin_is_ours(self, connection: HTTPConnection) -> bool:
        if "origin" not in connection.headers:
            return False
        try:
            self.auth.csrf.check_origin(connection)
        except CsrfFailed:
            return False
        return True

    @property
    def _body_limit(self) -> int:
        return self.auth.settings.max_body_bytes

    def _handing_over(self, send: Send, principal: Principal | None) -> Send:
        """``send``, adding a renewed session's cookie (and CSRF token) to the response or
        the websocket accept."""
        renewed = principal.renewed if principal is not None else None
        if renewed is None:
            return send
        cookies, csrf = self.auth.cookies, self.auth.csrf

        async def send_renewed(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message.setdefault("headers", [])
                hand_over(message, renewed, cookies, csrf)
            await send(message)

        return send_renewed

    def _clearing(self, send: Send) -> Send:
        """``send``, clearing a dead session cookie so the browser stops sending it (S7)."""
        cookies = self.auth.cookies

        async def send_cleared(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_cookies(message, cookies, lambda r: cookies.clear(r, cookies.session_name))
            await send(message)

        return send_cleared


async def _form_token(
    connection: HTTPConnection, receive: Receive, limit: int
) -> tuple[str | None, Receive]:
    """The ``csrf_token`` field of a urlencoded form, reading the body (at most ``limit``
    bytes) and handing back a ``receive`` that replays it to the app."""
    media_type = connection.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_TYPE:
        return None, receive
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise CsrfFailed("The request body did not arrive.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    # Bounded by the body limit; no field-count limit, which would raise on a big form.
    values = parse_qs(body.decode("latin-1")).get(FORM_FIELD)
    return (values[0] if values else None), replaying(body, receive)
