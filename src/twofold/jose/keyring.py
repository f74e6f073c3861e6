"""The key ring: the fixed table of keys a server signs and verifies with (SECURITY.md T3).

Keys come only from configuration. A token's ``kid`` is used for nothing but a look-up in
this table, so it can never name a file, a URL or a command. During a rotation the ring holds
the new signing key and the old keys that tokens still in flight were signed with.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NoReturn

from twofold.errors import ConfigurationError
from twofold.jose.keys import JoseKey

__all__ = ["KeyRing"]


class KeyRing:
    """An immutable set of keys with unique kids and at most one active signing key.

    ``signing_kid`` names the key that signs new tokens; every key in the ring verifies.
    A ring without ``signing_kid`` is verify-only, as on a resource server.
    """

    __slots__ = ("_by_kid", "_keys", "_signing_key")

    _by_kid: dict[str, JoseKey]
    _keys: tuple[JoseKey, ...]
    _signing_key: JoseKey | None

    def __init__(self, keys: Iterable[JoseKey], *, signing_kid: str | None = None) -> None:
        ordered = tuple(keys)
        by_kid: dict[str, JoseKey] = {}
        for key in ordered:
            if not isinstance(key, JoseKey):
                raise ConfigurationError("A key ring holds JoseKey objects only.")
            if key.kid in by_kid:
                raise ConfigurationError(f"Duplicate kid in the key ring: {key.kid!r}.")
            by_kid[key.kid] = key
        signing_key = None
        if signing_kid is not None:
            signing_key = by_kid.get(signing_kid)
            if signing_key is None:
                raise ConfigurationError("The signing kid is not in the key ring.")
            if not signing_key.can_sign:
                raise ConfigurationError("The signing key has no private material.")
        object.__setattr__(self, "_keys", ordered)
        object.__setattr__(self, "_by_kid", by_kid)
        object.__setattr__(self, "_signing_key", signing_key)

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> KeyRing:
        """A verify-only ring from a published JWKS document (``{"keys": [...]}``)."""
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, list):
            raise ConfigurationError("A JWKS document needs a 'keys' list.")
        return cls(JoseKey.from_public_jwk(jwk) for jwk in keys)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("KeyRing is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("KeyRing is immutable")

    def __repr__(self) -> str:
        signing = self._signing_key.kid if self._signing_key else None
        return f"KeyRing(kids={list(self._by_kid)!r}, signing_kid={signing!r})"

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[JoseKey]:
        return iter(self._keys)

    @property
    def signing_key(self) -> JoseKey:
        """The active key that signs new tokens; ``ConfigurationError`` on a verify-only ring."""
        if self._signing_key is None:
            raise ConfigurationError("This key ring has no signing key.")
        return self._signing_key

    def get(self, kid: str) -> JoseKey | None:
        """The key with this kid, or None. Only ever a dictionary look-up (T3)."""
        return self._by_kid.get(kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set: asymmetric public keys only, never HMAC secrets (T10)."""
        published = []
        for key in self._keys:
            jwk = key.public_jwk()
            if jwk is not None:
                published.append(jwk)
        return {"keys": published}
