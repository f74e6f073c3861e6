"""Hands a renewed session id to the client (SECURITY.md S3).

When a request finds that the user's roles changed since its session id was issued, the
core continues the session under a new id (``Principal.renewed``) and ``authenticate``
leaves it in the request state. Whatever the route answers, this middleware then sets the
new cookie and sends the new id's CSRF token in ``X-CSRF-Token`` — unless the route set
or cleared the session cookie itself (login, logout, password change), which wins.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
                cookies = web.cookies
                headers = MutableHeaders(scope=message)
                prefix = f"{cookies.session_name}=".encode()
                already = any(
                    name == b"set-cookie" and value.startswith(prefix)
                    for name, value in message.get("headers", [])
                )
                if not already:
                    # The cookie's attributes live in CookiePolicy, which writes them onto
                    # a response: let it write onto a scratch one and copy the header.
                    scratch = Response()
                    cookies.set_session(scratch, renewed)
                    for name, value in scratch.raw_headers:
                        if name == b"set-cookie":
                            headers.append("set-cookie", value.decode("latin-1"))
                    headers[CSRF_HEADER] = web.csrf.token_for(renewed.id)
            await send(message)

        await self.app(scope, receive, send_renewal)
