"""Access tokens already verified, remembered by their exact text.

A client sends the same access token on every request for its whole lifetime (five
minutes by default), and checking an ES256 signature costs more than everything else a
request to ``/auth/me`` does. So the server remembers the claims of a token it has
verified, keyed by the token's exact text and the audience it was checked for: a repeat
skips the signature and claim checks. API gateways do the same (Envoy's ``jwt_authn``
``jwt_cache_config``).

What stays per request, so that nothing a cache could hide is lost:

- expiry: a remembered token past ``exp`` (with the policy's leeway) is refused and
  forgotten, exactly as the full check would refuse it; ``iat``/``nbf`` in the future and
  the lifetime bound cannot turn from passing to failing as time goes on;
- revocation: the caller checks the revocation list on every request, hit or miss
  (:meth:`twofold.authority.Authority.token_principal`);
- keys: the memory is dropped whenever the codec's key ring is replaced (rotation, or a key
  withdrawn as compromised), so no token signed by a dropped key is accepted from it.

Only tokens that passed every check are remembered, so a forger cannot fill the memory;
it holds at most ``capacity`` tokens, the oldest forgotten first. The in-process
verification benchmark (``twofold.bench.verification``) times the codec itself, never
this memory.
"""

from __future__ import annotations

from twofold.clock import Clock
from twofold.errors import InvalidToken
from twofold.jose.jwt import AccessClaims, AccessTokenCodec
from twofold.jose.keyring import KeyRing

__all__ = ["VerifiedTokens"]


class VerifiedTokens:
    """:meth:`AccessTokenCodec.verify` with a bounded memory of the tokens it accepted."""

    __slots__ = ("_capacity", "_clock", "_codec", "_entries", "_keyring")

    def __init__(self, codec: AccessTokenCodec, clock: Clock, *, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be 0 (off) or more")
        self._codec = codec
        self._clock = clock
        self._capacity = capacity
        self._keyring: KeyRing = codec.keyring
        self._entries: dict[tuple[str, str | None], AccessClaims] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str, *, audience: str | None = None) -> AccessClaims:
        """The token's claims, as :meth:`AccessTokenCodec.verify` returns or raises them."""
        codec = self._codec
        if self._capacity == 0 or type(token) is not str:
            return codec.verify(token, audience=audience)
        entries = self._entries
        if codec.keyring is not self._keyring:
            entries.clear()
            self._keyring = codec.keyring
        key = (token, audience)
        claims = entries.get(key)
        if claims is None:
            claims = codec.verify(token, audience=audience)
            if len(entries) >= self._capacity:
                del entries[next(iter(entries))]
            entries[key] = claims
            return claims
        if claims.exp <= self._clock.now() - codec.policy.leeway:
            del entries[key]
            raise InvalidToken("expired")
        return claims
