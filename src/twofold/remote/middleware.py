"""Authenticate each request of a resource server by its Bearer token, verified remotely.

A plain ASGI middleware (Starlette, FastAPI, Litestar alike), the resource server's
counterpart of ``twofold.integrate.TwofoldMiddleware``: it leaves the caller, a
:class:`~twofold.authority.Principal` or None, in the scope under the same key
(``twofold.integrate.context``), so the same dependencies and guards work behind either.
Whether a route needs a caller is the route's business. What it refuses itself:

- a Bearer token that is not good (bad signature, expired, another audience, revoked):
  401 ``{"error": "invalid_token", "detail": ...}`` with ``WWW-Authenticate``;
- any token while the revocation feed is lost and the verifier fails closed: 503
  ``{"error": "feed_unavailable", ...}`` with ``Retry-After``.

No token (or another scheme, such as Basic) leaves the caller None. Cookies play no part:
a resource server takes Bearer tokens only, so it needs no CSRF defence.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from twofold.authority import Principal
from twofold.errors import InvalidToken
from twofold.http.errors import plain_error
from twofold.http.transport import bearer_token
from twofold.integrate.context import set_principal
from twofold.remote.errors import FeedUnavailable
from twofold.remote.verifier import RemoteVerifier

__all__ = ["RemoteAuthMiddleware"]


class RemoteAuthMiddleware:
    def __init__(self, app: ASGIApp, verifier: RemoteVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                set_principal(scope, None)  # a websocket route authenticates itself
            await self.app(scope, receive, send)
            return
        try:
            token = bearer_token(HTTPConnection(scope))
            principal = None
            if token is not None:
                claims = await self.verifier.verify(token)
                # Which scopes a token without a ``scope`` claim implies is the issuer's
                # configuration, unknown here: none.
                principal = Principal.from_claims(claims, unscoped=())
        except (InvalidToken, FeedUnavailable) as exc:
            await plain_error(exc)(scope, receive, send)
            return
        set_principal(scope, principal)
        await self.app(scope, receive, send)
