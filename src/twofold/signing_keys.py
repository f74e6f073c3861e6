"""The server's signing keys: kept sealed in the store, loaded into a ``KeyRing``, rotated.

A key is ``active`` (signs; the newest active one signs new tokens), ``verify`` (kept
only to verify tokens it signed until ``retire_after``, when the last of them has
expired) or ``retired`` (never loaded again). A normal rotation moves the old key to
``verify``; a rotation for a compromised key retires it at once, so its tokens are refused
on the next request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from twofold.clock import Clock
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import Algorithm, JoseKey
from twofold.masterkey import KeySealer
from twofold.store.base import KeyStore
from twofold.store.records import StoredKey

log = logging.getLogger("twofold.keys")


@dataclass(frozen=True, slots=True)
class Rotation:
    kid: str
    alg: str
    previous: tuple[str, ...]
    compromised: bool


class SigningKeys:
    """Loads and rotates keys. ``retain`` is how long an old key must still verify: the
    longest access-token lifetime plus the verification leeway."""

    def __init__(
        self,
        store: KeyStore,
        sealer: KeySealer,
        algorithm: Algorithm,
        clock: Clock,
        *,
        retain: float,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self.algorithm = algorithm
        self._clock = clock
        self._retain = retain
        #: The kid of the key :meth:`load` made on a store that had none, if it did.
        self.created_at_start: str | None = None

    async def load(self) -> KeyRing:
        """Every usable key, signing with the newest active one; a first start makes one.

        Key objects are built here, once: verifying a token never parses key text.
        """
        stored = await self.usable()
        if not any(key.state == "active" for key in stored):
            # Instances starting together on a new store may each make one; the runtime
            # announces it (a ``key`` entry), so that all reload and sign with the newest.
            self.created_at_start = (await self._create(self.algorithm)).kid
            stored = await self.usable()
        keys = [
            JoseKey.from_material(
                key.kid, _algorithm(key.alg), self._sealer.open(key.material, key.kid)
            )
            for key in stored
        ]
        active = [key for key in stored if key.state == "active"][-1]
        if active.alg != self.algorithm:
            log.warning(
                "signing_algorithm differs from the active key; keeping the key",
                extra={"configured": self.algorithm, "active": active.alg, "kid": active.kid},
            )
        return KeyRing(keys, signing_kid=active.kid)

    async def usable(self) -> list[StoredKey]:
        """Keys that still verify (oldest first); those past ``retire_after`` are excluded
        even before :meth:`retire_due` has marked them."""
        now = self._clock.now()
        return [
            key
            for key in await self._store.list_keys()
            if key.state == "active"
            or (key.state == "verify" and (key.retire_after is None or key.retire_after > now))
        ]

    async def all(self) -> list[StoredKey]:
        return await self._store.list_keys()

    async def rotate(
        self, *, compromised: bool = False, algorithm: Algorithm | None = None
    ) -> Rotation:
        """A new active key. The previous active keys verify until their tokens expire;
        when ``compromised``, every previous key (active or still verifying: one leak
        exposes them all) is retired at once and its tokens are refused."""
        stored = await self._store.list_keys()
        new = await self._create(algorithm or self.algorithm)
        retire_after = self._clock.now() + self._retain
        previous = [key for key in stored if key.state == "active"]
        if compromised:
            previous += [key for key in stored if key.state == "verify"]
        for key in previous:
            if compromised:
                await self._store.set_key_state(key.kid, "retired", None)
            else:
                await self._store.set_key_state(key.kid, "verify", retire_after)
        return Rotation(
            kid=new.kid,
            alg=new.alg,
            previous=tuple(key.kid for key in previous),
            compromised=compromised,
        )

    async def retire_due(self) -> list[str]:
        """Mark retired every verification key whose tokens have all expired."""
        now = self._clock.now()
        due = [
            key.kid
            for key in await self._store.list_keys()
            if key.state == "verify" and key.retire_after is not None and key.retire_after <= now
        ]
        for kid in due:
            await self._store.set_key_state(kid, "retired", None)
        return due

    async def _create(self, algorithm: Algorithm) -> StoredKey:
        key = JoseKey.generate(algorithm)
        record = StoredKey(
            kid=key.kid,
            alg=key.alg,
            material=self._sealer.seal(key.to_material(), key.kid),
            created_at=self._clock.now(),
            state="active",
        )
        await self._store.add_key(record)
        return record


def _algorithm(name: str) -> Algorithm:
    if name not in ("HS256", "ES256", "EdDSA", "RS256"):
        raise ValueError(f"unknown algorithm in the key store: {name}")
    return name  # type: ignore[return-value]
