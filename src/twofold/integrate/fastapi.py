"""FastAPI dependencies: ``current_user``, ``optional_user``, ``require_roles``,
``require_scopes``.

They read the caller that ``TwofoldMiddleware`` (in-process) or ``RemoteAuthMiddleware``
(a resource server) put in the request scope::

    @app.get("/me")
    async def me(user: CurrentUser) -> ...

    Reader = Annotated[Principal, Depends(require_scopes("read"))]

    @app.get("/orders")
    async def orders(user: Reader) -> ...

A missing or refused caller is an ``HTTPException``: 401 with ``WWW-Authenticate: Bearer``,
or 403 naming what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from starlette.responses import Response

from twofold.authority import Principal
from twofold.errors import Forbidden, NotAuthenticated, TwofoldError
from twofold.http.errors import REALM, plain_error
from twofold.integrate import guards


def optional_user(request: Request) -> Principal | None:
    """The caller, or None for an anonymous request."""
    return guards.caller(request.scope)


def current_user(request: Request) -> Principal:
    """The caller; 401 when the request carried no good credential."""
    try:
        return guards.signed_in(request.scope)
    except NotAuthenticated as exc:
        raise HTTPException(401, exc.detail, headers={"WWW-Authenticate": REALM}) from None


#: The caller, as a parameter type: ``async def route(user: CurrentUser)``.
CurrentUser = Annotated[Principal, Depends(current_user)]
#: The caller or None: ``async def route(user: OptionalUser)``.
OptionalUser = Annotated[Principal | None, Depends(optional_user)]


def require_roles(*roles: str) -> Callable[[Request], Principal]:
    """A dependency: the caller, who must hold every one of ``roles`` (else 403)."""
    return _requiring(roles, guards.check_roles)


def require_scopes(*scopes: str) -> Callable[[Request], Principal]:
    """A dependency: the caller, whose credential must carry every one of ``scopes``."""
    return _requiring(scopes, guards.check_scopes)


def _requiring(
    wanted: Iterable[str], check: Callable[[Principal, Iterable[str]], None]
) -> Callable[[Request], Principal]:
    wanted = tuple(wanted)

    def dependency(request: Request) -> Principal:
        principal = current_user(request)
        try:
            check(principal, wanted)
        except Forbidden as exc:
            raise HTTPException(403, exc.detail) from None
        return principal

    return dependency


def answer_twofold_errors(app: FastAPI) -> None:
    """Answer the errors Twofold's calls raise in your routes (``CsrfFailed`` from
    ``Twofold.log_in``, ``Throttled``, ``StoreUnavailable`` ...) as Twofold's JSON errors,
    with their status and headers, instead of a 500."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TwofoldError)
        return plain_error(exc)

    app.add_exception_handler(TwofoldError, handler)
