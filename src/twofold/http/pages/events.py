"""The admin's audit log page: security events newest first, filtered by kind and user,
paged by sequence number."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from twofold import audit
from twofold.errors import NotFound
from twofold.http.deps import web
from twofold.http.pages.forms import SignedIn, page, require_admin
from twofold.store.records import AuditEvent

router = APIRouter(prefix="/admin")

PAGE_SIZE = 50
MAX_SEQ = 2**63 - 1  # sequence numbers are signed 64-bit in every store
MAX_USER = 254  # an e-mail address at most; user ids are shorter
KINDS = sorted(audit.KINDS)


def _detail(event: AuditEvent) -> list[tuple[str, str]]:
    return [
        (key, value if isinstance(value, str) else json.dumps(value))
        for key, value in sorted(event.detail.items())
    ]


def _events_page(
    request: Request, who: SignedIn, filters: dict[str, str], status: int = 200, **context: Any
) -> Response:
    return page(
        request,
        who,
        "admin_events.html",
        status,
        active="admin",
        section="events",
        kinds=KINDS,
        filters=filters,
        **({"events": [], "emails": {}, "older": None, "newest": None} | context),
    )


@router.get("/events")
async def events_page(
    request: Request,
    before: str | None = None,
    kind: str | None = None,
    user: str | None = None,
) -> Response:
    """Events newest first; ``before`` pages on (the last shown event's sequence number),
    ``kind`` and ``user`` (an e-mail address or a user id) filter."""
    who = await require_admin(request)
    runtime = web(request).runtime
    kind = kind or None
    user = (user or "").strip() or None
    filters = {"kind": kind or "", "user": user or ""}
    if before and not (before.isdigit() and 1 <= int(before) <= MAX_SEQ):
        return _events_page(request, who, filters, 400, error="The page to show is not valid.")
    if kind is not None and kind not in audit.KINDS:
        return _events_page(request, who, filters, 400, error="There is no such kind of event.")
    if user is not None and len(user) > MAX_USER:
        return _events_page(request, who, filters, 400, error="That account filter is too long.")

    user_id = user
    if user is not None and "@" in user:
        try:
            user_id = (await runtime.admin.find_user(user)).id
        except NotFound:
            return _events_page(request, who, filters, notice="No account has that e-mail address.")
    events = await runtime.authority.audit.page(
        before=int(before) if before else None, limit=PAGE_SIZE, user_id=user_id, kind=kind
    )
    emails: dict[str, str | None] = {}
    for event in events:
        for someone in (event.user_id, event.actor_id):
            if someone is not None and someone not in emails:
                found = await runtime.authority.accounts.get(someone)
                emails[someone] = found.email if found is not None else None
    query = {name: value for name, value in filters.items() if value}
    return _events_page(
        request,
        who,
        filters,
        events=[{"event": e, "detail": _detail(e)} for e in events],
        emails=emails,
        older=f"/admin/events?{urlencode({'before': events[-1].seq} | query)}"
        if len(events) == PAGE_SIZE
        else None,
        newest=f"/admin/events?{urlencode(query)}" if before else None,
    )
