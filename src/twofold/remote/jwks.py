"""The issuer's published keys, cached as a verify-only key ring.

Keys come from the issuer's JWKS only (SECURITY.md T3): a token's own ``jwk``, ``jku``,
``x5u`` or ``x5c`` header is never used (``twofold.jose.jws`` refuses such tokens), and its
``kid`` is a look-up in this ring and nothing else. Each published key must name its
algorithm (``alg``): a key without one is skipped rather than guessed at, so that the
ring, not the token, decides the algorithm (T2); HMAC secrets are never published and
never imported.

The ring is re-read when the revocation feed announces a key change, and when a token
names a ``kid`` the ring lacks (a rotation not yet announced) -- the latter at most once
per ``min_refresh`` seconds, so that a stream of tokens with made-up kids cannot make this
resource server hammer the issuer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from twofold.errors import ConfigurationError
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import JoseKey
from twofold.remote.discovery import fetch_json
from twofold.remote.errors import FeedUnavailable

__all__ = ["JwksCache", "keyring_from_jwks"]

log = logging.getLogger("twofold.remote.jwks")


class JwksCache:
    """The JWKS at ``jwks_uri`` as :attr:`keyring`, empty until the first :meth:`refresh`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        jwks_uri: str,
        *,
        min_refresh: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keyring = KeyRing(())
        #: How many times the JWKS was read (for tests and metrics).
        self.fetches = 0
        self._client = client
        self._uri = jwks_uri
        self._min_refresh = min_refresh
        self._monotonic = monotonic
        self._fetched_at: float | None = None
        # One read at a time: concurrent requests with a new kid wait for the same read.
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the JWKS now (at start, and when the feed announces a key change);
        ``FeedUnavailable`` if it cannot be read, the old ring staying in place."""
        async with self._lock:
            await self._fetch()

    async def refresh_for_unknown_kid(self) -> bool:
        """After a token named a kid the ring lacks: re-read the JWKS unless it was read
        within ``min_refresh`` seconds. True if the ring is new since the caller looked
        (verifying again is worthwhile)."""
        before = self.keyring
        async with self._lock:
            if self.keyring is not before:
                return True  # another request's read finished while this one waited
            last = self._fetched_at
            if last is not None and self._monotonic() - last < self._min_refresh:
                return False
            try:
                await self._fetch()
            except FeedUnavailable as exc:
                log.warning("JWKS refresh failed", extra={"reason": exc.detail})
                return False
            return True

    async def _fetch(self) -> None:
        # Counted before the read: a failed read holds the rate limit too.
        self._fetched_at = self._monotonic()
        self.fetches += 1
        document = await fetch_json(self._client, self._uri)
        self.keyring = keyring_from_jwks(document)


def keyring_from_jwks(document: dict[str, object]) -> KeyRing:
    """A verify-only ring of the document's usable keys: each must carry ``alg`` (agreeing
    with its key type), be a signature key and describe a valid public key; others are
    skipped, as is a second key with a kid already taken."""
    published = document.get("keys")
    if not isinstance(published, list):
        raise FeedUnavailable("The JWKS document has no 'keys' list.")
    keys: dict[str, JoseKey] = {}
    for jwk in published:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("alg"), str):
            log.warning("JWKS key without 'alg' skipped")
            continue
        try:
            key = JoseKey.from_public_jwk(jwk)
        except ConfigurationError as exc:
            log.warning("JWKS key skipped", extra={"reason": exc.detail})
            continue
        keys.setdefault(key.kid, key)
    return KeyRing(keys.values())
