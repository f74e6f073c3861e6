"""Admin pages: who is logged in now (end any of it), and the accounts (lock, unlock,
roles). Each needs the admin role, as of this request."""

from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from twofold.devices import session_handle
from twofold.errors import CsrfFailed, InvalidRequest, NotFound
from twofold.http.deps import origin, web
from twofold.http.pages.devices import device_row
from twofold.http.pages.forms import (
    FORM_EXPIRED,
    SignedIn,
    check_form,
    form_field,
    page,
    require_admin,
    see_other,
    to_login,
)

router = APIRouter(prefix="/admin")

PAGE_SIZE = 50
MAX_OFFSET = 1_000_000
NO_SUCH_DEVICE = "That session or token family has already ended."
NO_SUCH_USER = "There is no such account."


def offset_param(value: str | None) -> int:
    """A page's offset from the query string; anything but a sane number is the start."""
    if value is None or not value.isdigit() or len(value) > 7:
        return 0
    return min(int(value), MAX_OFFSET)


def _is_current_session(who: SignedIn, device_id: str) -> bool:
    session = who.principal.session
    return session is not None and device_id == session_handle(session.id_hash)


# -- who is logged in ------------------------------------------------------------------


async def _live_page(
    request: Request, who: SignedIn, offset: int = 0, status: int = 200, error: str | None = None
) -> Response:
    runtime = web(request).runtime
    devices = await runtime.admin.live_devices(limit=PAGE_SIZE, offset=offset, caller=who.principal)
    emails: dict[str, str | None] = {}
    for device in devices:
        if device.user_id not in emails:
            found = await runtime.authority.accounts.get(device.user_id)
            emails[device.user_id] = found.email if found is not None else None
    rows = [{**device_row(d), "email": emails[d.user_id]} for d in devices]
    return page(
        request,
        who,
        "admin_live.html",
        status,
        active="admin",
        section="live",
        devices=rows,
        offset=offset,
        # Sessions and families are paged side by side: a full page of either may go on.
        next_offset=offset + PAGE_SIZE if len(devices) >= PAGE_SIZE else None,
        previous_offset=max(0, offset - PAGE_SIZE) if offset else None,
        error=error,
    )


@router.get("")
async def live_page(request: Request, offset: str | None = None) -> Response:
    who = await require_admin(request)
    return await _live_page(request, who, offset_param(offset))


@router.post("/live/{device_id}/end")
async def end_device(device_id: str, request: Request) -> Response:
    who = await require_admin(request)
    try:
        await check_form(request, who)
        await web(request).runtime.authority.revoke_device(
            device_id, owner=None, actor=who.principal, origin=origin(request)
        )
    except CsrfFailed:
        return await _live_page(request, who, status=403, error=FORM_EXPIRED)
    except NotFound:
        return await _live_page(request, who, status=404, error=NO_SUCH_DEVICE)
    if _is_current_session(who, device_id):
        return to_login(request)
    return see_other("/admin")


# -- accounts --------------------------------------------------------------------------


async def _accounts_page(
    request: Request, who: SignedIn, offset: int = 0, status: int = 200, error: str | None = None
) -> Response:
    # One more than shown tells whether a next page exists.
    found = await web(request).runtime.authority.accounts.list(limit=PAGE_SIZE + 1, offset=offset)
    return page(
        request,
        who,
        "admin_accounts.html",
        status,
        active="admin",
        section="accounts",
        users=found[:PAGE_SIZE],
        offset=offset,
        next_offset=offset + PAGE_SIZE if len(found) > PAGE_SIZE else None,
        previous_offset=max(0, offset - PAGE_SIZE) if offset else None,
        error=error,
    )


@router.get("/accounts")
async def accounts_page(request: Request, offset: str | None = None) -> Response:
    who = await require_admin(request)
    return await _accounts_page(request, who, offset_param(offset))


@router.post("/accounts/{user_id}/lock")
async def lock(user_id: str, request: Request) -> Response:
    """Lock an account: every session and token of it ends at once."""
    return await _account_action(request, user_id, "lock")


@router.post("/accounts/{user_id}/unlock")
async def unlock(user_id: str, request: Request) -> Response:
    return await _account_action(request, user_id, "unlock")


@router.post("/accounts/{user_id}/roles")
async def set_roles(user_id: str, request: Request) -> Response:
    """Replace the roles: a comma- or space-separated list."""
    return await _account_action(request, user_id, "roles")


async def _account_action(
    request: Request, user_id: str, action: Literal["lock", "unlock", "roles"]
) -> Response:
    who = await require_admin(request)
    admin = web(request).runtime.admin
    actor, where = who.principal, origin(request)
    try:
        await check_form(request, who)
        if action == "lock":
            await admin.lock(user_id, actor=actor, origin=where)
        elif action == "unlock":
            await admin.unlock(user_id, actor=actor, origin=where)
        else:
            roles = [r for r in re.split(r"[\s,]+", await form_field(request, "roles")) if r]
            await admin.set_roles(user_id, roles, actor=actor, origin=where)
    except CsrfFailed:
        return await _accounts_page(request, who, status=403, error=FORM_EXPIRED)
    except NotFound:
        return await _accounts_page(request, who, status=404, error=NO_SUCH_USER)
    except InvalidRequest as exc:
        return await _accounts_page(request, who, status=400, error=exc.detail)
    if action == "lock" and user_id == actor.user_id:
        # The core refuses this today; were it allowed, this very session has ended.
        return to_login(request)
    return see_other("/admin/accounts")
