"""Scoped tokens: long-lived credentials a user makes for another application.

A scoped token is ``<id>.<secret>``: the id (``tfs_`` and 128 random bits) names it, the
secret (256 random bits) proves it, and it is shown once, when it is made. Only SHA-256 of
the secret is stored: as for clients (``clients.py``), a slow hash protects guessable
passwords, and this secret is not guessable. Neither Twofold's endpoints nor resource
servers accept the token itself: the application exchanges it at ``POST /auth/token`` for
a short-lived access token (``exchange.py``) that carries the token's id as ``sid``.

A token holds a subset of the configured scopes and no roles. It is bound to the password
epoch it was made under (a password change ends it), refused while its user is locked, and
revoking it appends a ``family`` entry for its id to the revocation stream, which refuses
every access token exchanged from it, on every instance.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from twofold import audit
from twofold.audit import AuditLog
from twofold.clock import Clock
from twofold.errors import (
    InvalidRequest,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    StoreUnavailable,
)
from twofold.metrics import Metrics
from twofold.revocation import Revoker
from twofold.store.base import ScopedTokenStore, UserStore
from twofold.store.records import ScopedTokenRecord, User

PREFIX = "tfs_"
_ID = re.compile(r"tfs_[A-Za-z0-9_-]{22}")
MAX_SECRET_LENGTH = 256
MAX_NAME = 64
#: Live tokens one user may hold: enough for every app, not a way to fill the store.
MAX_PER_USER = 100
#: Seconds between writes of a token's ``last_used_at``: one write per interval, not per use.
TOUCH_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class ScopedTokenPolicy:
    """The scopes a token may hold and the longest it may live (seconds)."""

    scopes: tuple[str, ...] = ("read", "write")
    max_lifetime: float = 90 * 86_400


@dataclass(frozen=True, slots=True)
class NewScopedToken:
    record: ScopedTokenRecord
    #: ``<id>.<secret>``: shown to the user once, never stored.
    token: str


@dataclass(frozen=True, slots=True)
class ScopedGrant:
    """A scoped token that authenticated, and its user as stored now."""

    record: ScopedTokenRecord
    user: User

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.record.scopes


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


# A hash compared when the token id is unknown, so that both failures take as long.
_DUMMY_HASH = _hash(secrets.token_urlsafe(32))


def is_scoped_token(credential: str) -> bool:
    """Whether a Bearer credential is meant as a scoped token (by its prefix only)."""
    return credential.startswith(PREFIX)


class ScopedTokens:
    """Creates, lists, authenticates and revokes scoped tokens; the store keeps records."""

    def __init__(
        self,
        store: ScopedTokenStore,
        users: UserStore,
        revoker: Revoker,
        audit_log: AuditLog,
        clock: Clock,
        policy: ScopedTokenPolicy,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics if metrics is not None else Metrics()
        self._store = store
        self._users = users
        self._revoker = revoker
        self._audit = audit_log
        self._clock = clock
        self.policy = policy

    def check_scopes(self, scopes: Sequence[str]) -> tuple[str, ...]:
        """``scopes`` deduplicated in the configured order; ``InvalidRequest`` unless they
        are one or more configured scopes."""
        wanted = set(scopes)
        if not wanted or not wanted <= set(self.policy.scopes):
            raise InvalidRequest(
                "Choose one or more of the scopes: " + ", ".join(self.policy.scopes) + "."
            )
        return tuple(scope for scope in self.policy.scopes if scope in wanted)

    async def create(
        self,
        user_id: str,
        *,
        name: str,
        scopes: Sequence[str],
        expires_in: float | None = None,
        client_address: str | None = None,
    ) -> NewScopedToken:
        """A new token of the user's, bound to their current password; its secret is in
        the answer and nowhere else. ``expires_in`` defaults to the longest allowed."""
        name = name.strip()
        if not 1 <= len(name) <= MAX_NAME or not name.isprintable():
            raise InvalidRequest(f"A token's name is 1-{MAX_NAME} printable characters.")
        granted = self.check_scopes(scopes)
        lifetime = self.policy.max_lifetime if expires_in is None else expires_in
        if not 60 <= lifetime <= self.policy.max_lifetime:
            raise InvalidRequest(
                f"A token expires in 60 to {int(self.policy.max_lifetime)} seconds."
            )
        user = await self._users.get_user(user_id)
        if user is None or user.locked:
            raise NotAuthenticated("The account cannot make tokens.")
        now = self._clock.now()
        if len(await self._store.list_scoped_tokens(user_id, now)) >= MAX_PER_USER:
            raise InvalidRequest(f"An account holds at most {MAX_PER_USER} tokens; revoke one.")
        secret = secrets.token_urlsafe(32)
        record = ScopedTokenRecord(
            id=PREFIX + secrets.token_urlsafe(16),
            user_id=user_id,
            name=name,
            scopes=granted,
            secret_hash=_hash(secret),
            password_changed_at=user.password_changed_at,
            created_at=now,
            expires_at=now + lifetime,
        )
        await self._store.add_scoped_token(record)
        await self._audit.record(
            audit.SCOPED_TOKEN_CREATED,
            user_id=user_id,
            actor_id=user_id,
            client_address=client_address,
            token=record.id,
            name=name,
            scopes=list(granted),
        )
        return NewScopedToken(record=record, token=f"{record.id}.{secret}")

    async def list_for_user(self, user_id: str) -> list[ScopedTokenRecord]:
        """The user's unexpired tokens, newest first (secrets are not kept to show)."""
        return await self._store.list_scoped_tokens(user_id, self._clock.now())

    async def authenticate(self, token: str) -> ScopedGrant:
        """The token and its user; ``InvalidToken`` if it is unknown, wrong, expired,
        revoked, of a locked user or made before the password last changed."""
        try:
            grant = await self._check(token)
        except InvalidToken as exc:
            self._metrics.authenticated("scoped", exc.reason)
            raise
        except StoreUnavailable:
            self._metrics.authenticated("scoped", "unavailable")
            raise
        self._metrics.authenticated("scoped")
        return grant

    async def _check(self, token: str) -> ScopedGrant:
        token_id, _, secret = token.partition(".")
        well_formed = _ID.fullmatch(token_id) is not None and len(secret) <= MAX_SECRET_LENGTH
        record = await self._store.get_scoped_token(token_id) if well_formed else None
        expected = record.secret_hash if record is not None else _DUMMY_HASH
        if not hmac.compare_digest(expected, _hash(secret[:MAX_SECRET_LENGTH])) or record is None:
            raise InvalidToken("invalid")
        now = self._clock.now()
        if record.expires_at <= now:
            raise InvalidToken("expired")
        user = await self._users.get_user(record.user_id)
        if (
            user is None
            or user.locked
            or user.password_changed_at != record.password_changed_at
            # Revoked but not yet deleted (a failure between the two): still refused.
            or self._revoker.revoked.family_revoked(record.id)
        ):
            raise InvalidToken("revoked")
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_INTERVAL:
            await self._store.touch_scoped_token(record.id, now)
        return ScopedGrant(record=record, user=user)

    async def revoke(
        self, user_id: str, token_id: str, *, client_address: str | None = None
    ) -> ScopedTokenRecord:
        """End one of the user's tokens and every access token exchanged from it;
        ``NotFound`` if it is not theirs (or not at all)."""
        record = await self._store.get_scoped_token(token_id) if _ID.fullmatch(token_id) else None
        if record is None or record.user_id != user_id:
            raise NotFound("No such token.")
        # The revocation comes first: a failure before the delete leaves the token and its
        # access tokens refused (``authenticate`` checks), and the record for a retry.
        await self._revoker.family(record.id)
        await self._store.delete_scoped_token(record.id, user_id)
        await self._audit.record(
            audit.SCOPED_TOKEN_REVOKED,
            user_id=user_id,
            actor_id=user_id,
            client_address=client_address,
            token=record.id,
            name=record.name,
        )
        return record

    async def end_all_for_user(self, user_id: str) -> list[str]:
        """Delete every token of the user (password change, lock). The caller's user
        revocation cuts off their access tokens, so no entry per token is needed."""
        return await self._store.delete_user_scoped_tokens(user_id)
