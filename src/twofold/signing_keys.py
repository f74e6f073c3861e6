"""The server's signing keys: kept sealed in the store, loaded once into a ``KeyRing``."""

from __future__ import annotations

import logging

from twofold.clock import Clock
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import Algorithm, JoseKey
from twofold.masterkey import KeySealer
from twofold.store.base import KeyStore
from twofold.store.records import StoredKey

log = logging.getLogger("twofold.keys")


async def load_keyring(
    store: KeyStore, sealer: KeySealer, algorithm: Algorithm, clock: Clock
) -> KeyRing:
    """Every usable key, signing with the newest active one; a first start makes one.

    Key objects are built here, once: verifying a token never parses key text.
    """
    stored = [key for key in await store.list_keys() if key.state != "retired"]
    if not any(key.state == "active" for key in stored):
        await _create_key(store, sealer, algorithm, clock)
        stored = [key for key in await store.list_keys() if key.state != "retired"]
    keys = [
        JoseKey.from_material(key.kid, _algorithm(key.alg), sealer.open(key.material, key.kid))
        for key in stored
    ]
    active = [key for key in stored if key.state == "active"]
    if active[-1].alg != algorithm:
        log.warning(
            "signing_algorithm differs from the active key; keeping the key",
            extra={"configured": algorithm, "active": active[-1].alg, "kid": active[-1].kid},
        )
    return KeyRing(keys, signing_kid=active[-1].kid)


async def _create_key(
    store: KeyStore, sealer: KeySealer, algorithm: Algorithm, clock: Clock
) -> None:
    key = JoseKey.generate(algorithm)
    record = StoredKey(
        kid=key.kid,
        alg=key.alg,
        material=sealer.seal(key.to_material(), key.kid),
        created_at=clock.now(),
        state="active",
    )
    await store.add_key(record)


def _algorithm(name: str) -> Algorithm:
    if name not in ("HS256", "ES256", "EdDSA", "RS256"):
        raise ValueError(f"unknown algorithm in the key store: {name}")
    return name  # type: ignore[return-value]
