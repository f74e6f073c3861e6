"""The store interface: a few async primitives; the logic lives above them.

Every implementation passes the same conformance suite (``tests/store/conformance.py``).
Implementations raise ``twofold.errors.StoreUnavailable`` when the backend cannot be
reached and ``twofold.errors.Conflict`` when a unique value is taken.
"""

from __future__ import annotations

from typing import Protocol

from twofold.store.records import KeyState, SessionRecord, StoredKey, User


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


class SessionStore(Protocol):
    async def put_session(self, record: SessionRecord) -> None: ...

    async def get_session(self, id_hash: bytes) -> SessionRecord | None: ...

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

    async def list_user_sessions(self, user_id: str) -> list[SessionRecord]:
        """The user's sessions, newest first."""
        ...

    async def purge_expired_sessions(self, now: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` sessions whose idle or absolute expiry is past."""
        ...


class KeyStore(Protocol):
    async def add_key(self, key: StoredKey) -> None:
        """Insert a key; ``Conflict`` if the kid exists."""
        ...

    async def list_keys(self) -> list[StoredKey]:
        """Every key, oldest first."""
        ...

    async def set_key_state(
        self, kid: str, state: KeyState, retire_after: float | None
    ) -> None: ...


class Store(UserStore, SessionStore, KeyStore, Protocol):
    """Everything a Twofold server keeps. ``open`` migrates nothing: run migrations first."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the backend answers."""
        ...
