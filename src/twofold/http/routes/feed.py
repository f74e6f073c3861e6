"""The revocation feed: the revocation stream, for resource servers in other processes.

A resource server that verifies Twofold's access tokens on its own (``twofold.remote``)
cannot read the store, yet must refuse a revoked token as promptly as an instance does
(SECURITY.md T9). This route streams the store's revocation entries to it as server-sent
events: first every unexpired entry after the client's position (``Last-Event-ID`` or
``?after=``), then each new one the moment this instance applies it (its own writes and
the ones its follower reads), and a heartbeat every second after a successful read of the
store. When the store cannot be read the stream ends instead of going quiet, so the
follower notices within its own bound and fails closed (O3). ``session`` entries concern
only instances' session caches and are never sent; heartbeat ids still move past them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from twofold.clock import Clock
from twofold.errors import InvalidRequest, StoreUnavailable
from twofold.http.deps import web
from twofold.http.routes.oauth import authenticate_client
from twofold.http.schemas import ErrorOut
from twofold.revocation import Revoker
from twofold.store.base import RevocationStore
from twofold.store.records import Revocation

log = logging.getLogger("twofold.feed")

router = APIRouter(prefix="/oauth", tags=["oauth"])

#: Seconds between heartbeats; each follows a successful read of the store.
HEARTBEAT_INTERVAL = 1.0
#: Seconds after which a connection is ended; the follower resumes at once from its
#: Last-Event-ID and loses nothing. This bounds how long a graceful shutdown waits for
#: feed connections (uvicorn waits for open responses) and re-checks client credentials.
STREAM_LIFETIME = 10.0
#: Entries per store read.
READ_BATCH = 1000

_SEQ = re.compile(r"[0-9]{1,18}")
_SENT_KINDS = frozenset({"token", "family", "user", "key"})

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 503)
}
STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "Server-sent events: `hello`, then `revocation` and `heartbeat`.",
    }
}


@router.get("/revocations", response_class=StreamingResponse, responses={**STREAM, **ERRORS})
async def revocation_feed(request: Request) -> Response:
    """Revocations as server-sent events, for resource servers that verify tokens
    themselves. Resume with the `Last-Event-ID` header or `?after=<seq>`; client Basic
    credentials are required unless the feed is public (`revocation_feed_public`)."""
    after = _position(request)
    runtime = web(request).runtime
    if not runtime.settings.revocation_feed_public:
        await authenticate_client(request, {})
    revoker = runtime.authority.revoker
    store = runtime.session_store
    # Read before answering: a store that cannot be read is a 503, not an empty stream.
    catch_up, seq = await _read(revoker, store, after, runtime.clock)
    wake = asyncio.Event()

    def notify(entries: Sequence[Revocation]) -> None:
        wake.set()

    async def events() -> AsyncIterator[str]:
        # Observed from here on; the first loop round reads again, so nothing applied
        # between the catch-up read and now is missed.
        revoker.observe(notify)
        wake.set()
        try:
            hello = {"seq": seq, "horizon": revoker.horizon, "heartbeat": HEARTBEAT_INTERVAL}
            yield _event("hello", hello) + _revocations(catch_up) + _heartbeat(seq, runtime.clock)
            async for chunk in _follow(revoker, store, seq, wake, runtime.clock):
                yield chunk
        finally:
            revoker.unobserve(notify)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        # No proxy may buffer or cache the stream (nginx honours X-Accel-Buffering).
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _position(request: Request) -> int:
    """Where the client is: ``Last-Event-ID`` (what an EventSource sends when it
    reconnects to the same URL) over ``?after=``; 0 without either."""
    header = request.headers.get("last-event-id")
    query = request.query_params.get("after")
    for name, value in (("Last-Event-ID", header), ("after", query)):
        if value is not None and not _SEQ.fullmatch(value):
            raise InvalidRequest(f"{name} must be a non-negative integer.")
    chosen = header if header is not None else query
    return int(chosen) if chosen is not None else 0


async def _follow(
    revoker: Revoker, store: RevocationStore, seq: int, wake: asyncio.Event, clock: Clock
) -> AsyncIterator[str]:
    """New entries as they are applied here, a heartbeat every second; ends after
    ``STREAM_LIFETIME`` or when the store cannot be read."""
    ends = time.monotonic() + STREAM_LIFETIME
    beat = time.monotonic()
    while time.monotonic() < ends:
        timeout = max(0.0, beat + HEARTBEAT_INTERVAL - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)
        wake.clear()  # before the read: an entry applied during it wakes the next round
        try:
            entries, seq = await _read(revoker, store, seq, clock)
        except StoreUnavailable as exc:
            # No heartbeat without a read: ending is how the follower learns at once.
            log.warning("revocation feed ended: store unreadable", extra={"reason": exc.detail})
            return
        chunk = _revocations(entries)
        if time.monotonic() - beat >= HEARTBEAT_INTERVAL:
            chunk += _heartbeat(seq, clock)
            beat = time.monotonic()
        if chunk:
            yield chunk


async def _read(
    revoker: Revoker, store: RevocationStore, seq: int, clock: Clock
) -> tuple[list[Revocation], int]:
    """Every entry after ``seq`` that still matters, and the last seq read."""
    entries: list[Revocation] = []
    now = clock.now() - revoker.horizon
    while True:
        batch = await store.revocations_after(seq, now, READ_BATCH)
        entries.extend(batch)
        if batch:
            seq = batch[-1].seq
        if len(batch) < READ_BATCH:
            break
    if any(entry.kind == "key" for entry in entries):
        # A follower answers a key entry by reading the JWKS from here: this instance
        # must have reloaded its key ring first. The feed can read an entry written by
        # another process before this instance's own follower does, or while it is still
        # reloading; catching up (which waits for a reload under way) settles both.
        await revoker.catch_up()
    return entries, seq


def _revocations(entries: Sequence[Revocation]) -> str:
    return "".join(
        _event(
            "revocation",
            {
                "seq": entry.seq,
                "kind": entry.kind,
                "subject": entry.subject,
                "at": entry.at,
                "expires_at": entry.expires_at,
            },
            event_id=entry.seq,
        )
        for entry in entries
        if entry.kind in _SENT_KINDS  # never "session": only session caches need those
    )


def _heartbeat(seq: int, clock: Clock) -> str:
    return _event("heartbeat", {"seq": seq, "at": clock.now()}, event_id=seq)


def _event(name: str, data: dict[str, Any], *, event_id: int | None = None) -> str:
    # One data line: compact JSON has no newline in it.
    head = "" if event_id is None else f"id: {event_id}\n"
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
