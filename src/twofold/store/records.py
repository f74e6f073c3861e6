"""Plain records that cross the store boundary. Times are Unix seconds (float)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KeyState = Literal["active", "verify", "retired"]


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    password_hash: str
    roles: tuple[str, ...]
    created_at: float
    password_changed_at: float
    locked: bool = False


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A server-side session. Only the SHA-256 of the id is kept (SECURITY.md S1)."""

    id_hash: bytes
    user_id: str
    created_at: float
    last_seen_at: float
    idle_expires_at: float
    absolute_expires_at: float
    client_address: str | None
    user_agent: str | None
    # The user's ``password_changed_at`` when the password was last proved for this
    # session: a later password change makes the session invalid at once, even one that a
    # login racing with the change stored after the change ended the others.
    password_changed_at: float


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A signing key as stored: ``material`` is encrypted by the key ring's sealer."""

    kid: str
    alg: str
    material: bytes
    created_at: float
    state: KeyState
    retire_after: float | None = None
