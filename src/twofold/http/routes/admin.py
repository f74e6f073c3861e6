"""The admin API: accounts, who is logged in, keys and the audit log. Needs the admin role;
a cookie-authenticated change needs CSRF proof like any other."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse, Response

from twofold import audit as audit_kinds
from twofold.http.deps import (
    authenticate_admin,
    origin,
    require_json,
    require_json_if_body,
    web,
)
from twofold.http.render import admin_user_out, live_device_out, rfc3339
from twofold.http.routes.auth import ERRORS
from twofold.http.schemas import (
    AdminUserOut,
    AdminUsersOut,
    AuditEventOut,
    AuditPageOut,
    EndedOut,
    KeyOut,
    KeysOut,
    LiveDevicesOut,
    RolesIn,
    RotateIn,
    RotationOut,
)

# No admin route takes a body it does not declare, and any body must be JSON (415).
router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses=ERRORS,
    dependencies=[Depends(require_json_if_body)],
)

Limit = Annotated[int, Query(ge=1, le=500)]
MAX_SEQ = 2**63 - 1  # sequence numbers are signed 64-bit in every store
AuditKind = Enum("AuditKind", {kind: kind for kind in sorted(audit_kinds.KINDS)}, type=str)  # type: ignore[misc]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


@router.get("/users", response_model=AdminUsersOut)
async def users(request: Request, limit: Limit = 100, offset: Offset = 0) -> Response:
    """Accounts in order of creation."""
    await authenticate_admin(request)
    found = await web(request).runtime.authority.accounts.list(limit=limit, offset=offset)
    return JSONResponse(AdminUsersOut(users=[admin_user_out(u) for u in found]).model_dump())


@router.get("/users/{user_id}", response_model=AdminUserOut)
async def user(user_id: str, request: Request) -> Response:
    await authenticate_admin(request)
    found = await web(request).runtime.admin.user(user_id)
    return JSONResponse(admin_user_out(found).model_dump())


@router.post("/users/{user_id}/lock", response_model=AdminUserOut)
async def lock(user_id: str, request: Request) -> Response:
    """Lock the account: every session, token family and access token of it ends now."""
    caller = await authenticate_admin(request)
    locked = await web(request).runtime.admin.lock(
        user_id, actor=caller.principal, origin=origin(request)
    )
    return JSONResponse(admin_user_out(locked).model_dump())


@router.post("/users/{user_id}/unlock", response_model=AdminUserOut)
async def unlock(user_id: str, request: Request) -> Response:
    caller = await authenticate_admin(request)
    unlocked = await web(request).runtime.admin.unlock(
        user_id, actor=caller.principal, origin=origin(request)
    )
    return JSONResponse(admin_user_out(unlocked).model_dump())


@router.put(
    "/users/{user_id}/roles", response_model=AdminUserOut, dependencies=[Depends(require_json)]
)
async def set_roles(user_id: str, body: RolesIn, request: Request) -> Response:
    """Replace the roles. Sessions see them on their next request; access tokens issued
    before are refused, and the next refresh carries the new roles."""
    caller = await authenticate_admin(request)
    changed = await web(request).runtime.admin.set_roles(
        user_id, body.roles, actor=caller.principal, origin=origin(request)
    )
    return JSONResponse(admin_user_out(changed).model_dump())


@router.delete("/users/{user_id}/sessions", response_model=EndedOut)
async def end_user_sessions(user_id: str, request: Request) -> Response:
    """End every session, token family and access token of one user (without locking)."""
    caller = await authenticate_admin(request)
    ended = await web(request).runtime.admin.end_sessions(
        user_id, actor=caller.principal, origin=origin(request)
    )
    return JSONResponse(EndedOut(ended=ended).model_dump())


@router.delete("/sessions", response_model=EndedOut)
async def end_all_sessions(request: Request) -> Response:
    """Log everyone out: every session, token family and access token of every user, the
    caller's own included."""
    caller = await authenticate_admin(request)
    ended = await web(request).runtime.admin.end_sessions(
        None, actor=caller.principal, origin=origin(request)
    )
    response = JSONResponse(EndedOut(ended=ended).model_dump())
    context = web(request)
    if caller.session_id is not None:
        context.cookies.clear(response, context.cookies.session_name)
    return response


@router.get("/sessions", response_model=LiveDevicesOut)
async def live_sessions(request: Request, limit: Limit = 100, offset: Offset = 0) -> Response:
    """Who is logged in now: live sessions and token families of every user, most recently
    active first (sessions and families are paged side by side: up to `limit` of each)."""
    runtime = web(request).runtime
    caller = await authenticate_admin(request)
    devices = await runtime.admin.live_devices(limit=limit, offset=offset, caller=caller.principal)
    emails: dict[str, str | None] = {}
    for device in devices:
        if device.user_id not in emails:
            found = await runtime.authority.accounts.get(device.user_id)
            emails[device.user_id] = found.email if found is not None else None
    out = LiveDevicesOut(sessions=[live_device_out(d, emails[d.user_id]) for d in devices])
    return JSONResponse(out.model_dump())


@router.delete("/sessions/{device_id}", status_code=204)
async def revoke_session(device_id: str, request: Request) -> Response:
    """End any session or token family (and the access tokens issued from it)."""
    caller = await authenticate_admin(request)
    await web(request).runtime.authority.revoke_device(
        device_id, owner=None, actor=caller.principal, origin=origin(request)
    )
    return Response(status_code=204)


@router.get("/keys", response_model=KeysOut)
async def keys(request: Request) -> Response:
    """Every signing key's public facts (never its material)."""
    await authenticate_admin(request)
    stored = await web(request).runtime.keys.all()
    out = KeysOut(
        keys=[
            KeyOut(
                kid=key.kid,
                alg=key.alg,
                state=key.state,
                created_at=rfc3339(key.created_at),
                retire_after=None if key.retire_after is None else rfc3339(key.retire_after),
            )
            for key in stored
        ]
    )
    return JSONResponse(out.model_dump())


@router.post("/keys/rotate", response_model=RotationOut)
async def rotate_keys(request: Request, body: RotateIn | None = None) -> Response:
    """A new signing key. The old one verifies until its tokens expire; with
    `{"compromised": true}` every old key is retired and its tokens are refused at once."""
    caller = await authenticate_admin(request)
    compromised = body.compromised if body is not None else False
    rotation, _ = await web(request).runtime.admin.rotate_keys(
        compromised=compromised, actor=caller.principal, origin=origin(request)
    )
    out = RotationOut(
        kid=rotation.kid,
        alg=rotation.alg,
        previous=list(rotation.previous),
        compromised=rotation.compromised,
    )
    return JSONResponse(out.model_dump())


@router.get("/audit", response_model=AuditPageOut)
async def audit(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[AuditKind | None, Query()] = None,
) -> Response:
    """Security events, newest first; page with `before` = the previous page's
    `next_before`."""
    await authenticate_admin(request)
    events = await web(request).runtime.authority.audit.page(
        before=before, limit=limit, user_id=user_id, kind=None if kind is None else kind.value
    )
    out = AuditPageOut(
        events=[
            AuditEventOut(
                seq=e.seq,
                at=rfc3339(e.at),
                kind=e.kind,
                user_id=e.user_id,
                actor_id=e.actor_id,
                client_address=e.client_address,
                detail=dict[str, Any](e.detail),
            )
            for e in events
        ],
        next_before=events[-1].seq if len(events) == limit else None,
    )
    return JSONResponse(out.model_dump())
