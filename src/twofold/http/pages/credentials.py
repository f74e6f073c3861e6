"""Changing the password or the e-mail address; each asks for the current password (P4)
and continues the session under a new id (S3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from twofold.authority import EmailChanged, PasswordChanged
from twofold.errors import (
    Conflict,
    CsrfFailed,
    InvalidRequest,
    ReauthenticationFailed,
    Throttled,
)
from twofold.http.deps import origin, remember_device, web
from twofold.http.pages.forms import (
    FORM_EXPIRED,
    SignedIn,
    check_form,
    form_field,
    page,
    require_signed_in,
    see_other,
)

router = APIRouter()

ADDRESS_TAKEN = "That address cannot be used."


async def _change(
    request: Request,
    who: SignedIn,
    template: str,
    done: str,
    change: Callable[[], Awaitable[PasswordChanged | EmailChanged]],
    **context: str,
) -> Response:
    """Check the form, make the change and continue under the rotated session (and a new
    known-device cookie: it names the password epoch); a failure re-renders the form
    with what went wrong."""
    status: int
    headers: dict[str, str] | None = None
    try:
        await check_form(request, who)
        changed = await change()
    except CsrfFailed:
        status, error = 403, FORM_EXPIRED
    except ReauthenticationFailed as exc:
        status, error = 403, exc.detail  # "The current password is incorrect."
    except Throttled as exc:
        status, error = 429, exc.detail
        headers = {"Retry-After": str(exc.retry_after)}
    except InvalidRequest as exc:
        status, error = 400, exc.detail
    except Conflict:
        status, error = 409, ADDRESS_TAKEN
    else:
        response = see_other(f"/?changed={done}")
        if changed.session is not None:
            web(request).cookies.set_session(response, changed.session)
        remember_device(request, response, changed.user)
        return response
    return page(request, who, template, status, headers, active="account", error=error, **context)


@router.get("/account/password")
async def password_page(request: Request) -> Response:
    who = await require_signed_in(request)
    return page(request, who, "password.html", active="account")


@router.post("/account/password")
async def password_form(request: Request) -> Response:
    who = await require_signed_in(request)

    async def change() -> PasswordChanged:
        return await web(request).runtime.authority.change_password(
            who.principal,
            await form_field(request, "current_password"),
            await form_field(request, "new_password"),
            session_id=who.session_id,
            origin=origin(request),
        )

    return await _change(request, who, "password.html", "password", change)


@router.get("/account/email")
async def email_page(request: Request) -> Response:
    who = await require_signed_in(request)
    return page(request, who, "email.html", active="account")


@router.post("/account/email")
async def email_form(request: Request) -> Response:
    who = await require_signed_in(request)
    email = await form_field(request, "email")

    async def change() -> EmailChanged:
        return await web(request).runtime.authority.change_email(
            who.principal,
            await form_field(request, "current_password"),
            email,
            session_id=who.session_id,
            origin=origin(request),
        )

    return await _change(request, who, "email.html", "email", change, email=email)
