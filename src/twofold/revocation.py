"""Revocation that reaches JWTs: an in-memory view of the store's revocation stream.

Access tokens are checked without a store read (that is their point), so what has been
revoked is held in memory on every instance: revoked ``jti``s, revoked families (``sid``)
and each user's not-before time. The source of truth is the store's append-only,
sequence-numbered stream (``RevocationStore``): an instance loads every unexpired entry at
start (so a restart forgets nothing), applies its own entries the moment it writes them,
and follows the stream for entries written elsewhere (other instances, the CLI): woken by
the store's push (PostgreSQL NOTIFY, Redis pub/sub) where it has one, by polling where it
has not (SQLite), and reading from its last ``seq`` either way, so a lost push or a
reconnect loses nothing. Entries expire once no token they could refuse is still valid, so
the view stays small: one entry per revoked login or user in the last access-token lifetime.

An instance that cannot follow the stream does not know what was revoked elsewhere, so it
fails closed (SECURITY.md O3): once the stream has not been read for ``max_staleness``
seconds, :meth:`Revoker.ensure_current` raises ``StoreUnavailable`` and token requests get
503 until the follower catches up again by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

from twofold.clock import Clock
from twofold.errors import InvalidToken, StoreUnavailable
from twofold.jose.jwt import AccessClaims
from twofold.store.base import RevocationListener, RevocationStore
from twofold.store.records import Revocation, RevocationKind

log = logging.getLogger("twofold.revocation")

KeysChanged = Callable[[], Awaitable[None]]
#: Told of every entry applied here (own writes and followed ones), e.g. the session cache.
Observer = Callable[[Sequence[Revocation]], None]

#: Seconds between attempts to resubscribe after the stream could not be read.
RETRY_INTERVAL = 0.2


#: The subject of a ``user`` entry that cuts off every user (an admin's global logout);
#: user ids are UUIDs, so it names no one in particular.
EVERYONE = "*"


class RevocationList:
    """What is revoked now, as dictionaries of subject -> expiry. Checking is three look-ups."""

    __slots__ = ("_families", "_horizon", "_tokens", "_users", "last_seq")

    def __init__(self, horizon: float = 0.0) -> None:
        # Kept at least this long after ``at`` whatever the writer stamped: a process
        # with a shorter token lifetime (the CLI with other settings) writes entries that
        # would otherwise expire before this server's tokens do.
        self._horizon = horizon
        self._tokens: dict[str, float] = {}
        self._families: dict[str, float] = {}
        # user id (or EVERYONE) -> (not-before, expiry)
        self._users: dict[str, tuple[float, float]] = {}
        self.last_seq = 0

    def apply(self, entries: Iterable[Revocation]) -> bool:
        """Take in stream entries (any order, duplicates harmless); True if one was a key
        change, which the caller answers by reloading the key ring."""
        keys_changed = False
        for entry in entries:
            self.last_seq = max(self.last_seq, entry.seq)
            expires = max(entry.expires_at, entry.at + self._horizon)
            if entry.kind == "token":
                _keep_latest(self._tokens, entry.subject, expires)
            elif entry.kind == "family":
                _keep_latest(self._families, entry.subject, expires)
            elif entry.kind == "session":
                continue  # for session caches (observers); refuses no token
            elif entry.kind == "user":
                before = self._users.get(entry.subject)
                if before is None:
                    self._users[entry.subject] = (entry.at, expires)
                else:
                    self._users[entry.subject] = (
                        max(before[0], entry.at),
                        max(before[1], expires),
                    )
            else:
                keys_changed = True
        return keys_changed

    def check(self, claims: AccessClaims) -> None:
        """Refuse a verified token that a revocation covers (SECURITY.md T9)."""
        if claims.jti in self._tokens or (claims.sid is not None and claims.sid in self._families):
            raise InvalidToken("revoked")
        users = self._users
        if users:
            cut = users.get(claims.sub)
            if cut is not None and claims.iat < cut[0]:
                raise InvalidToken("revoked")
            cut = users.get(EVERYONE)
            if cut is not None and claims.iat < cut[0]:
                raise InvalidToken("revoked")

    def family_revoked(self, family_id: str) -> bool:
        return family_id in self._families

    def is_revoked(self, claims: AccessClaims) -> bool:
        try:
            self.check(claims)
        except InvalidToken:
            return True
        return False

    def not_before(self, user_id: str) -> float | None:
        """The user's cut-off (their own or everyone's, the later): tokens issued before
        it are refused."""
        cuts = [cut[0] for cut in (self._users.get(user_id), self._users.get(EVERYONE)) if cut]
        return max(cuts) if cuts else None

    def prune(self, now: float) -> None:
        """Forget entries that can no longer refuse anything."""
        for table in (self._tokens, self._families):
            for subject in [s for s, expires in table.items() if expires <= now]:
                del table[subject]
        for subject in [s for s, (_, expires) in self._users.items() if expires <= now]:
            del self._users[subject]

    def __len__(self) -> int:
        return len(self._tokens) + len(self._families) + len(self._users)


def _keep_latest(table: dict[str, float], subject: str, expires_at: float) -> None:
    table[subject] = max(table.get(subject, expires_at), expires_at)


class Revoker:
    """Writes revocations to the stream and applies them here at once; follows the stream.

    ``horizon`` is the longest an access token can live plus the verification leeway: an
    entry is kept that long, after which every token it could refuse has expired anyway.
    """

    def __init__(
        self,
        store: RevocationStore,
        clock: Clock,
        *,
        horizon: float,
        keys_changed: KeysChanged | None = None,
    ) -> None:
        self.revoked = RevocationList(horizon)
        self._store = store
        self._clock = clock
        self._horizon = horizon
        self._keys_changed = keys_changed
        self._catching_up = asyncio.Lock()
        self._observers: list[Observer] = []
        #: How many entries this process has written (the CLI waits for servers to see them).
        self.appended = 0
        # Monotonic time of the last complete read of the stream; the bound is set by
        # follow(): a process that does not follow (the CLI) has nothing to be stale about.
        self._synced_at = time.monotonic()
        self._max_staleness: float | None = None

    def on_keys_changed(self, callback: KeysChanged) -> None:
        self._keys_changed = callback

    @property
    def horizon(self) -> float:
        """Seconds an entry matters after it was made (the longest token life + leeway)."""
        return self._horizon

    def observe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def unobserve(self, observer: Observer) -> None:
        """Stop telling ``observer`` (a revocation feed connection that ended)."""
        with contextlib.suppress(ValueError):
            self._observers.remove(observer)

    async def load(self) -> None:
        """Read every unexpired entry (at start); key entries need no reload then."""
        await self._read_stream(reload_keys=False)
        self.prune()

    def is_current(self) -> bool:
        """True while this process follows the stream and read it within the bound."""
        return (
            self._max_staleness is not None
            and time.monotonic() - self._synced_at <= self._max_staleness
        )

    def ensure_current(self) -> None:
        """Fail closed when following but behind: what was revoked elsewhere is unknown."""
        if self._max_staleness is not None and not self.is_current():
            raise StoreUnavailable("The revocation stream has not been read recently.")

    async def token(self, jti: str, expires_at: float) -> None:
        await self._append("token", jti, expires_at=expires_at)

    async def family(self, family_id: str) -> None:
        await self._append("family", family_id)

    async def user(self, user_id: str) -> float:
        """Refuse every token of the user issued until now; returns the cut-off.

        The cut-off is the next whole second: ``iat`` has whole seconds, so a token made
        earlier in this second is refused, and tokens made after this call are issued
        with ``iat`` at the cut-off (``AccessTokenCodec.issue(not_before=...)``). A second
        cut in the same second goes one second past the first, or the tokens issued
        between the two (``iat`` at the first cut) would pass it. The stream is read first,
        so that a cut made through another instance a moment ago counts too; two cuts
        made through two instances within one read of each other remain a window."""
        await self.catch_up()
        cut = float(math.floor(self._clock.now()) + 1)
        previous = self.revoked.not_before(user_id)
        if previous is not None and previous >= cut:
            cut = previous + 1
        await self._append("user", user_id, at=cut)
        return cut

    @contextlib.asynccontextmanager
    async def cutting(self, user_id: str) -> AsyncIterator[None]:
        """Cut the user's tokens off before a change and again after it: a crash half-way
        leaves them cut off (and the change for a retry), and a token refreshed while the
        change was being written is issued before the second cut, which refuses it."""
        await self.user(user_id)
        yield
        await self.user(user_id)

    async def everyone(self) -> float:
        """Refuse every access token issued until now, of every user."""
        return await self.user(EVERYONE)

    async def sessions(self, user_id: str) -> None:
        """Tell every instance that sessions of the user (EVERYONE: of all users) ended or
        changed, so that session caches drop them. The store already has the change; the
        entry carries the user's id only, never a session's id or hash."""
        await self._append("session", user_id)

    async def keys(self, kid: str) -> None:
        """Tell every instance to reload its key ring (this one reloads by itself)."""
        await self._append("key", kid)

    async def _append(
        self,
        kind: RevocationKind,
        subject: str,
        *,
        at: float | None = None,
        expires_at: float | None = None,
    ) -> None:
        now = self._clock.now()
        at = now if at is None else at
        entry = Revocation(
            kind=kind,
            subject=subject,
            at=at,
            expires_at=max(at, now) + self._horizon if expires_at is None else expires_at,
        )
        stored = await self._store.append_revocation(entry)
        self.appended += 1
        # Applied here before the caller answers, so this instance refuses the token on the
        # very next request; last_seq is left for the follower, so that entries written
        # elsewhere with a lower seq are not skipped.
        seq = self.revoked.last_seq
        self._apply([stored])
        self.revoked.last_seq = seq

    def _apply(self, entries: Sequence[Revocation]) -> bool:
        keys_changed = self.revoked.apply(entries)
        for observer in self._observers:
            observer(entries)
        return keys_changed

    async def catch_up(self) -> int:
        """Apply entries written since the last read; returns how many."""
        return await self._read_stream(reload_keys=True)

    async def _read_stream(self, *, reload_keys: bool) -> int:
        async with self._catching_up:
            started = time.monotonic()
            total = 0
            while True:
                # Entries the writer stamped as expired may still be within our horizon.
                batch = await self._store.revocations_after(
                    self.revoked.last_seq, self._clock.now() - self._horizon
                )
                if not batch:
                    break
                total += len(batch)
                if self._apply(batch) and reload_keys and self._keys_changed is not None:
                    await self._keys_changed()
            # Everything appended before this read began has been applied.
            self._synced_at = started
            return total

    async def follow(self, *, poll_interval: float, max_staleness: float) -> None:
        """Follow the stream forever (run as a task): subscribe to the store's push, read
        what was appended since the last read, then read again at every push, or every
        ``poll_interval`` where the store has no push. Without a push for a quarter of
        ``max_staleness`` it reads anyway: that read is the heartbeat that keeps this
        instance current (:meth:`is_current`) and notices an outage. An outage is logged,
        retried every ``RETRY_INTERVAL`` and recovered from by itself."""
        self._max_staleness = max_staleness
        heartbeat = max_staleness / 4
        failing = False
        while True:
            listener = None
            try:
                listener = await self._store.listen_revocations()
                while True:
                    # Subscribed before reading: nothing appended from here on is missed.
                    await self.catch_up()
                    if failing:
                        log.info("revocation stream readable again")
                        failing = False
                    if listener is None:
                        await asyncio.sleep(min(poll_interval, heartbeat))
                    else:
                        await listener.wait(heartbeat)
            except StoreUnavailable as exc:
                if not failing:
                    log.warning("revocation stream unreadable", extra={"reason": exc.detail})
                failing = True
            except Exception:
                # A bug must not silently stop revocations from arriving: log, keep going.
                log.exception("revocation stream follower failed")
                failing = True
            finally:
                if listener is not None:
                    await _close_quietly(listener)
            await asyncio.sleep(RETRY_INTERVAL)

    def prune(self) -> None:
        self.revoked.prune(self._clock.now())

    async def purge(self, limit: int) -> int:
        """Delete stored entries past their expiry by more than our horizon too (another
        process may keep tokens longer than the writer did)."""
        return await self._store.purge_expired_revocations(self._clock.now() - self._horizon, limit)


async def _close_quietly(listener: RevocationListener) -> None:
    try:
        await listener.close()
    except Exception:  # a broken connection may fail to close; it is dropped either way
        log.debug("closing the revocation listener failed", exc_info=True)
