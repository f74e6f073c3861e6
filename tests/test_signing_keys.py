"""Signing keys on a real migrated SQLite store with a frozen clock: creation, rotation,
retirement, and sealing at rest (T9, T10)."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import pytest

from twofold.clock import FrozenClock
from twofold.errors import ConfigurationError
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import Algorithm
from twofold.masterkey import KeySealer, MasterKey
from twofold.signing_keys import SigningKeys
from twofold.store.sqlite import SQLiteStore

RETAIN = 330.0  # an access-token lifetime of 300 s plus 30 s of leeway


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def sealer() -> KeySealer:
    return MasterKey(secrets.token_bytes(32)).sealer()


@pytest.fixture
def keys(store: SQLiteStore, sealer: KeySealer, clock: FrozenClock) -> SigningKeys:
    return SigningKeys(store, sealer, "ES256", clock, retain=RETAIN)


def kids(ring: KeyRing) -> set[str]:
    return {key.kid for key in ring}


async def states(keys: SigningKeys) -> dict[str, tuple[str, float | None]]:
    return {key.kid: (key.state, key.retire_after) for key in await keys.all()}


def stored_material(db_path: Path) -> dict[str, bytes]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT kid, material FROM signing_keys").fetchall()
    conn.close()
    return {kid: bytes(material) for kid, material in rows}


async def test_first_load_creates_one_active_key_and_later_loads_reuse_it(
    keys: SigningKeys,
) -> None:
    """An empty store gets one active key on the first load, and no more after."""
    ring = await keys.load()
    again = await keys.load()
    assert len(ring) == 1
    assert kids(again) == kids(ring) == {ring.signing_key.kid}
    assert await states(keys) == {ring.signing_key.kid: ("active", None)}


async def test_normal_rotation_keeps_the_old_key_verifying_until_retire_after(
    keys: SigningKeys, clock: FrozenClock
) -> None:
    """A normal rotation moves the old key to `verify` until now + retain: the new key
    signs, both verify."""
    old = (await keys.load()).signing_key.kid
    rotation = await keys.rotate()
    assert rotation.previous == (old,)
    assert rotation.compromised is False
    ring = await keys.load()
    assert ring.signing_key.kid == rotation.kid != old
    assert kids(ring) == {old, rotation.kid}
    assert await states(keys) == {
        old: ("verify", clock.now() + RETAIN),
        rotation.kid: ("active", None),
    }


async def test_retire_due_waits_for_retire_after(keys: SigningKeys, clock: FrozenClock) -> None:
    """retire_due leaves a verification key alone until retire_after, then retires it."""
    old = (await keys.load()).signing_key.kid
    new = (await keys.rotate()).kid
    clock.advance(RETAIN - 1)
    assert await keys.retire_due() == []
    assert (await states(keys))[old][0] == "verify"
    clock.advance(1)
    assert await keys.retire_due() == [old]
    assert await states(keys) == {old: ("retired", None), new: ("active", None)}
    assert await keys.retire_due() == []


async def test_retire_due_never_retires_the_active_key(
    keys: SigningKeys, clock: FrozenClock
) -> None:
    """However much time passes, the active key stays active."""
    active = (await keys.load()).signing_key.kid
    clock.advance(10 * 365 * 86_400)
    assert await keys.retire_due() == []
    assert await states(keys) == {active: ("active", None)}


async def test_load_excludes_keys_past_retire_after_before_they_are_marked(
    keys: SigningKeys, clock: FrozenClock
) -> None:
    """A verification key is dropped from the ring at retire_after even if retire_due has
    not run yet (maintenance runs only now and then)."""
    old = (await keys.load()).signing_key.kid
    new = (await keys.rotate()).kid
    clock.advance(RETAIN - 1)
    assert kids(await keys.load()) == {old, new}
    clock.advance(1)
    assert kids(await keys.load()) == {new}
    assert (await states(keys))[old][0] == "verify"


async def test_load_excludes_retired_keys(keys: SigningKeys, clock: FrozenClock) -> None:
    """Once retired, a key is never loaded again."""
    old = (await keys.load()).signing_key.kid
    new = (await keys.rotate()).kid
    clock.advance(RETAIN)
    await keys.retire_due()
    ring = await keys.load()
    assert kids(ring) == {new}
    assert ring.get(old) is None


async def test_compromised_rotation_retires_active_and_verify_keys(
    keys: SigningKeys,
) -> None:
    """A rotation for a compromised key retires every older key at once, including one
    still verifying from an earlier rotation: the ring holds only the new key."""
    first = (await keys.load()).signing_key.kid
    second = (await keys.rotate()).kid
    rotation = await keys.rotate(compromised=True)
    assert rotation.compromised is True
    assert set(rotation.previous) == {first, second}
    assert await states(keys) == {
        first: ("retired", None),
        second: ("retired", None),
        rotation.kid: ("active", None),
    }
    ring = await keys.load()
    assert kids(ring) == {rotation.kid}
    assert ring.signing_key.kid == rotation.kid


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "RS256", "HS256"])
async def test_material_is_sealed_in_the_database(
    store: SQLiteStore,
    sealer: KeySealer,
    clock: FrozenClock,
    db_path: Path,
    algorithm: Algorithm,
) -> None:
    """The stored material is not the plaintext (no PEM, no JWK text, not the raw secret);
    it opens only with this master key and under its own kid (T10)."""
    keys = SigningKeys(store, sealer, algorithm, clock, retain=RETAIN)
    ring = await keys.load()
    key = ring.signing_key
    plaintext = key.to_material()
    sealed = stored_material(db_path)[key.kid]
    assert plaintext not in sealed
    assert len(sealed) >= len(plaintext) + 12 + 16  # nonce and tag
    for marker in (b"-----BEGIN", b"PRIVATE KEY", b'"d"', b'"k"', b'"kty"'):
        assert marker not in sealed
    assert sealer.open(sealed, key.kid) == plaintext
    with pytest.raises(ConfigurationError):
        MasterKey(secrets.token_bytes(32)).sealer().open(sealed, key.kid)
    with pytest.raises(ConfigurationError):
        sealer.open(sealed, key.kid + "x")


async def test_a_rotation_seals_the_new_key_too(
    keys: SigningKeys, sealer: KeySealer, db_path: Path
) -> None:
    """Every stored key, not only the first, is sealed."""
    await keys.load()
    await keys.rotate()
    ring = await keys.load()
    sealed = stored_material(db_path)
    assert set(sealed) == kids(ring)
    for key in ring:
        assert key.to_material() not in sealed[key.kid]
        assert sealer.open(sealed[key.kid], key.kid) == key.to_material()
