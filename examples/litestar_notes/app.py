"""A Litestar app protected by Twofold in-process: notes that only their author sees.

Users log in at the Twofold server (its pages or ``POST /auth/login``); this app shares the
server's store and settings (the same TWOFOLD_* environment), so the session cookie and the
access tokens the server issues are good here, and a logout anywhere reaches it at once.

    GET  /notes         the caller's notes (session cookie or Bearer token)
    POST /notes         add one: JSON {"text": ...}; with a cookie it needs X-CSRF-Token
    GET  /admin/stats   only for the "admin" role
    GET  /healthz       always 200

Run it beside ``twofold serve`` (port 8000), with the same TWOFOLD_DATA_DIR, this app's
own public URL (the origin of cookie-authenticated changes, for the CSRF check) and the
server's issuer (its tokens name it):

    export TWOFOLD_PUBLIC_URL=http://127.0.0.1:8002 TWOFOLD_ISSUER=http://127.0.0.1:8000
    .venv/bin/uvicorn app:app --app-dir examples/litestar_notes --port 8002
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.response import Response

from twofold.errors import TwofoldError
from twofold.http.errors import plain_error
from twofold.integrate import Principal, Twofold, TwofoldMiddleware
from twofold.integrate.guards import check_roles, signed_in

auth = Twofold()
notes: defaultdict[str, list[str]] = defaultdict(list)  # a real app keeps them in its database


def signed_in_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    signed_in(connection.scope)  # type: ignore[arg-type]


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    check_roles(signed_in(connection.scope), ["admin"])  # type: ignore[arg-type]


def caller(request: Request[Any, Any, Any]) -> Principal:
    return signed_in(request.scope)  # type: ignore[arg-type]


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/notes", guards=[signed_in_guard])
async def list_notes(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    return {"notes": notes[caller(request).user_id]}


@post("/notes", guards=[signed_in_guard], status_code=201)
async def add_note(request: Request[Any, Any, Any], data: dict[str, str]) -> dict[str, str]:
    text = data.get("text", "")[:500]
    notes[caller(request).user_id].append(text)
    return {"text": text}


@get("/admin/stats", guards=[admin_guard])
async def stats() -> dict[str, int]:
    return {"authors": len(notes), "notes": sum(len(n) for n in notes.values())}


def refused(_: Request[Any, Any, Any], exc: TwofoldError) -> Response[bytes]:
    """Twofold's refusals as its JSON errors: 401 not signed in, 403 missing a role."""
    answer = plain_error(exc)
    return Response(answer.body, status_code=answer.status_code, headers=dict(answer.headers))


app = Litestar(
    route_handlers=[healthz, list_notes, add_note, stats],
    middleware=[lambda app: TwofoldMiddleware(app, auth=auth)],
    lifespan=[auth.lifespan],
    exception_handlers={TwofoldError: refused},
)
