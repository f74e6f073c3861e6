"""Following the issuer's revocation feed (``GET /oauth/revocations``) into memory.

The follower keeps what is revoked in a :class:`twofold.revocation.RevocationList` -- the
same structure a Twofold instance checks tokens against -- filled from the feed's
server-sent events: every unexpired entry at connect, then each new one as it is made. It
reconnects by itself after a disconnect, resuming from the last ``seq`` it saw
(``Last-Event-ID``), so nothing is lost across a reconnect, with a backoff of 0.2 s up to
2 s while the issuer cannot be reached.

Freshness is what makes fail-closed possible: the issuer sends a heartbeat every second
after reading its store, and ends the stream when it cannot. :meth:`FeedFollower.staleness`
is the time since the last heartbeat (or entry) of a stream that has caught up; the
verifier refuses tokens once it passes ``max_staleness``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import httpx

from twofold.clock import Clock
from twofold.errors import ConfigurationError, TwofoldError
from twofold.revocation import RevocationList
from twofold.store.records import Revocation, RevocationKind

__all__ = [
    "MAX_BACKOFF",
    "MIN_BACKOFF",
    "Event",
    "EventParser",
    "FeedFollower",
    "FeedProtocolError",
]

log = logging.getLogger("twofold.remote.feed")

#: Seconds before the first reconnection attempt after a failure; doubled up to the max.
MIN_BACKOFF = 0.2
MAX_BACKOFF = 2.0
#: Seconds after a key change at which the JWKS is read once more: behind a load balancer
#: the first read may reach an instance that has not itself read the change yet.
KEY_SETTLE = 2.0
#: Seconds between prunes of entries that can no longer refuse anything.
PRUNE_INTERVAL = 60.0
#: The longest line, and the longest event, accepted from the feed.
MAX_EVENT_BYTES = 64 * 1024

_KINDS: frozenset[str] = frozenset({"token", "family", "user", "key"})


class FeedProtocolError(Exception):
    """The feed sent something that is not the feed's format; the connection is dropped."""


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: str


class EventParser:
    """Server-sent events (WHATWG HTML, "event stream interpretation") from bytes.

    Parsed by hand rather than with an SSE library: the feed uses three fields (``id``,
    ``event``, ``data``), which take a few lines, and a dependency would bring more than
    it saves. Lines are bounded (``MAX_EVENT_BYTES``), so a broken or hostile stream
    cannot make the follower buffer without limit.
    """

    __slots__ = ("_buffer", "_data", "_name")

    def __init__(self) -> None:
        self._buffer = b""
        self._name = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk``."""
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        if len(self._buffer) > MAX_EVENT_BYTES:
            raise FeedProtocolError("line too long")
        events = []
        for raw in lines:
            try:
                line = raw.removesuffix(b"\r").decode("utf-8")
            except UnicodeDecodeError:
                raise FeedProtocolError("not UTF-8") from None
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if not line:  # a blank line ends the event
            name, data = self._name or "message", self._data
            self._name, self._data = "", []
            return Event(name, "\n".join(data)) if data else None
        if line.startswith(":"):
            return None  # a comment
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
            if sum(len(part) for part in self._data) > MAX_EVENT_BYTES:
                raise FeedProtocolError("event too long")
        # ``id`` repeats the data's seq, which is what is tracked; ``retry`` is ignored:
        # the backoff is this follower's own.
        return None


class FeedFollower:
    """Follows the feed at ``endpoint`` (run :meth:`run` as a task) into :attr:`revoked`.

    ``leeway`` is the verifier's clock leeway: entries are kept that much longer than the
    issuer's horizon, as long as a token they refuse can still be accepted here.
    ``keys_changed`` is awaited (in the background) when the feed announces a key change.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        endpoint: str,
        *,
        clock: Clock,
        leeway: float,
        read_timeout: float,
        keys_changed: Callable[[], Awaitable[None]],
        authorization: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        #: What is revoked; None until the first ``hello`` told the horizon.
        self.revoked: RevocationList | None = None
        #: The issuer's horizon (seconds an entry matters), from the first ``hello``.
        self.horizon: float | None = None
        #: Set once the first catch-up is complete (a heartbeat after ``hello``), or a
        #: problem no reconnection will fix (refused credentials) is in ``failure``.
        self.settled = asyncio.Event()
        self.failure: TwofoldError | None = None
        #: Connections opened (for tests and metrics).
        self.connections = 0
        self._client = client
        self._endpoint = endpoint
        self._clock = clock
        self._leeway = leeway
        self._read_timeout = read_timeout
        self._keys_changed = keys_changed
        self._authorization = authorization
        self._monotonic = monotonic
        self._seq = 0
        self._synced_at: float | None = None
        self._pruned_at = monotonic()
        self._refresh_wanted = False
        self._refresher: asyncio.Task[None] | None = None
        # Monotonic time of the oldest key change not yet followed by a JWKS read.
        self._keys_wanted_at: float | None = None
        self._failing = False

    def staleness(self) -> float:
        """Seconds since the feed was last known current; infinite before the first time.

        A key change that the JWKS has not been read for since counts as staleness too:
        until it is read, a key the issuer dropped (perhaps compromised) still verifies, so
        a JWKS that cannot be read fails closed on the same bound as a lost feed."""
        if self._synced_at is None:
            return math.inf
        now = self._monotonic()
        stale = now - self._synced_at
        if self._keys_wanted_at is not None:
            stale = max(stale, now - self._keys_wanted_at)
        return stale

    async def run(self) -> None:
        """Follow forever: connect, read, reconnect after a failure with a backoff."""
        backoff = MIN_BACKOFF
        try:
            while True:
                healthy = False
                try:
                    healthy = await self._follow_once()
                except (httpx.HTTPError, FeedProtocolError, TwofoldError) as exc:
                    self._report(exc)
                except Exception:
                    # A bug must not silently stop revocations from arriving: log, go on.
                    log.exception("revocation feed follower failed")
                    self._failing = True
                if healthy:
                    # A stream that got going and ended (the issuer cycles them, or it
                    # stopped): reconnect at once, and back off only if that fails.
                    backoff = MIN_BACKOFF
                    continue
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            if self._refresher is not None:
                self._refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._refresher

    async def _follow_once(self) -> bool:
        """One connection; True if it delivered a ``hello`` (the issuer read its store)."""
        # Identity encoding: the parser bounds lines, which inflating chunks would defeat.
        headers = {
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
            "Cache-Control": "no-store",
        }
        if self._seq:
            headers["Last-Event-ID"] = str(self._seq)
        if self._authorization is not None:
            # Sent to the feed only, not with the discovery and JWKS reads.
            headers["Authorization"] = self._authorization
        timeout = httpx.Timeout(5.0, read=self._read_timeout)
        self.connections += 1
        hello = False
        caught_up = False
        async with self._client.stream(
            "GET", self._endpoint, headers=headers, timeout=timeout, follow_redirects=False
        ) as answer:
            self._check_answer(answer)
            parser = EventParser()
            async for chunk in answer.aiter_bytes():
                keys = False
                for event in parser.feed(chunk):
                    if event.name == "hello":
                        self._hello(_object(event.data))
                        hello = True
                    elif not hello:
                        raise FeedProtocolError("the stream did not start with hello")
                    elif event.name == "revocation":
                        keys |= self._revocation(_object(event.data))
                        if caught_up:
                            self._synced_at = self._monotonic()
                    elif event.name == "heartbeat":
                        self._heartbeat(_object(event.data))
                        caught_up = True
                if keys:
                    self._want_keys()
        return hello

    def _check_answer(self, answer: httpx.Response) -> None:
        if answer.status_code in (401, 403):
            self.failure = ConfigurationError(
                "The issuer refused this resource server's client credentials for the "
                "revocation feed."
            )
            self.settled.set()
            raise self.failure
        if answer.status_code != 200:
            raise FeedProtocolError(f"the feed answered {answer.status_code}")
        media_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "text/event-stream":
            raise FeedProtocolError("the feed did not answer with an event stream")

    def _hello(self, data: dict[str, Any]) -> None:
        _seq(data)
        self.failure = None
        if data.get("reset") is True:
            # Our position is past the issuer's stream (its store was replaced or
            # restored): it sends everything from the start. What we hold stays (refusing
            # more is safe); the position restarts, so that resuming works again.
            log.warning("the issuer's revocation stream restarted; following it anew")
            self._seq = 0
        horizon = data.get("horizon")
        if not _finite(horizon) or horizon <= 0:
            raise FeedProtocolError("bad horizon")
        if self.revoked is None:
            self.horizon = float(horizon)
            self.revoked = RevocationList(self.horizon + self._leeway)
        elif horizon != self.horizon:
            # Keeping the first is safe either way: a longer horizon means longer tokens,
            # which the verifier refuses (lifetime_exceeded); a shorter one, entries kept
            # longer than needed. Picking up the new one takes a restart.
            log.warning("the issuer's revocation horizon changed; restart to follow it")

    def _revocation(self, data: dict[str, Any]) -> bool:
        """Apply one entry; True if it announces a key change."""
        seq = _seq(data)
        kind, subject = data.get("kind"), data.get("subject")
        at, expires_at = data.get("at"), data.get("expires_at")
        if kind not in _KINDS or not isinstance(subject, str) or not subject:
            raise FeedProtocolError("bad revocation entry")
        if not (_finite(at) and _finite(expires_at)):
            raise FeedProtocolError("bad revocation times")
        assert self.revoked is not None  # set by hello, which came first
        entry_kind: RevocationKind = kind
        entry = Revocation(entry_kind, subject, float(at), float(expires_at), seq)
        self._seq = max(self._seq, seq)
        return self.revoked.apply([entry])

    def _heartbeat(self, data: dict[str, Any]) -> None:
        self._seq = max(self._seq, _seq(data))
        now = self._monotonic()
        self._synced_at = now
        if self._failing:
            log.info("revocation feed followed again")
            self._failing = False
        self.settled.set()
        if now - self._pruned_at >= PRUNE_INTERVAL and self.revoked is not None:
            self._pruned_at = now
            self.revoked.prune(self._clock.now())

    def _report(self, exc: Exception) -> None:
        if not self._failing:
            reason = exc.detail if isinstance(exc, TwofoldError) else str(exc) or type(exc).__name__
            log.warning("revocation feed lost", extra={"reason": reason})
            self._failing = True

    def _want_keys(self) -> None:
        """Re-read the JWKS in the background (the feed is not held up), once for any
        number of key entries that arrive meanwhile."""
        self._refresh_wanted = True
        if self._keys_wanted_at is None:
            self._keys_wanted_at = self._monotonic()
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_keys())

    async def _refresh_keys(self) -> None:
        while self._refresh_wanted:
            self._refresh_wanted = False
            await self._read_keys()
            await asyncio.sleep(KEY_SETTLE)
            if not self._refresh_wanted:  # else the next round reads at once anyway
                await self._read_keys()

    async def _read_keys(self) -> None:
        backoff = MIN_BACKOFF
        while True:
            try:
                await self._keys_changed()
                if not self._refresh_wanted:  # no newer change came meanwhile
                    self._keys_wanted_at = None
                return
            except TwofoldError as exc:
                # Until it is read, a key the issuer dropped is still trusted: keep trying
                # (and say so once, not at every attempt).
                level = logging.WARNING if backoff == MIN_BACKOFF else logging.DEBUG
                reason = {"reason": exc.detail}
                log.log(level, "JWKS refresh after a key change failed", extra=reason)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)


def _object(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise FeedProtocolError("event data is not JSON") from None
    if not isinstance(value, dict):
        raise FeedProtocolError("event data is not a JSON object")
    return value


def _seq(data: dict[str, Any]) -> int:
    seq = data.get("seq")
    if type(seq) is not int or seq < 0:
        raise FeedProtocolError("bad seq")
    return seq


def _finite(value: object) -> TypeGuard[float]:
    return type(value) is int or (type(value) is float and math.isfinite(value))
