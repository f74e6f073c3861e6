"""What every page needs: the templates, form fields, CSRF binding and who is signed in.

Every form carries a CSRF token: before login it is bound to a random value in its own
cookie (so a hostile site cannot log a victim into the attacker's account), after login to
the session id the page was rendered for.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from twofold.accounts import ROLE_ADMIN
from twofold.authority import Principal
from twofold.errors import NotAuthenticated
from twofold.http.csrf import FORM_FIELD
from twofold.http.deps import resolve_session, web
from twofold.http.render import rfc3339
from twofold.http.transport import session_cookie

templates = Jinja2Templates(directory=str(files("twofold.http") / "templates"))
templates.env.filters["rfc3339"] = rfc3339

#: Anonymous forms' tokens are bound for this purpose, so they never pass as a session's.
FORM_PURPOSE = "form"
FORM_EXPIRED = "The form expired; please try again."


class PageExit(Exception):
    """Ends a page handler with a ready answer (the login redirect, the 403 page), so that
    every handler need not repeat the checks. ``twofold.http.errors`` sends ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The user of a signed-in page."""

    principal: Principal
    #: The id the session continues under (a new one when this request renewed it).
    session_id: str
    #: The id the cookie carried: the one the page's forms were bound to.
    presented: str

    @property
    def is_admin(self) -> bool:
        return ROLE_ADMIN in self.principal.roles


async def form_field(request: Request, name: str) -> str:
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else ""


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


async def signed_in(request: Request) -> SignedIn | None:
    """The signed-in user, or None when no live session came with the request."""
    presented = session_cookie(request, web(request).cookies)
    if presented is None:
        return None
    try:
        caller = await resolve_session(request, presented)
    except NotAuthenticated:
        return None
    assert caller.session_id is not None
    return SignedIn(caller.principal, caller.session_id, presented)


def to_login(request: Request) -> Response:
    """Off to the login page, clearing a session cookie that no longer works (S7)."""
    response = see_other("/login")
    cookies = web(request).cookies
    if cookies.session_name in request.cookies:
        cookies.clear(response, cookies.session_name)
    return response


async def require_signed_in(request: Request) -> SignedIn:
    """The signed-in user; anyone else is sent to the login page."""
    who = await signed_in(request)
    if who is None:
        raise PageExit(to_login(request))
    return who


async def require_admin(request: Request) -> SignedIn:
    """A signed-in user with the ``admin`` role; others get the 403 page."""
    who = await require_signed_in(request)
    if not who.is_admin:
        raise PageExit(
            page(
                request,
                who,
                "error.html",
                403,
                heading="Not allowed",
                message="This page is for administrators. Your account does not have the "
                "admin role.",
            )
        )
    return who


async def check_form(request: Request, who: SignedIn) -> None:
    """CSRF proof of a signed-in form (B1); raises ``CsrfFailed``."""
    token = await form_field(request, FORM_FIELD)
    web(request).csrf.check(request, who.presented, token)


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    response = templates.TemplateResponse(
        request, template, context, status_code=status, headers=headers
    )
    fresh = getattr(request.state, "new_form_binding", None)
    if fresh:
        cookies = web(request).cookies
        cookies.set(response, cookies.csrf_name, fresh, max_age=None)
    return response


def page(
    request: Request,
    who: SignedIn,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    """A signed-in page: the header shows the user, and forms are bound to the session."""
    return render(
        request,
        template,
        status,
        headers,
        user=who.principal,
        is_admin=who.is_admin,
        csrf_token=web(request).csrf.token_for(who.session_id),
        **context,
    )


def _anonymous_binding(request: Request) -> str:
    cookies = web(request).cookies
    value = request.cookies.get(cookies.csrf_name)
    if not value or len(value) > 64:
        value = secrets.token_urlsafe(32)
        request.state.new_form_binding = value
    return value


def anonymous_page(
    request: Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    """A page for visitors who are not signed in, its forms bound to the form cookie."""
    binding = _anonymous_binding(request)
    token = web(request).csrf.token_for(binding, purpose=FORM_PURPOSE)
    return render(request, template, status, headers, csrf_token=token, user=None, **context)


async def check_anonymous_form(request: Request) -> None:
    """CSRF proof of a form posted before login (login CSRF); raises ``CsrfFailed``."""
    binding = request.cookies.get(web(request).cookies.csrf_name, "")
    presented = await form_field(request, FORM_FIELD)
    web(request).csrf.check(request, binding, presented, purpose=FORM_PURPOSE)
