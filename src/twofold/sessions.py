"""Server-side sessions: opaque random ids, only their hash stored, idle and absolute expiry.

The id is 256 bits from the OS CSPRNG (SECURITY.md S1). The store sees only SHA-256 of it,
so a leaked store holds no usable ids. An id the server never issued finds no record and is
refused; nothing is ever created from a client's id (S2).

A request costs one store read (the session and its user together) and no write, except
one touch per ``touch_interval`` (the sliding expiry); with a ``SessionCache`` it costs no
read while the session is cached. Whatever ends or changes sessions here is announced on
the revocation stream, so that every instance's cache drops them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from twofold.clock import Clock
from twofold.errors import NotAuthenticated
from twofold.revocation import EVERYONE
from twofold.session_cache import SessionCache
from twofold.store.base import SessionStore, UserStore
from twofold.store.records import SessionRecord, User

ID_BYTES = 32
# token_urlsafe(32) is 43 characters of the URL-safe alphabet; anything else is not ours.
_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_USER_AGENT = 512
_MAX_RENEWAL_CHAIN = 8

#: Tells every instance that sessions of a user (or EVERYONE) ended or changed.
Announce = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Timeouts in seconds (S6). ``touch_interval`` bounds how often the idle expiry is written."""

    idle_timeout: float = 30 * 60
    absolute_lifetime: float = 12 * 60 * 60
    touch_interval: float = 60


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new session: ``id`` goes into the cookie and nowhere else."""

    id: str
    record: SessionRecord


def hash_session_id(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("ascii")).digest()


def is_well_formed(session_id: str) -> bool:
    return _ID_SHAPE.fullmatch(session_id) is not None


class SessionManager:
    """Creates, resolves, slides and ends sessions; the store supplies only primitives.

    ``users`` is given when sessions live in another store than accounts (Redis beside
    PostgreSQL): a lookup then reads both, unless the session is cached."""

    def __init__(
        self,
        store: SessionStore,
        policy: SessionPolicy,
        clock: Clock,
        *,
        users: UserStore | None = None,
        announce: Announce | None = None,
        cache: SessionCache | None = None,
    ) -> None:
        self._store = store
        self.policy = policy
        self._clock = clock
        self._users = users
        self._announce = announce
        self._cache = cache

    async def create(
        self,
        user_id: str,
        *,
        password_changed_at: float,
        roles_changed_at: float = 0.0,
        client_address: str | None,
        user_agent: str | None,
        replacing: str | None = None,
    ) -> IssuedSession:
        """A fresh session for a user who just proved the password last changed at
        ``password_changed_at``. ``replacing`` (the id the client came with) is ended, so an
        id planted before login never becomes authenticated (S3, no fixation)."""
        if replacing is not None:
            await self.end(replacing)
        now = self._clock.now()
        return await self._issue(
            user_id,
            created_at=now,
            absolute_expires_at=now + self.policy.absolute_lifetime,
            password_changed_at=password_changed_at,
            roles_changed_at=roles_changed_at,
            client_address=client_address,
            user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
        )

    async def resolve(self, session_id: str) -> tuple[SessionRecord, User]:
        """The live record for ``session_id`` and its user as stored now, sliding the idle
        expiry; else NotAuthenticated. The caller judges the user (lock, epochs)."""
        if not is_well_formed(session_id):
            raise NotAuthenticated("The session is not valid.")
        id_hash = hash_session_id(session_id)
        now = self._clock.now()
        cache = self._cache
        found = cache.get(id_hash) if cache is not None else None
        # A cached record that looks expired may have been slid by another instance.
        hit = found is not None and _is_live(found[0], now)
        generation = cache.generation() if cache is not None else 0
        if not hit:
            found = await self._lookup(id_hash)
        if found is None:
            raise NotAuthenticated("The session is not valid.")
        record, user = found
        if not _is_live(record, now):
            await self._store.delete_session(id_hash)
            raise NotAuthenticated("The session has expired.")
        if now - record.last_seen_at >= self.policy.touch_interval:
            # Sliding expiry costs one write per interval, not one per request.
            idle = min(now + self.policy.idle_timeout, record.absolute_expires_at)
            await self._store.touch_session(id_hash, now, idle)
            record = replace(record, last_seen_at=now, idle_expires_at=idle)
        if cache is not None:
            if hit:
                cache.update(record, generation)
            else:
                cache.put(record, user, generation)
        return record, user

    async def _lookup(self, id_hash: bytes) -> tuple[SessionRecord, User] | None:
        if self._users is None:
            return await self._store.get_session_and_user(id_hash)
        record = await self._store.get_session(id_hash)
        user = None if record is None else await self._users.get_user(record.user_id)
        return None if record is None or user is None else (record, user)

    async def rotate(
        self,
        session_id: str,
        record: SessionRecord,
        *,
        password_changed_at: float | None = None,
        roles_changed_at: float | None = None,
    ) -> IssuedSession:
        """A new id for the same login (privilege change, re-authentication); the old id dies.

        The login's absolute deadline is kept: rotation is not a new login. A session
        ended meanwhile (logout, lock elsewhere) is not brought back."""
        if not await self.end(session_id):
            raise NotAuthenticated("The session is not valid.")
        return await self._issue(
            record.user_id,
            created_at=record.created_at,
            absolute_expires_at=record.absolute_expires_at,
            password_changed_at=(
                record.password_changed_at if password_changed_at is None else password_changed_at
            ),
            roles_changed_at=(
                record.roles_changed_at if roles_changed_at is None else roles_changed_at
            ),
            client_address=record.client_address,
            user_agent=record.user_agent,
        )

    async def renew(
        self, record: SessionRecord, *, roles_changed_at: float, grace: float
    ) -> IssuedSession | None:
        """The same login under a new id after a privilege change (S3), or None if another
        request renewed it first. The old id lives ``grace`` seconds more, so that requests
        the browser sent with it in parallel are served instead of logging it out."""
        now = self._clock.now()
        session_id = secrets.token_urlsafe(ID_BYTES)
        new = replace(
            record,
            id_hash=hash_session_id(session_id),
            last_seen_at=now,
            idle_expires_at=min(now + self.policy.idle_timeout, record.absolute_expires_at),
            roles_changed_at=roles_changed_at,
        )
        if not await self._store.renew_session(record.id_hash, new, now + grace):
            return None
        await self._announced(record.user_id)  # the old record's expiries were cut
        return IssuedSession(id=session_id, record=new)

    async def end(self, session_id: str) -> bool:
        if not is_well_formed(session_id):
            return False
        return await self.end_by_hash(hash_session_id(session_id))

    async def end_all_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        keep_hash = hash_session_id(keep) if keep is not None and is_well_formed(keep) else None
        await self._announced(user_id)  # before and after, as in end_by_hash
        ended = await self._store.delete_user_sessions(user_id, keep=keep_hash)
        await self._announced(user_id)
        return ended

    async def end_everyone(self) -> int:
        await self._announced(EVERYONE)
        ended = await self._store.delete_all_sessions()
        await self._announced(EVERYONE)
        return ended

    async def list_for_user(self, user_id: str) -> list[SessionRecord]:
        """The user's live sessions, newest first."""
        now = self._clock.now()
        return [
            record
            for record in await self._store.list_user_sessions(user_id)
            if _is_live(record, now)
        ]

    async def get_by_hash(self, id_hash: bytes) -> SessionRecord | None:
        return await self._store.get_session(id_hash)

    async def end_by_hash(self, id_hash: bytes) -> bool:
        """End the session and, if it was renewed in its last seconds, what it became:
        one login, one logout, whichever of its ids the client still held."""
        record = await self._store.get_session(id_hash)
        user_id = None if record is None else record.user_id
        if user_id is not None:
            # Announced before the delete too: a failure between the two would leave
            # other instances' caches serving a session a retry no longer finds.
            await self._announced(user_id)
        ended = await self._store.delete_session(id_hash)
        # Renewals are seconds apart and a renewed record cannot renew again, so chains
        # are short; the bound only guards against a corrupt store.
        for _ in range(_MAX_RENEWAL_CHAIN):
            if record is None or record.renewed_to is None:
                break
            successor = record.renewed_to
            record = await self._store.get_session(successor)
            await self._store.delete_session(successor)
        if user_id is not None:
            await self._announced(user_id)
        return ended

    async def _announced(self, user_id: str) -> None:
        if self._announce is not None:
            await self._announce(user_id)

    async def list_live(self, limit: int, offset: int) -> list[SessionRecord]:
        return await self._store.list_live_sessions(self._clock.now(), limit, offset)

    async def _issue(
        self,
        user_id: str,
        *,
        created_at: float,
        absolute_expires_at: float,
        password_changed_at: float,
        roles_changed_at: float,
        client_address: str | None,
        user_agent: str | None,
    ) -> IssuedSession:
        now = self._clock.now()
        session_id = secrets.token_urlsafe(ID_BYTES)
        record = SessionRecord(
            id_hash=hash_session_id(session_id),
            user_id=user_id,
            created_at=created_at,
            last_seen_at=now,
            idle_expires_at=min(now + self.policy.idle_timeout, absolute_expires_at),
            absolute_expires_at=absolute_expires_at,
            client_address=client_address,
            user_agent=user_agent,
            password_changed_at=password_changed_at,
            roles_changed_at=roles_changed_at,
        )
        await self._store.put_session(record)
        return IssuedSession(id=session_id, record=record)


def _is_live(record: SessionRecord, now: float) -> bool:
    return now < record.idle_expires_at and now < record.absolute_expires_at
