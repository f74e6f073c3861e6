"""The devices page: every session and token family of the user, each revocable (S8),
and the user's tokens for other applications (scoped tokens): made, shown once, revoked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from twofold.devices import Device, session_handle
from twofold.errors import CsrfFailed, InvalidRequest, NotFound
from twofold.http.deps import client_address, origin, web
from twofold.http.pages.forms import (
    FORM_EXPIRED,
    SignedIn,
    check_form,
    form_field,
    page,
    require_signed_in,
    see_other,
    to_login,
)
from twofold.store.records import ScopedTokenRecord

router = APIRouter()

DONE = {
    "revoked": "That device was logged out.",
    "others": "Every other device was logged out.",
    "token-revoked": "That token was revoked; the application can no longer use it.",
}
GONE = "That device is no longer logged in, or it is not one of yours."
TOKEN_GONE = "That token no longer exists, or it is not one of yours."  # noqa: S105 - a message
DAY = 86_400
#: Expiry choices of the token form (days); those past the configured maximum are left out.
EXPIRY_DAYS = (7, 30, 90, 365)
DEFAULT_EXPIRY_DAYS = 30

# Checked in this order: Edge and Opera name Chrome too, and Chrome names Safari.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
AGENT_SHOWN = 80


def describe_agent(agent: str | None) -> str:
    """A short, recognisable name for a user agent ("Firefox on Linux"), or the agent
    itself cut to a readable length."""
    if not agent:
        return "Unknown device"
    browser = next((name for mark, name in _BROWSERS if mark in agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in agent), None)
    if browser is not None:
        return f"{browser} on {system}" if system else browser
    return shorten(agent)


def shorten(agent: str) -> str:
    return agent if len(agent) <= AGENT_SHOWN else agent[: AGENT_SHOWN - 1] + "…"


def device_row(device: Device) -> dict[str, object]:
    """What a table row shows of a device."""
    agent = device.user_agent or ""
    name = describe_agent(device.user_agent)
    return {
        "id": device.id,
        "kind": "Browser session" if device.kind == "session" else "Token family",
        "name": name,
        "agent": shorten(agent) if agent and shorten(agent) != name else None,
        "address": device.client_address,
        "created_at": device.created_at,
        "last_seen_at": device.last_seen_at,
        "expires_at": device.expires_at,
        "current": device.current,
    }


def token_row(record: ScopedTokenRecord) -> dict[str, object]:
    """What a table row shows of a scoped token (never its secret: that is not kept)."""
    return {
        "id": record.id,
        "name": record.name,
        "scopes": " ".join(record.scopes),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "last_used_at": record.last_used_at,
    }


def expiry_choices(max_lifetime: float) -> list[dict[str, object]]:
    """The form's expiry options in seconds: the preset days within the maximum, else the
    maximum itself; the default is 30 days or the longest allowed below it."""
    seconds = [days * DAY for days in EXPIRY_DAYS if days * DAY <= max_lifetime]
    if not seconds:
        seconds = [int(max_lifetime)]
    default = max((s for s in seconds if s <= DEFAULT_EXPIRY_DAYS * DAY), default=seconds[0])
    return [{"value": s, "label": _duration(s), "selected": s == default} for s in seconds]


def _duration(seconds: int) -> str:
    if seconds >= DAY and seconds % DAY == 0:
        days = seconds // DAY
        return "1 year" if days == 365 else f"{days} day{'s' if days != 1 else ''}"
    hours = max(1, seconds // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


async def _devices_page(
    request: Request, who: SignedIn, status: int = 200, **context: Any
) -> Response:
    authority = web(request).runtime.authority
    devices = await authority.devices(who.principal)
    tokens = await authority.scoped_tokens.list_for_user(who.principal.user_id)
    policy = authority.scoped_tokens.policy
    return page(
        request,
        who,
        "devices.html",
        status,
        active="devices",
        devices=[device_row(d) for d in devices],
        tokens=[token_row(t) for t in tokens],
        scopes=policy.scopes,
        expiries=expiry_choices(policy.max_lifetime),
        **context,
    )


@router.get("/devices")
async def devices_page(request: Request, done: str | None = None) -> Response:
    who = await require_signed_in(request)
    return await _devices_page(request, who, notice=DONE.get(done or ""))


@router.post("/devices/revoke-others")
async def revoke_others(request: Request) -> Response:
    who = await require_signed_in(request)
    try:
        await check_form(request, who)
    except CsrfFailed:
        return await _devices_page(request, who, 403, error=FORM_EXPIRED)
    await web(request).runtime.authority.revoke_other_devices(
        who.principal, session_id=who.session_id, origin=origin(request)
    )
    return see_other("/devices?done=others")


@router.post("/devices/{device_id}/revoke")
async def revoke(device_id: str, request: Request) -> Response:
    who = await require_signed_in(request)
    principal = who.principal
    try:
        await check_form(request, who)
        device = await web(request).runtime.authority.revoke_device(
            device_id, owner=principal.user_id, actor=principal, origin=origin(request)
        )
    except CsrfFailed:
        return await _devices_page(request, who, 403, error=FORM_EXPIRED)
    except NotFound:
        return await _devices_page(request, who, 404, error=GONE)
    assert principal.session is not None
    if device.id == session_handle(principal.session.id_hash):
        return to_login(request)  # this very browser: it is logged out
    return see_other("/devices?done=revoked")


@router.post("/devices/tokens")
async def create_token(request: Request) -> Response:
    """Make a scoped token; the answer is the page with the token shown this once."""
    who = await require_signed_in(request)
    try:
        await check_form(request, who)
        form = await request.form()
        scopes = [value for value in form.getlist("scope") if isinstance(value, str)]
        expires = await form_field(request, "expires_in")
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            raise InvalidRequest("Choose when the token expires.")
        new = await web(request).runtime.authority.scoped_tokens.create(
            who.principal.user_id,
            name=await form_field(request, "name"),
            scopes=scopes,
            expires_in=int(expires),
            client_address=client_address(request),
        )
    except CsrfFailed:
        return await _devices_page(request, who, 403, error=FORM_EXPIRED)
    except InvalidRequest as exc:
        return await _devices_page(request, who, 400, error=exc.detail)
    return await _devices_page(request, who, new_token=new.token, new_token_name=new.record.name)


@router.post("/devices/tokens/{token_id}/revoke")
async def revoke_token(token_id: str, request: Request) -> Response:
    who = await require_signed_in(request)
    try:
        await check_form(request, who)
        await web(request).runtime.authority.scoped_tokens.revoke(
            who.principal.user_id, token_id, client_address=client_address(request)
        )
    except CsrfFailed:
        return await _devices_page(request, who, 403, error=FORM_EXPIRED)
    except NotFound:
        return await _devices_page(request, who, 404, error=TOKEN_GONE)
    return see_other("/devices?done=token-revoked")
