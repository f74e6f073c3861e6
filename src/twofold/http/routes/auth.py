"""The JSON API under /auth: register, login (both modes), refresh, me, logout, password,
and the caller's devices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from twofold.authority import TokenLogin
from twofold.devices import session_handle
from twofold.errors import InvalidGrant
from twofold.http.deps import Web, authenticate, origin, remember_device, require_json, web
from twofold.http.errors import render_error
from twofold.http.render import device_out, rfc3339
from twofold.http.schemas import (
    DevicesOut,
    EmailChangeIn,
    EmailChangeOut,
    EndedOut,
    ErrorOut,
    LoginIn,
    MeOut,
    PasswordChangeIn,
    PasswordChangeOut,
    RefreshIn,
    RegisterIn,
    RegisterOut,
    SessionLoginOut,
    TokenOut,
    UserOut,
)
from twofold.http.transport import refresh_cookie, session_cookie

router = APIRouter(prefix="/auth", tags=["auth"])
JSON_BODY = [Depends(require_json)]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}


@router.post(
    "/register",
    status_code=201,
    response_model=RegisterOut,
    responses=ERRORS,
    dependencies=JSON_BODY,
)
async def register(body: RegisterIn, request: Request) -> RegisterOut:
    """Create an account. A taken address gets the very same answer (no enumeration)."""
    web(request).csrf.check_origin(request)
    email = await web(request).runtime.authority.register(body.email, body.password)
    return RegisterOut(email=email)


@router.post(
    "/login",
    response_model=SessionLoginOut | TokenOut,
    responses=ERRORS,
    dependencies=JSON_BODY,
    description="`mode: session` sets the session cookie and answers the CSRF token; "
    "`mode: jwt` answers a Bearer access token and a refresh token (in the body, or with "
    "`refresh_transport: cookie` in an HttpOnly cookie for /auth/refresh).",
)
async def login(body: LoginIn, request: Request) -> Response:
    context = web(request)
    context.csrf.check_origin(request)
    authority = context.runtime.authority
    if body.mode == "jwt":
        issued = await authority.login_token(body.email, body.password, origin=origin(request))
        browser = body.refresh_transport == "cookie"
        response = _token_response(context, issued, cookie=browser)
        if browser:  # an API client keeps no cookies: it gets none
            remember_device(request, response, issued.user)
        return response
    result = await authority.login_session(
        body.email,
        body.password,
        origin=origin(request),
        replacing=session_cookie(request, context.cookies),
    )
    record = result.session.record
    payload = SessionLoginOut(
        user=UserOut(id=result.user.id, email=result.user.email, roles=list(result.user.roles)),
        csrf_token=context.csrf.token_for(result.session.id),
        expires_at=rfc3339(record.absolute_expires_at),
    )
    response = JSONResponse(payload.model_dump())
    context.cookies.set_session(response, result.session)
    remember_device(request, response, result.user)
    return response


def _token_out(issued: TokenLogin, *, with_refresh: bool) -> TokenOut:
    return TokenOut(
        access_token=issued.access_token,
        expires_in=int(issued.claims.exp - issued.claims.iat),
        refresh_token=issued.refresh.token if with_refresh else None,
    )


def _token_response(context: Web, issued: TokenLogin, *, cookie: bool) -> Response:
    response = JSONResponse(
        _token_out(issued, with_refresh=not cookie).model_dump(exclude_none=True)
    )
    if cookie:
        family = issued.refresh.family
        lifetime = int(family.absolute_expires_at - family.last_used_at)
        context.cookies.set_refresh(response, issued.refresh.token, lifetime)
    return response


@router.post("/refresh", response_model=TokenOut, responses=ERRORS, dependencies=JSON_BODY)
async def refresh(body: RefreshIn, request: Request) -> Response:
    """Rotate a refresh token into a new pair. A token used twice (outside the short
    grace for a client's racing requests) ends its whole family: 401 `invalid_grant`."""
    context = web(request)
    token = body.refresh_token
    from_cookie = token is None
    if token is None:
        # A cookie is sent by the browser on its own: the request must come from our pages.
        context.csrf.check_origin(request)
        token = refresh_cookie(request, context.cookies)
        if token is None:
            raise InvalidGrant("No refresh token was sent.")
    try:
        issued = await context.runtime.authority.refresh(token, origin=origin(request))
    except InvalidGrant as exc:
        if not from_cookie:
            raise
        # The cookie is dead: clear it, so the browser stops sending it.
        response = await render_error(request, exc)
        context.cookies.clear_refresh(response)
        return response
    return _token_response(context, issued, cookie=from_cookie)


@router.get("/me", response_model=MeOut, responses=ERRORS)
async def me(request: Request) -> Response:
    """The caller, their roles, and how they are authenticated."""
    caller = await authenticate(request)
    principal = caller.principal
    auth: dict[str, str]
    if principal.session is not None and caller.session_id is not None:
        auth = {
            "mode": "session",
            "expires_at": rfc3339(principal.session.idle_expires_at),
            "csrf_token": web(request).csrf.token_for(caller.session_id),
        }
    else:
        assert principal.claims is not None
        auth = {"mode": "jwt", "expires_at": rfc3339(principal.claims.exp)}
        if principal.claims.scope is not None:
            auth["scope"] = principal.claims.scope
    # MeOut's shape, built by hand: a model and its validation would cost the hottest route
    # a tenth of its time (tests/http pin the shape against the OpenAPI schema).
    return JSONResponse(
        {
            "id": principal.user_id,
            "email": principal.email,
            "roles": list(principal.roles),
            "auth": auth,
        }
    )


@router.post("/logout", status_code=204, responses=ERRORS)
async def logout(request: Request) -> Response:
    """End the current session, or the current token family and every access token
    issued from it; clear the cookies."""
    context = web(request)
    caller = await authenticate(request)
    await context.runtime.authority.logout(
        caller.principal, session_id=caller.session_id, origin=origin(request)
    )
    response = Response(status_code=204)
    if caller.session_id is not None:
        context.cookies.clear(response, context.cookies.session_name)
    else:
        context.cookies.clear_refresh(response)
    return response


@router.post(
    "/password", response_model=PasswordChangeOut, responses=ERRORS, dependencies=JSON_BODY
)
async def change_password(body: PasswordChangeIn, request: Request) -> Response:
    """Change the password (the current one is asked for) and end every other session and
    token family. The caller continues with a rotated session or a new token pair."""
    context = web(request)
    caller = await authenticate(request)
    changed = await context.runtime.authority.change_password(
        caller.principal,
        body.current_password,
        body.new_password,
        session_id=caller.session_id,
        origin=origin(request),
    )
    if changed.session is not None:
        response: Response = JSONResponse(
            PasswordChangeOut(csrf_token=context.csrf.token_for(changed.session.id)).model_dump(
                exclude_none=True
            )
        )
        context.cookies.set_session(response, changed.session)
    else:
        assert changed.tokens is not None
        response = _token_response(
            context, changed.tokens, cookie=body.refresh_transport == "cookie"
        )
    # The known-device cookie names the password epoch: this browser gets a new one.
    remember_device(request, response, changed.user)
    return response


@router.post("/email", response_model=EmailChangeOut, responses=ERRORS, dependencies=JSON_BODY)
async def change_email(body: EmailChangeIn, request: Request) -> Response:
    """Change the e-mail address (the current password is asked for; 409 if another
    account has the address). Access tokens name the address, so the user's are cut off:
    clients refresh. A session continues under a new id, with a new CSRF token."""
    context = web(request)
    caller = await authenticate(request)
    changed = await context.runtime.authority.change_email(
        caller.principal,
        body.current_password,
        body.email,
        session_id=caller.session_id,
        origin=origin(request),
    )
    out = EmailChangeOut(email=changed.user.email)
    if changed.session is not None:
        out.csrf_token = context.csrf.token_for(changed.session.id)
    response = JSONResponse(out.model_dump(exclude_none=True))
    if changed.session is not None:
        context.cookies.set_session(response, changed.session)
    remember_device(request, response, changed.user)
    return response


@router.get("/sessions", response_model=DevicesOut, responses=ERRORS)
async def sessions(request: Request) -> Response:
    """The caller's sessions and token families (devices); `current` marks this one."""
    caller = await authenticate(request)
    devices = await web(request).runtime.authority.devices(caller.principal)
    return JSONResponse(DevicesOut(sessions=[device_out(d) for d in devices]).model_dump())


@router.delete("/sessions/{device_id}", status_code=204, responses=ERRORS)
async def revoke_session(device_id: str, request: Request) -> Response:
    """End one of the caller's sessions or token families (404 if it is not theirs)."""
    context = web(request)
    caller = await authenticate(request)
    principal = caller.principal
    device = await context.runtime.authority.revoke_device(
        device_id, owner=principal.user_id, actor=principal, origin=origin(request)
    )
    response = Response(status_code=204)
    if principal.session is not None and device.id == session_handle(principal.session.id_hash):
        context.cookies.clear(response, context.cookies.session_name)
    return response


@router.delete("/sessions", response_model=EndedOut, responses=ERRORS)
async def revoke_other_sessions(request: Request) -> Response:
    """End every session and token family of the caller except the current one."""
    caller = await authenticate(request)
    ended = await web(request).runtime.authority.revoke_other_devices(
        caller.principal, session_id=caller.session_id, origin=origin(request)
    )
    return JSONResponse(EndedOut(ended=ended).model_dump())
