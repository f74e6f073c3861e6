"""Server-rendered pages: login, register, profile, logout. No JavaScript needed.

Every form carries a CSRF token: before login it is bound to a random value in its own
cookie (so a hostile site cannot log a victim into the attacker's account), after login to
the session.
"""

from __future__ import annotations

import secrets
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from twofold.authority import Principal
from twofold.errors import (
    AuthenticationFailed,
    CsrfFailed,
    InvalidRequest,
    NotAuthenticated,
)
from twofold.http.csrf import FORM_FIELD
from twofold.http.deps import origin, resolve_session, web
from twofold.http.render import rfc3339
from twofold.http.transport import session_cookie

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(files("twofold.http") / "templates"))

FORM_PURPOSE = "form"


async def _form_field(request: Request, name: str) -> str:
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else ""


async def _current(request: Request) -> tuple[Principal, str] | None:
    session_id = session_cookie(request, web(request).cookies)
    if session_id is None:
        return None
    try:
        caller = await resolve_session(request, session_id)
    except NotAuthenticated:
        return None
    assert caller.session_id is not None
    return caller.principal, caller.session_id


def _anonymous_binding(request: Request) -> str:
    cookies = web(request).cookies
    value = request.cookies.get(cookies.csrf_name)
    if not value or len(value) > 64:
        value = secrets.token_urlsafe(32)
        request.state.new_form_binding = value
    return value


def _render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    response = templates.TemplateResponse(request, template, context, status_code=status)
    fresh = getattr(request.state, "new_form_binding", None)
    if fresh:
        cookies = web(request).cookies
        cookies.set(response, cookies.csrf_name, fresh, max_age=None)
    return response


def _anonymous_page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    binding = _anonymous_binding(request)
    token = web(request).csrf.token_for(binding, purpose=FORM_PURPOSE)
    return _render(request, template, status, csrf_token=token, user=None, **context)


async def _check_anonymous_form(request: Request) -> None:
    binding = request.cookies.get(web(request).cookies.csrf_name, "")
    presented = await _form_field(request, FORM_FIELD)
    web(request).csrf.check(request, binding, presented, purpose=FORM_PURPOSE)


@router.get("/login")
async def login_page(request: Request, registered: str | None = None) -> Response:
    if await _current(request) is not None:
        return RedirectResponse("/", status_code=303)
    notice = "If that address was free, your account is ready: log in." if registered else None
    return _anonymous_page(request, "login.html", notice=notice)


@router.post("/login")
async def login_form(request: Request) -> Response:
    context = web(request)
    email = await _form_field(request, "email")
    try:
        await _check_anonymous_form(request)
        result = await context.runtime.authority.login_session(
            email,
            await _form_field(request, "password"),
            origin=origin(request),
            replacing=session_cookie(request, context.cookies),
        )
    except CsrfFailed:
        return _anonymous_page(
            request, "login.html", 403, email=email, error="The form expired; please try again."
        )
    except AuthenticationFailed as exc:
        return _anonymous_page(request, "login.html", 401, email=email, error=exc.detail)
    response = RedirectResponse("/", status_code=303)
    context.cookies.set_session(response, result.session)
    return response


@router.get("/register")
async def register_page(request: Request) -> Response:
    return _anonymous_page(request, "register.html")


@router.post("/register")
async def register_form(request: Request) -> Response:
    email = await _form_field(request, "email")
    try:
        await _check_anonymous_form(request)
        await web(request).runtime.authority.register(email, await _form_field(request, "password"))
    except CsrfFailed:
        return _anonymous_page(
            request, "register.html", 403, email=email, error="The form expired; please try again."
        )
    except InvalidRequest as exc:
        return _anonymous_page(request, "register.html", 400, email=email, error=exc.detail)
    return RedirectResponse("/login?registered=1", status_code=303)


@router.get("/")
async def profile_page(request: Request) -> Response:
    current = await _current(request)
    if current is None:
        return RedirectResponse("/login", status_code=303)
    principal, session_id = current
    assert principal.session is not None
    record = principal.session
    return _render(
        request,
        "profile.html",
        user=principal,
        csrf_token=web(request).csrf.token_for(session_id),
        session={
            "created": rfc3339(record.created_at),
            "idle_expires": rfc3339(record.idle_expires_at),
            "absolute_expires": rfc3339(record.absolute_expires_at),
            "client_address": record.client_address,
        },
    )


@router.post("/logout")
async def logout_form(request: Request) -> Response:
    context = web(request)
    session_id = session_cookie(request, context.cookies)
    response = RedirectResponse("/login", status_code=303)
    if session_id is not None:
        try:
            context.csrf.check(request, session_id, await _form_field(request, FORM_FIELD))
        except CsrfFailed:
            # A stale tab's form: back to the profile, whose fresh form works (or, if the
            # session is gone, on to the login page). Nothing was ended.
            return RedirectResponse("/", status_code=303)
        try:
            caller = await resolve_session(request, session_id)
        except NotAuthenticated:
            pass  # already over
        else:
            await context.runtime.authority.logout(
                caller.principal, session_id=caller.session_id, origin=origin(request)
            )
    context.cookies.clear(response, context.cookies.session_name)
    return response
