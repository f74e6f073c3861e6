"""Orders: a microservice of its own that takes Twofold's access tokens.

It shares nothing with the Twofold server -- no store, no settings, no keys on disk. It
knows the issuer's URL and its own audience, reads the published keys (JWKS), follows the
revocation feed, and checks every token in memory: no call to Twofold per request. A
logout, password change or lock on the server refuses the user's tokens here within a
round trip of the feed; if the feed is lost, tokens are refused with a 503 until it is back.

    GET /orders    the caller's orders; needs a token for this audience with scope "read"
    GET /healthz   200 while the revocation feed is current, else 503

Tokens for it come from the server's ``POST /auth/token`` (``{"audience": "orders",
"scope": "read"}``, with a session or a scoped token), the server having ``orders`` in
``TWOFOLD_TOKEN_AUDIENCES``.

Environment: ``TWOFOLD_ISSUER`` (the server's issuer URL, required), ``SERVICE_AUDIENCE``
(default ``orders``), and ``SERVICE_CLIENT_ID`` with ``SERVICE_CLIENT_SECRET`` when the
server's feed is not public. Run it:

    TWOFOLD_ISSUER=http://127.0.0.1:8000 uvicorn app:app --app-dir examples/microservice --port 8003
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from twofold.errors import TwofoldError
from twofold.http.errors import plain_error
from twofold.integrate.guards import check_scopes, signed_in
from twofold.remote import RemoteAuthMiddleware, RemoteVerifier


def create_app(verifier: RemoteVerifier) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Reads discovery and the JWKS, and follows the feed until caught up, before the
        # first request; stops following at shutdown.
        async with verifier:
            yield

    async def orders(request: Request) -> Response:
        caller = signed_in(request.scope)
        check_scopes(caller, ["read"])
        # A real service reads them from its own database.
        return JSONResponse({"user": caller.user_id, "orders": [{"id": 1, "item": "tea"}]})

    async def healthz(request: Request) -> Response:
        current = verifier.staleness() <= verifier.policy.max_staleness
        return JSONResponse(
            {"status": "ok" if current else "feed_unavailable"}, status_code=200 if current else 503
        )

    async def refuse(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TwofoldError)
        return plain_error(exc)

    return Starlette(
        routes=[Route("/orders", orders), Route("/healthz", healthz)],
        middleware=[Middleware(RemoteAuthMiddleware, verifier=verifier)],
        exception_handlers={TwofoldError: refuse},
        lifespan=lifespan,
    )


def from_environment() -> Starlette:
    client_id = os.environ.get("SERVICE_CLIENT_ID")
    secret = os.environ.get("SERVICE_CLIENT_SECRET")
    verifier = RemoteVerifier(
        os.environ["TWOFOLD_ISSUER"],
        audience=os.environ.get("SERVICE_AUDIENCE", "orders"),
        client_credentials=(client_id, secret) if client_id and secret else None,
    )
    return create_app(verifier)


app = from_environment()
