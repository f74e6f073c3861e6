"""What every route needs: the server's parts, and who is calling."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from twofold.accounts import ROLE_ADMIN
from twofold.authority import Origin, Principal
from twofold.errors import Forbidden, InvalidToken, NotAuthenticated, UnsupportedMediaType
from twofold.http.csrf import HEADER, SAFE_METHODS, CsrfGuard
from twofold.http.session_renewal import RENEWED_SESSION
from twofold.http.transport import CookiePolicy, bearer_token, session_cookie
from twofold.runtime import Runtime
from twofold.store.records import User


@dataclass(frozen=True, slots=True)
class Web:
    """The runtime plus how it meets HTTP."""

    runtime: Runtime
    cookies: CookiePolicy
    csrf: CsrfGuard


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    # The raw id when the session cookie authenticated the request; it never leaves here
    # except into the Set-Cookie header.
    session_id: str | None


def web(request: Request) -> Web:
    context: Web = request.app.state.web
    return context


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def origin(request: Request) -> Origin:
    return origin_of(request, web(request).cookies)


def origin_of(connection: HTTPConnection, cookies: CookiePolicy) -> Origin:
    """Where a request came from: its address, user agent and known-device cookie."""
    return Origin(
        connection.client.host if connection.client else None,
        connection.headers.get("user-agent"),
        connection.cookies.get(cookies.device_name),
    )


def remember_device(request: Request, response: Response, user: User) -> None:
    """After a successful login: mark this browser as one that has proved ``user``, so its
    future attempts are not slowed down by failures from elsewhere (``throttle.py``)."""
    context = web(request)
    context.cookies.set_device(response, context.runtime.authority.throttle.device_token(user))


def require_json(request: Request) -> None:
    """JSON routes take JSON only: a form or text/plain body (what a cross-site form can
    send without a CORS preflight) is refused before it is parsed."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType()


def require_json_if_body(request: Request) -> None:
    """For routes whose body is optional: no body is fine, any body must be JSON."""
    headers = request.headers
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        require_json(request)


async def authenticate(request: Request) -> Caller:
    """Bearer header first (a bad one is never rescued by a cookie), else the session cookie.

    A cookie-authenticated request that changes state must carry CSRF proof.
    """
    context = web(request)
    token = bearer_token(request)
    if token is not None:
        principal = context.runtime.authority.token_principal(token)
        # Twofold's own endpoints take login tokens only. A token with a scope was made
        # for another application (its audience already keeps it out): never here.
        if principal.claims is not None and principal.claims.scope is not None:
            raise InvalidToken("wrong_audience")
        return Caller(principal, None)
    session_id = session_cookie(request, context.cookies)
    if session_id is None:
        raise NotAuthenticated()
    if request.method not in SAFE_METHODS:
        context.csrf.check(request, session_id, request.headers.get(HEADER))
    return await resolve_session(request, session_id)


async def resolve_session(request: Request, session_id: str) -> Caller:
    """The caller behind a session id. A session renewed on the way (its user's roles
    changed) continues under the new id, which the response hands to the client
    (``http/session_renewal.py``)."""
    principal = await web(request).runtime.authority.session_principal(session_id)
    if principal.renewed is not None:
        setattr(request.state, RENEWED_SESSION, principal.renewed)
        return Caller(principal, principal.renewed.id)
    return Caller(principal, session_id)


async def authenticate_admin(request: Request) -> Caller:
    """An authenticated caller with the ``admin`` role (roles as of this request)."""
    caller = await authenticate(request)
    if ROLE_ADMIN not in caller.principal.roles:
        raise Forbidden("This needs the admin role.")
    return caller
