"""Hands a renewed session id to the client (SECURITY.md S3).

When a request finds that the user's roles changed since its session id was issued, the
core continues the session under a new id (``Principal.renewed``) and ``authenticate``
leaves it in the request state. Whatever the route answers, this middleware then sets the
new cookie and sends the new id's CSRF token in ``X-CSRF-Token`` — unless the route set
or cleared the session cookie itself (login, logout, password change), which wins.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twofold.http.csrf import CsrfGuard
from twofold.http.transport import CookiePolicy
from twofold.sessions import IssuedSession

RENEWED_SESSION = "twofold_renewed_session"
CSRF_HEADER = "X-CSRF-Token"


class SessionRenewalMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_renewal(message: Message) -> None:
            renewed: IssuedSession | None = scope.get("state", {}).get(RENEWED_SESSION)
            if message["type"] == "http.response.start" and renewed is not None:
                web = scope["app"].state.web
                hand_over(message, renewed, web.cookies, web.csrf)
            await send(message)

        await self.app(scope, receive, send_renewal)


def hand_over(
    message: Message, renewed: IssuedSession, cookies: CookiePolicy, csrf: CsrfGuard
) -> None:
    """Add the renewed session's cookie and CSRF token to a response start ``message``,
    unless the response sets the session cookie itself."""
    if add_cookies(message, cookies, lambda response: cookies.set_session(response, renewed)):
        MutableHeaders(scope=message)[CSRF_HEADER] = csrf.token_for(renewed.id)


def add_cookies(message: Message, cookies: CookiePolicy, write: Callable[[Response], None]) -> bool:
    """Let ``write`` set cookies on a scratch response and copy them into a response start
    ``message`` (the attributes live in ``CookiePolicy``, which writes onto responses).
    Nothing is added, and False returned, when the response sets the session cookie
    itself: what the route did wins."""
    prefix = f"{cookies.session_name}=".encode()
    if any(
        name == b"set-cookie" and value.startswith(prefix)
        for name, value in message.get("headers", [])
    ):
        return False
    scratch = Response()
    write(scratch)
    headers = MutableHeaders(scope=message)
    for name, value in scratch.raw_headers:
        if name == b"set-cookie":
            headers.append("set-cookie", value.decode("latin-1"))
    return True
