"""Plain records that cross the store boundary. Times are Unix seconds (float)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

KeyState = Literal["active", "verify", "retired"]
KEY_STATES: dict[str, KeyState] = {state: state for state in get_args(KeyState)}


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    password_hash: str
    roles: tuple[str, ...]
    created_at: float
    password_changed_at: float
    locked: bool = False
    #: Moves (strictly increasing) at every change of roles: the privilege epoch.
    roles_changed_at: float = 0.0


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
    # The user's ``roles_changed_at`` when this id was issued: after a role change the
    # session continues under a new id (SECURITY.md S3).
    roles_changed_at: float = 0.0
    # Set on a renewed record for its last seconds: the id of the session it became.
    renewed_to: bytes | None = None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A signing key as stored: ``material`` is encrypted by the key ring's sealer."""

    kid: str
    alg: str
    material: bytes
    created_at: float
    state: KeyState
    retire_after: float | None = None


@dataclass(frozen=True, slots=True)
class RefreshFamily:
    """One login in JWT mode: every refresh token rotated from it belongs to the family.

    ``id`` is public (it is the access tokens' ``sid`` claim and the device handle); the
    refresh tokens themselves are stored only as SHA-256 hashes (``RefreshToken.hash``).
    """

    id: str
    user_id: str
    created_at: float
    last_used_at: float
    idle_expires_at: float
    absolute_expires_at: float
    client_address: str | None
    user_agent: str | None
    # As for sessions: the password epoch the login proved; a later change ends the family.
    password_changed_at: float


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One refresh token of a family. Spent once; ``successor_hash`` is the token it
    was rotated into (what a racing duplicate within the grace window is handed)."""

    hash: bytes
    family_id: str
    created_at: float
    spent_at: float | None = None
    successor_hash: bytes | None = None


RevocationKind = Literal["token", "family", "user", "key", "session"]

#: Stored strings back to their literal types, for every store's row mapping.
REVOCATION_KINDS: dict[str, RevocationKind] = {kind: kind for kind in get_args(RevocationKind)}


@dataclass(frozen=True, slots=True)
class Revocation:
    """One entry of the append-only revocation stream.

    - ``token``: the access token whose ``jti`` is ``subject``;
    - ``family``: every access token whose ``sid`` is ``subject``;
    - ``user``: every access token of user ``subject`` issued before ``at`` (not-before);
    - ``key``: the key ring changed (rotation, retirement, compromise): reload it;
    - ``session``: the session whose stored ``id_hash`` is ``subject`` (hex) ended or
      changed: instances that cache sessions drop it (the record itself is already gone
      from the store, so this entry refuses nothing on its own).

    ``expires_at`` is when no token it could refuse is still valid; expired entries are
    purged. ``seq`` is assigned by the store, strictly increasing (0 before it is stored).
    """

    kind: RevocationKind
    subject: str
    at: float
    expires_at: float
    seq: int = 0


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """A security event. ``detail`` holds small JSON values and never a secret."""

    kind: str
    at: float
    user_id: str | None = None
    actor_id: str | None = None
    client_address: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Client:
    """A registered resource server (introspection and revocation, RFC 7662/7009).

    Its secret is 256 random bits, so a SHA-256 hash is as strong as a slow hash here."""

    id: str
    name: str
    secret_hash: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class ScopedTokenRecord:
    """A token a user made for a third-party app: ``<id>.<secret>``, limited to ``scopes``.

    ``id`` is public ("tfs_" + 22 characters); only ``secret_hash``, the SHA-256 of the
    secret part, is kept. ``password_changed_at`` is the user's password epoch when the
    token was made: a later password change ends it, as it ends sessions."""

    id: str
    user_id: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: bytes
    password_changed_at: float
    created_at: float
    expires_at: float
    last_used_at: float | None = None
