"""Signing in and out: the login and register forms, the profile page, logging out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from twofold.errors import AuthenticationFailed, CsrfFailed, InvalidRequest, Throttled
from twofold.http.csrf import FORM_FIELD
from twofold.http.deps import origin, remember_device, web
from twofold.http.pages.forms import (
    FORM_EXPIRED,
    anonymous_page,
    check_anonymous_form,
    form_field,
    page,
    require_signed_in,
    see_other,
    signed_in,
)
from twofold.http.transport import session_cookie

router = APIRouter()

REGISTERED = "If that address was free, your account is ready: log in."
CHANGED = {
    "password": "Your password was changed. Every other device was logged out.",
    "email": "Your e-mail address was changed.",
}


@router.get("/login")
async def login_page(request: Request, registered: str | None = None) -> Response:
    if await signed_in(request) is not None:
        return see_other("/")
    return anonymous_page(request, "login.html", notice=REGISTERED if registered else None)


@router.post("/login")
async def login_form(request: Request) -> Response:
    context = web(request)
    email = await form_field(request, "email")
    try:
        await check_anonymous_form(request)
        result = await context.runtime.authority.login_session(
            email,
            await form_field(request, "password"),
            origin=origin(request),
            replacing=session_cookie(request, context.cookies),
        )
    except CsrfFailed:
        return anonymous_page(request, "login.html", 403, email=email, error=FORM_EXPIRED)
    except AuthenticationFailed as exc:
        return anonymous_page(request, "login.html", 401, email=email, error=exc.detail)
    except Throttled as exc:
        return anonymous_page(
            request,
            "login.html",
            429,
            {"Retry-After": str(exc.retry_after)},
            email=email,
            error=exc.detail,
        )
    response = see_other("/")
    context.cookies.set_session(response, result.session)
    remember_device(request, response, result.user)
    return response


@router.get("/register")
async def register_page(request: Request) -> Response:
    return anonymous_page(request, "register.html")


@router.post("/register")
async def register_form(request: Request) -> Response:
    email = await form_field(request, "email")
    try:
        await check_anonymous_form(request)
        await web(request).runtime.authority.register(email, await form_field(request, "password"))
    except CsrfFailed:
        return anonymous_page(request, "register.html", 403, email=email, error=FORM_EXPIRED)
    except InvalidRequest as exc:
        return anonymous_page(request, "register.html", 400, email=email, error=exc.detail)
    return see_other("/login?registered=1")


@router.get("/")
async def profile_page(request: Request, changed: str | None = None) -> Response:
    who = await require_signed_in(request)
    assert who.principal.session is not None
    return page(
        request,
        who,
        "profile.html",
        active="account",
        session=who.principal.session,
        notice=CHANGED.get(changed or ""),
    )


@router.post("/logout")
async def logout_form(request: Request) -> Response:
    context = web(request)
    presented = session_cookie(request, context.cookies)
    response = see_other("/login")
    if presented is None:
        # Nothing to end, and nothing to clear: a cross-site form (which the SameSite
        # cookie does not come with) must not be able to delete the victim's cookie.
        return response
    try:
        context.csrf.check(request, presented, await form_field(request, FORM_FIELD))
    except CsrfFailed:
        # A stale tab's form: back to the profile, whose fresh form works (or, if the
        # session is gone, on to the login page). Nothing was ended.
        return see_other("/")
    who = await signed_in(request)
    if who is not None:  # else it is already over
        await context.runtime.authority.logout(
            who.principal, session_id=who.session_id, origin=origin(request)
        )
    context.cookies.clear(response, context.cookies.session_name)
    return response
