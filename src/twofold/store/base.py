"""The store interface: a few async primitives; the logic lives above them.

Every implementation passes the same conformance suite (``tests/store/conformance.py``).
Implementations raise ``twofold.errors.StoreUnavailable`` when the backend cannot be
reached and ``twofold.errors.Conflict`` when a unique value is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from twofold.store.records import (
    AuditEvent,
    Client,
    KeyState,
    RefreshFamily,
    RefreshToken,
    Revocation,
    ScopedTokenRecord,
    SessionRecord,
    StoredKey,
    User,
)


class UserStore(Protocol):
    async def add_user(self, user: User) -> None:
        """Insert a user; ``Conflict`` if the e-mail is taken."""
        ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_email(self, email: str) -> User | None: ...

    async def set_password(self, user_id: str, password_hash: str, changed_at: float) -> None:
        """Replace the hash; ``changed_at`` also moves ``password_changed_at``."""
        ...

    async def rehash_password(self, user_id: str, old_hash: str, new_hash: str) -> None:
        """Replace the hash only if it is still ``old_hash`` (a silent upgrade, not a change)."""
        ...

    async def list_users(self, limit: int = 100, offset: int = 0) -> list[User]:
        """Users ordered by creation time."""
        ...

    async def set_locked(self, user_id: str, locked: bool) -> bool:
        """Lock or unlock; False if there is no such user."""
        ...

    async def set_email(self, user_id: str, email: str) -> bool:
        """Replace the (already normalised) e-mail address; ``Conflict`` if another user
        has it, False if there is no such user. Afterwards ``get_user_by_email`` finds the
        user under the new address only."""
        ...

    async def set_roles(self, user_id: str, roles: tuple[str, ...], changed_at: float) -> bool:
        """Replace the roles (order kept) and move ``roles_changed_at`` to ``changed_at``, or
        just past its current value if that is not earlier (it only ever increases);
        False if there is no such user."""
        ...


class SessionStore(Protocol):
    async def put_session(self, record: SessionRecord) -> None:
        """Insert, or replace the record with the same ``id_hash`` (an upsert)."""
        ...

    async def get_session(self, id_hash: bytes) -> SessionRecord | None: ...

    async def get_session_and_user(self, id_hash: bytes) -> tuple[SessionRecord, User] | None:
        """The session and its user in one read (a join, or one round trip): what a
        session-authenticated request needs. None if either is missing."""
        ...

    async def touch_session(
        self, id_hash: bytes, last_seen_at: float, idle_expires_at: float
    ) -> None:
        """Move the sliding expiry; a missing record is not an error."""
        ...

    async def delete_session(self, id_hash: bytes) -> bool:
        """True if a record was deleted."""
        ...

    async def delete_user_sessions(self, user_id: str, keep: bytes | None = None) -> int:
        """Delete every session of the user except ``keep``; returns how many."""
        ...

    async def renew_session(
        self, old_hash: bytes, new: SessionRecord, old_expires_at: float
    ) -> bool:
        """Continue a session under a new id after a privilege change, atomically: if the
        record ``old_hash`` exists, was never renewed (``renewed_to`` is None) and has
        ``roles_changed_at`` below ``new.roles_changed_at``, give it that epoch, point its
        ``renewed_to`` at ``new``, cut both its expiries to ``old_expires_at`` (if sooner)
        and insert ``new``; True. Otherwise change nothing; False. Of many concurrent
        calls for one old id, at most one returns True."""
        ...

    async def delete_all_sessions(self) -> int:
        """Delete every session of every user (an admin's global logout); how many."""
        ...

    async def list_user_sessions(self, user_id: str) -> list[SessionRecord]:
        """The user's sessions, newest first."""
        ...

    async def purge_expired_sessions(self, now: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` sessions whose idle or absolute expiry is past."""
        ...

    async def list_live_sessions(
        self, now: float, limit: int = 100, offset: int = 0
    ) -> list[SessionRecord]:
        """Sessions of every user whose idle and absolute expiry are both after ``now``,
        most recently seen first (ties by ``id_hash``)."""
        ...


class RefreshStore(Protocol):
    """Refresh-token families. Deleting a family deletes its tokens; deleting a user
    deletes their families."""

    async def create_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        """Store a new family and its first token in one transaction."""
        ...

    async def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None: ...

    async def get_family(self, family_id: str) -> RefreshFamily | None: ...

    async def spend_refresh_token(
        self,
        token_hash: bytes,
        successor: RefreshToken,
        last_used_at: float,
        idle_expires_at: float,
    ) -> bool:
        """Rotate, atomically: if ``token_hash`` exists and is unspent, mark it spent at
        ``successor.created_at`` with ``successor_hash = successor.hash``, insert
        ``successor`` and move the family's ``last_used_at``/``idle_expires_at``; True.
        Otherwise change nothing and return False. Of many concurrent calls for one token,
        exactly one returns True."""
        ...

    async def delete_family(self, family_id: str) -> bool:
        """True if a family was deleted (with all its tokens)."""
        ...

    async def delete_user_families(self, user_id: str, keep: str | None = None) -> list[str]:
        """Delete every family of the user except ``keep``; returns the deleted ids."""
        ...

    async def delete_all_families(self) -> int:
        """Delete every family of every user, with their tokens; how many families."""
        ...

    async def list_user_families(self, user_id: str) -> list[RefreshFamily]:
        """The user's families, newest first."""
        ...

    async def list_live_families(
        self, now: float, limit: int = 100, offset: int = 0
    ) -> list[RefreshFamily]:
        """Families of every user whose idle and absolute expiry are both after ``now``,
        most recently used first (ties by ``id``)."""
        ...

    async def purge_expired_families(self, now: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` families whose idle or absolute expiry is past."""
        ...


class RevocationListener(Protocol):
    """A subscription to the revocation stream's pushes (PostgreSQL NOTIFY, Redis
    pub/sub). It only says "something was appended": the follower then reads the stream
    from its last ``seq``, so a lost or merged push loses nothing."""

    # The timeout is passed down to the driver (psycopg's notifies, redis-py's
    # get_message) rather than imposed by cancelling it, which could cut a read mid-way.
    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until an entry is appended (by any process) after the subscription or the
        previous ``wait``; True then, False if ``timeout`` seconds pass first.
        ``StoreUnavailable`` if the subscription's connection is lost."""
        ...

    async def close(self) -> None: ...


class RevocationStore(Protocol):
    """The append-only, sequence-numbered revocation stream."""

    async def append_revocation(self, revocation: Revocation) -> Revocation:
        """Store it and push a notice to listeners; returns it with its ``seq``, strictly
        greater than every earlier one. Entries become visible to ``revocations_after`` in
        ``seq`` order: once an entry with some ``seq`` can be read, no entry with a lower
        ``seq`` can appear later (a follower reads ``seq > last`` and would skip it)."""
        ...

    async def listen_revocations(self) -> RevocationListener | None:
        """Subscribe to pushes of new entries; None if the backend has none (SQLite: the
        follower polls). ``StoreUnavailable`` if the backend cannot be reached."""
        ...

    async def revocations_after(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        """Entries with ``seq`` greater than the given one and ``expires_at`` after ``now``,
        in ``seq`` order, at most ``limit``."""
        ...

    async def purge_expired_revocations(self, now: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` entries whose ``expires_at`` is at or before ``now``."""
        ...


class AuditStore(Protocol):
    async def append_audit(self, event: AuditEvent) -> int:
        """Store it; returns its ``seq`` (strictly increasing)."""
        ...

    async def list_audit(
        self,
        *,
        before: int | None = None,
        limit: int = 50,
        user_id: str | None = None,
        kind: str | None = None,
    ) -> list[AuditEvent]:
        """Newest first: events with ``seq < before`` (all when None), optionally only
        those of ``user_id`` (as subject or actor) and/or of ``kind``."""
        ...


class ClientStore(Protocol):
    async def add_client(self, client: Client) -> None:
        """Insert; ``Conflict`` if the id or the name is taken."""
        ...

    async def get_client(self, client_id: str) -> Client | None: ...

    async def list_clients(self) -> list[Client]:
        """Oldest first."""
        ...

    async def delete_client(self, client_id: str) -> bool: ...


class KeyStore(Protocol):
    async def add_key(self, key: StoredKey) -> None:
        """Insert a key; ``Conflict`` if the kid exists."""
        ...

    async def list_keys(self) -> list[StoredKey]:
        """Every key, oldest first."""
        ...

    async def set_key_state(self, kid: str, state: KeyState, retire_after: float | None) -> bool:
        """Move a key's state; False if there is no such kid."""
        ...


class ThrottleStore(Protocol):
    """Counters of failed logins (SECURITY.md P3), one per key (an account, a client
    address or a known device; the keys are opaque strings of at most 128 ASCII
    characters). A counter forgets: a failure more than ``forget_after`` seconds after the
    previous one starts it again at 1."""

    async def record_failure(self, key: str, now: float, forget_after: float) -> int:
        """Count one failure at ``now`` and return the new count: 1 if the key has no
        failure at or after ``now - forget_after``, else the previous count plus one. The
        key's last failure becomes ``now``. Atomic: of n concurrent calls on one fresh key,
        the returned counts are exactly 1..n."""
        ...

    async def get_failures(
        self, keys: Sequence[str], now: float, forget_after: float
    ) -> dict[str, tuple[int, float]]:
        """``{key: (count, last_failure_at)}`` for each of ``keys`` whose last failure is at
        or after ``now - forget_after``; other keys are absent. One round trip."""
        ...

    async def clear_failures(self, key: str) -> None:
        """Forget the key's failures (a missing key is not an error)."""
        ...

    async def purge_stale_failures(self, before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` counters whose last failure is before ``before``."""
        ...


class ScopedTokenStore(Protocol):
    """Tokens users make for third-party apps. Deleting a user deletes their tokens."""

    async def add_scoped_token(self, record: ScopedTokenRecord) -> None:
        """Insert a token of an existing user (a taken id or an unknown user is a bug)."""
        ...

    async def get_scoped_token(self, token_id: str) -> ScopedTokenRecord | None:
        """The token, expired or not (the caller judges its expiry); None if unknown."""
        ...

    async def list_scoped_tokens(self, user_id: str, now: float) -> list[ScopedTokenRecord]:
        """The user's tokens unexpired at ``now`` (``expires_at`` after it), newest created
        first (ties by id descending)."""
        ...

    async def touch_scoped_token(self, token_id: str, at: float) -> None:
        """Set ``last_used_at``; a missing token is not an error (and is not created)."""
        ...

    async def delete_scoped_token(self, token_id: str, user_id: str | None = None) -> bool:
        """True if a token was deleted. With ``user_id``, only a token that user owns:
        another user's token is left alone and the answer is False."""
        ...

    async def delete_user_scoped_tokens(self, user_id: str) -> list[str]:
        """Delete every token of the user; returns the deleted ids, sorted."""
        ...

    async def purge_expired_scoped_tokens(self, now: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` tokens whose ``expires_at`` is at or before ``now``."""
        ...


class Store(
    UserStore,
    SessionStore,
    RefreshStore,
    RevocationStore,
    AuditStore,
    ClientStore,
    KeyStore,
    ThrottleStore,
    ScopedTokenStore,
    Protocol,
):
    """Everything a Twofold server keeps. ``open`` migrates nothing: run migrations first."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the backend answers."""
        ...
