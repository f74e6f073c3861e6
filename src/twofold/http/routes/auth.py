"""The JSON API under /auth: register, login (both modes), me, logout, password."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from twofold.http.deps import authenticate, client_address, require_json, web
from twofold.http.schemas import (
    AuthInfo,
    ErrorOut,
    LoginIn,
    MeOut,
    PasswordChangeIn,
    PasswordChangeOut,
    RegisterIn,
    RegisterOut,
    SessionLoginOut,
    TokenOut,
    UserOut,
)
from twofold.http.transport import session_cookie

router = APIRouter(prefix="/auth", tags=["auth"])
JSON_BODY = [Depends(require_json)]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 413, 422, 503)
}


def rfc3339(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


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
    "`mode: jwt` answers a Bearer access token.",
)
async def login(body: LoginIn, request: Request) -> Response:
    context = web(request)
    context.csrf.check_origin(request)
    authority = context.runtime.authority
    if body.mode == "jwt":
        issued = await authority.login_token(body.email, body.password)
        out = TokenOut(
            access_token=issued.access_token,
            expires_in=int(issued.claims.exp - issued.claims.iat),
        )
        return JSONResponse(out.model_dump())
    result = await authority.login_session(
        body.email,
        body.password,
        client_address=client_address(request),
        user_agent=request.headers.get("user-agent"),
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
    return response


@router.get("/me", response_model=MeOut, responses=ERRORS)
async def me(request: Request) -> Response:
    """The caller, their roles, and how they are authenticated."""
    caller = await authenticate(request)
    principal = caller.principal
    if principal.session is not None and caller.session_id is not None:
        auth = AuthInfo(
            mode="session",
            expires_at=rfc3339(principal.session.idle_expires_at),
            csrf_token=web(request).csrf.token_for(caller.session_id),
        )
    else:
        assert principal.claims is not None
        auth = AuthInfo(
            mode="jwt", expires_at=rfc3339(principal.claims.exp), scope=principal.claims.scope
        )
    out = MeOut(id=principal.user_id, email=principal.email, roles=list(principal.roles), auth=auth)
    # Built by hand: FastAPI's response validation would double the cost of the hottest route.
    return JSONResponse(out.model_dump(exclude_none=True))


@router.post("/logout", status_code=204, responses=ERRORS)
async def logout(request: Request) -> Response:
    """End the current session and clear its cookie. With a Bearer token this ends
    nothing yet: access tokens live out their short lifetime (revocation comes next)."""
    context = web(request)
    caller = await authenticate(request)
    response = Response(status_code=204)
    if caller.session_id is not None:
        await context.runtime.authority.logout_session(caller.session_id)
        context.cookies.clear(response, context.cookies.session_name)
    return response


@router.post(
    "/password", response_model=PasswordChangeOut, responses=ERRORS, dependencies=JSON_BODY
)
async def change_password(body: PasswordChangeIn, request: Request) -> Response:
    """Change the password (the current one is asked for) and end every other session."""
    context = web(request)
    caller = await authenticate(request)
    issued = await context.runtime.authority.change_password(
        caller.principal,
        body.current_password,
        body.new_password,
        session_id=caller.session_id,
    )
    if issued is None:
        return JSONResponse({})
    response = JSONResponse(
        PasswordChangeOut(csrf_token=context.csrf.token_for(issued.id)).model_dump()
    )
    context.cookies.set_session(response, issued)
    return response
