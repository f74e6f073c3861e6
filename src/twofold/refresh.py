"""Refresh tokens: opaque, stored hashed, grouped in families, rotated on every use.

A token is ``tfr_`` and 256 bits, base64url: nothing like a JWS, so neither kind of token
can stand in for the other (SECURITY.md T6). The store keeps SHA-256 of each token and the
family it belongs to (one family per login).

Every use spends the token and issues its successor. Presenting a spent token is theft
unless it is a race (T8): a client whose two tabs refresh at once, or that retries after a
lost answer, presents the same token twice within moments. Refusing the loser would log
honest users out ("refresh races log people out"), so within ``reuse_grace`` seconds of the
spend, while its successor is still unspent, the duplicate gets the *same* successor. That
needs no stored secret: the successor of token ``t`` is ``HMAC(key, t)``, which only a
holder of ``t`` can ask for. Any other second use revokes the whole family, its newest
token included. ``reuse_grace = 0`` turns the window off: then of racing requests at most
one gets a pair, and the others end the family (and that pair with it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from enum import Enum

from twofold.clock import Clock
from twofold.errors import InvalidGrant
from twofold.sessions import MAX_USER_AGENT
from twofold.store.base import RefreshStore
from twofold.store.records import RefreshFamily, RefreshToken

PREFIX = "tfr_"
_SHAPE = re.compile(r"tfr_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    idle_timeout: float = 7 * 86_400
    absolute_lifetime: float = 30 * 86_400
    reuse_grace: float = 5.0


class Outcome(Enum):
    ROTATED = "rotated"
    #: A duplicate within the grace window: the same successor as the request that won.
    REPLAYED = "replayed"


@dataclass(frozen=True, slots=True)
class IssuedRefresh:
    """A refresh token to hand out (``token`` goes to the client and nowhere else)."""

    token: str
    family: RefreshFamily
    outcome: Outcome = Outcome.ROTATED


class ReuseDetected(InvalidGrant):
    """A spent token came back: the family has been ended. ``family`` is for the caller's
    revocation and audit; it is never shown to the client. ``ended_here`` is False when a
    concurrent request ended the family first (then it has revoked and audited it)."""

    def __init__(self, family: RefreshFamily, *, ended_here: bool) -> None:
        super().__init__()
        self.family = family
        self.ended_here = ended_here


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def is_well_formed(token: str) -> bool:
    return _SHAPE.fullmatch(token) is not None


class RefreshTokens:
    """Creates families, rotates their tokens, detects reuse. Checks of the user (lock,
    password epoch, roles) belong to the caller, who reads the user anyway."""

    def __init__(
        self, store: RefreshStore, policy: RefreshPolicy, clock: Clock, key: bytes
    ) -> None:
        if len(key) < 32:
            raise ValueError("the refresh-token key must be at least 256 bits")
        self._store = store
        self.policy = policy
        self._clock = clock
        self._key = key

    async def start_family(
        self,
        user_id: str,
        *,
        password_changed_at: float,
        client_address: str | None,
        user_agent: str | None,
    ) -> IssuedRefresh:
        now = self._clock.now()
        absolute = now + self.policy.absolute_lifetime
        family = RefreshFamily(
            id=secrets.token_urlsafe(16),
            user_id=user_id,
            created_at=now,
            last_used_at=now,
            idle_expires_at=min(now + self.policy.idle_timeout, absolute),
            absolute_expires_at=absolute,
            client_address=client_address,
            user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
            password_changed_at=password_changed_at,
        )
        token = PREFIX + secrets.token_urlsafe(32)
        await self._store.create_family(
            family, RefreshToken(hash=hash_token(token), family_id=family.id, created_at=now)
        )
        return IssuedRefresh(token=token, family=family)

    async def rotate(self, token: str) -> IssuedRefresh:
        """Spend ``token`` and return its successor; ``InvalidGrant`` if it cannot be used,
        ``ReuseDetected`` (after ending the family) if it was spent before."""
        if not is_well_formed(token):
            raise InvalidGrant()
        token_hash = hash_token(token)
        record = await self._store.get_refresh_token(token_hash)
        if record is None:
            raise InvalidGrant()
        family = await self._live_family(record.family_id)
        successor = self._successor(token)
        now = self._clock.now()
        if record.spent_at is None:
            idle = min(now + self.policy.idle_timeout, family.absolute_expires_at)
            won = await self._store.spend_refresh_token(
                token_hash,
                RefreshToken(hash=hash_token(successor), family_id=family.id, created_at=now),
                last_used_at=now,
                idle_expires_at=idle,
            )
            if won:
                return IssuedRefresh(
                    token=successor,
                    family=replace(family, last_used_at=now, idle_expires_at=idle),
                )
            # Lost a race with another use of the same token: judge it as a second use.
            record = await self._store.get_refresh_token(token_hash)
            if record is None or record.spent_at is None:
                raise InvalidGrant()
        return await self._second_use(record, family, successor, now)

    async def _second_use(
        self, record: RefreshToken, family: RefreshFamily, successor: str, now: float
    ) -> IssuedRefresh:
        assert record.spent_at is not None
        grace = self.policy.reuse_grace
        if grace > 0 and now - record.spent_at <= grace and record.successor_hash is not None:
            next_record = await self._store.get_refresh_token(record.successor_hash)
            if (
                next_record is not None
                and next_record.spent_at is None
                and hmac.compare_digest(next_record.hash, hash_token(successor))
            ):
                return IssuedRefresh(token=successor, family=family, outcome=Outcome.REPLAYED)
        ended_here = await self._store.delete_family(family.id)
        raise ReuseDetected(family, ended_here=ended_here)

    async def _live_family(self, family_id: str) -> RefreshFamily:
        family = await self._store.get_family(family_id)
        if family is None:
            raise InvalidGrant()
        now = self._clock.now()
        if now >= family.idle_expires_at or now >= family.absolute_expires_at:
            await self._store.delete_family(family.id)
            raise InvalidGrant()
        return family

    def _successor(self, token: str) -> str:
        return PREFIX + self._mac(b"successor:", token)

    def access_jti(self, issued: IssuedRefresh) -> str:
        """The ``jti`` of the access token issued with ``issued``: derived from it, so that
        duplicates handed the same pair get the same access token id too (one revocation
        covers both)."""
        return self._mac(b"jti:", issued.token)[:22]

    def _mac(self, purpose: bytes, token: str) -> str:
        digest = hmac.new(self._key, purpose + token.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    async def family_of(self, token: str) -> RefreshFamily | None:
        """The live family of an unspent token, or None (introspection, revocation)."""
        if not is_well_formed(token):
            return None
        record = await self._store.get_refresh_token(hash_token(token))
        if record is None or record.spent_at is not None:
            return None
        try:
            return await self._live_family(record.family_id)
        except InvalidGrant:
            return None

    async def end(self, family_id: str) -> bool:
        return await self._store.delete_family(family_id)

    async def end_all_for_user(self, user_id: str, *, keep: str | None = None) -> list[str]:
        return await self._store.delete_user_families(user_id, keep=keep)

    async def get_family(self, family_id: str) -> RefreshFamily | None:
        return await self._store.get_family(family_id)

    async def list_live(self, limit: int, offset: int) -> list[RefreshFamily]:
        return await self._store.list_live_families(self._clock.now(), limit, offset)

    async def end_everyone(self) -> int:
        return await self._store.delete_all_families()

    async def list_for_user(self, user_id: str) -> list[RefreshFamily]:
        now = self._clock.now()
        return [
            family
            for family in await self._store.list_user_families(user_id)
            if now < family.idle_expires_at and now < family.absolute_expires_at
        ]
