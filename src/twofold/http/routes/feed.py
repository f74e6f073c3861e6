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
from starlette.types import Receive, Scope, Send

from twofold.clock import Clock
from twofold.errors import Busy, InvalidRequest, StoreUnavailable
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
#: Entries per store read, and per chunk sent.
READ_BATCH = 1000
#: Seconds a stream may overrun its lifetime while a slow client takes the last chunk.
SLOW_READER_GRACE = 5.0
#: Open feed connections at most, and from one client address: resource servers keep one
#: each; a proxy in front is one address, so the per-address bound is not tiny.
MAX_CONNECTIONS = 200
MAX_PER_ADDRESS = 20

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
    # After it, the last seq this instance knows is at least every entry committed so far.
    await revoker.catch_up()
    latest = revoker.revoked.last_seq
    # A position past the stream's end means the store was replaced or restored (the
    # client followed another stream): everything from the start, and the client is told
    # to forget what it had, or it would wait for entries under numbers never to come.
    reset = after > latest
    if reset:
        after = 0
    address = request.client.host if request.client else ""
    gate = _gate(request)
    gate.enter(address)
    wake = asyncio.Event()

    def notify(entries: Sequence[Revocation]) -> None:
        wake.set()

    async def events() -> AsyncIterator[str]:
        # Observed from here on; the first round reads at once, so nothing applied
        # between the read above and now is missed.
        revoker.observe(notify)
        wake.set()
        try:
            hello: dict[str, Any] = {
                "seq": latest,
                "horizon": revoker.horizon,
                "heartbeat": HEARTBEAT_INTERVAL,
            }
            if reset:
                hello["reset"] = True
            yield _event("hello", hello)
            async for chunk in _follow(revoker, store, after, wake, runtime.clock):
                yield chunk
        finally:
            revoker.unobserve(notify)
            gate.leave(address)

    return FeedResponse(
        events(),
        media_type="text/event-stream",
        # No proxy may buffer or cache the stream (nginx honours X-Accel-Buffering).
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class FeedResponse(StreamingResponse):
    """A stream that ends within ``STREAM_LIFETIME`` plus a grace even when the client
    reads too slowly to take it (a send blocked on a full socket buffer is cut off)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STREAM_LIFETIME + SLOW_READER_GRACE):
                await super().__call__(scope, receive, send)


class FeedGate:
    """Bounds the open feed connections, in all and per client address: each holds a
    task and a store read per wake-up, and the feed is public by default."""

    def __init__(self, total: int = MAX_CONNECTIONS, per_address: int = MAX_PER_ADDRESS) -> None:
        self._total = total
        self._per_address = per_address
        self._open: dict[str, int] = {}

    def enter(self, address: str) -> None:
        if sum(self._open.values()) >= self._total or self._open.get(address, 0) >= (
            self._per_address
        ):
            raise Busy("Too many revocation feed connections; try again shortly.")
        self._open[address] = self._open.get(address, 0) + 1

    def leave(self, address: str) -> None:
        left = self._open.get(address, 0) - 1
        if left > 0:
            self._open[address] = left
        else:
            self._open.pop(address, None)


def _gate(request: Request) -> FeedGate:
    """The application's gate (one per app, made on first use)."""
    state = request.app.state
    gate: FeedGate | None = getattr(state, "feed_gate", None)
    if gate is None:
        gate = state.feed_gate = FeedGate()
    return gate


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
    """Entries after ``seq`` a batch at a time (a catch-up of thousands is never held in
    memory at once), then new entries as they are applied here; a heartbeat every second
    once caught up. Ends after ``STREAM_LIFETIME`` or when the store cannot be read."""
    ends = time.monotonic() + STREAM_LIFETIME
    beat = 0.0  # a heartbeat as soon as the catch-up is done
    more = True
    while time.monotonic() < ends:
        if not more:
            timeout = max(0.0, beat + HEARTBEAT_INTERVAL - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
        wake.clear()  # before the read: an entry applied during it wakes the next round
        try:
            entries, seq, more = await _read(revoker, store, seq, clock)
        except StoreUnavailable as exc:
            # No heartbeat without a read: ending is how the follower learns at once.
            log.warning("revocation feed ended: store unreadable", extra={"reason": exc.detail})
            return
        chunk = _revocations(entries)
        if not more and time.monotonic() - beat >= HEARTBEAT_INTERVAL:
            chunk += _heartbeat(seq, clock)
            beat = time.monotonic()
        if chunk:
            yield chunk


async def _read(
    revoker: Revoker, store: RevocationStore, seq: int, clock: Clock
) -> tuple[list[Revocation], int, bool]:
    """A batch of the entries after ``seq`` that still matter, the last seq read, and
    whether more may follow."""
    entries = await store.revocations_after(seq, clock.now() - revoker.horizon, READ_BATCH)
    if entries:
        seq = entries[-1].seq
    if any(entry.kind == "key" for entry in entries):
        # A follower answers a key entry by reading the JWKS from here: this instance
        # must have reloaded its key ring first. The feed can read an entry written by
        # another process before this instance's own follower does, or while it is still
        # reloading; catching up (which waits for a reload under way) settles both.
        await revoker.catch_up()
    return entries, seq, len(entries) == READ_BATCH


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
