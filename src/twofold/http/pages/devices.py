"""The devices page: every session and token family of the user, each revocable (S8)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from twofold.devices import Device, session_handle
from twofold.errors import CsrfFailed, NotFound
from twofold.http.deps import origin, web
from twofold.http.pages.forms import (
    FORM_EXPIRED,
    SignedIn,
    check_form,
    page,
    require_signed_in,
    see_other,
    to_login,
)

router = APIRouter()

DONE = {
    "revoked": "That device was logged out.",
    "others": "Every other device was logged out.",
}
GONE = "That device is no longer logged in, or it is not one of yours."

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


async def _devices_page(
    request: Request, who: SignedIn, status: int = 200, **context: Any
) -> Response:
    devices = await web(request).runtime.authority.devices(who.principal)
    return page(
        request,
        who,
        "devices.html",
        status,
        active="devices",
        devices=[device_row(d) for d in devices],
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
