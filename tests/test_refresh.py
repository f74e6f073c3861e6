"""Refresh-token families on a real migrated SQLite store: token shape and storage,
rotation, reuse detection and its grace window, races, expiry (SECURITY.md T6, T8)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path

import pytest

from twofold.clock import FrozenClock
from twofold.errors import InvalidGrant
from twofold.refresh import (
    IssuedRefresh,
    Outcome,
    RefreshPolicy,
    RefreshTokens,
    ReuseDetected,
    hash_token,
)
from twofold.store.migrate import upgrade
from twofold.store.records import User
from twofold.store.sqlite import SQLiteStore

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
USER_ID = "u-1"
GRACE = 5.0


async def open_store(path: Path) -> SQLiteStore:
    upgrade(f"sqlite:///{path}")
    store = SQLiteStore(path)
    await store.open()
    await store.add_user(
        User(
            id=USER_ID,
            email="ada@example.com",
            password_hash="x",
            roles=("user",),
            created_at=0.0,
            password_changed_at=0.0,
        )
    )
    return store


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    """The shared migrated database, holding the one user the families belong to."""
    store = await open_store(db_path)
    yield store
    await store.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


MakeTokens = Callable[..., RefreshTokens]


@pytest.fixture
def make_tokens(store: SQLiteStore, clock: FrozenClock) -> MakeTokens:
    def make(key: bytes = KEY, **policy: float) -> RefreshTokens:
        values = {"idle_timeout": 1000.0, "absolute_lifetime": 5000.0, "reuse_grace": GRACE}
        values.update(policy)
        return RefreshTokens(store, RefreshPolicy(**values), clock, key)

    return make


@pytest.fixture
def tokens(make_tokens: MakeTokens) -> RefreshTokens:
    return make_tokens()


async def start(tokens: RefreshTokens) -> IssuedRefresh:
    return await tokens.start_family(
        USER_ID, password_changed_at=0.0, client_address="198.51.100.7", user_agent="test"
    )


def rows(db_path: Path, table: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db_path)) as conn:
        return list(conn.execute(f"SELECT * FROM {table} ORDER BY 1"))  # noqa: S608


def snapshot(db_path: Path) -> tuple[list[tuple[object, ...]], ...]:
    return tuple(
        rows(db_path, table) for table in ("refresh_families", "refresh_tokens", "revocations")
    )


async def outcomes(calls: list[Awaitable[IssuedRefresh]]) -> list[IssuedRefresh | BaseException]:
    return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=20)


# -- shape and storage -----------------------------------------------------------------


async def test_token_is_tfr_prefix_and_256_bits_base64url(tokens: RefreshTokens) -> None:
    """A token is tfr_ plus 43 base64url characters (32 random bytes); tokens differ."""
    first, second = await start(tokens), await start(tokens)
    for issued in (first, second):
        assert issued.token.startswith("tfr_")
        assert len(issued.token) == 4 + 43
        raw = base64.urlsafe_b64decode(issued.token[4:] + "=")
        assert len(raw) == 32
        assert issued.outcome is Outcome.ROTATED
    assert first.token != second.token
    assert first.family.id != second.family.id


async def test_only_the_sha256_of_a_token_is_stored(tokens: RefreshTokens, db_path: Path) -> None:
    """The raw database holds SHA-256 of each token and never the token itself (T8, S1)."""
    issued = await start(tokens)
    successor = await tokens.rotate(issued.token)
    stored = rows(db_path, "refresh_tokens")
    assert len(stored) == 2
    assert {row[0] for row in stored} == {
        hashlib.sha256(issued.token.encode()).digest(),
        hash_token(successor.token),
    }
    with closing(sqlite3.connect(db_path)) as conn:
        dump = "\n".join(conn.iterdump())
    for token in (issued.token, successor.token):
        assert token not in dump
        assert token[4:] not in dump
        assert token.encode().hex() not in dump.lower()


# -- rotation and reuse ----------------------------------------------------------------


async def test_rotation_gives_a_new_token_and_spends_the_old(
    tokens: RefreshTokens, store: SQLiteStore, clock: FrozenClock
) -> None:
    """rotate returns a different token of the same family and marks the old one spent."""
    issued = await start(tokens)
    clock.advance(10)
    rotated = await tokens.rotate(issued.token)
    assert rotated.token != issued.token
    assert rotated.token.startswith("tfr_")
    assert len(rotated.token) == 47
    assert rotated.outcome is Outcome.ROTATED
    assert rotated.family.id == issued.family.id
    assert rotated.family.last_used_at == clock.now()
    old = await store.get_refresh_token(hash_token(issued.token))
    assert old is not None
    assert old.spent_at == clock.now()
    assert old.successor_hash == hash_token(rotated.token)
    new = await store.get_refresh_token(hash_token(rotated.token))
    assert new is not None
    assert new.spent_at is None
    family = await store.get_family(issued.family.id)
    assert family is not None
    assert family.last_used_at == clock.now()
    # The successor rotates in turn.
    assert (await tokens.rotate(rotated.token)).outcome is Outcome.ROTATED


async def test_reuse_after_grace_ends_the_family(
    tokens: RefreshTokens, store: SQLiteStore, clock: FrozenClock, db_path: Path
) -> None:
    """A spent token presented after the grace window raises ReuseDetected, deletes the
    family and every token in it; the newest token is refused afterwards."""
    issued = await start(tokens)
    rotated = await tokens.rotate(issued.token)
    clock.advance(GRACE + 0.001)
    with pytest.raises(ReuseDetected) as caught:
        await tokens.rotate(issued.token)
    assert caught.value.family.id == issued.family.id
    assert caught.value.family.user_id == USER_ID
    assert caught.value.code == "invalid_grant"
    assert await store.get_family(issued.family.id) is None
    assert rows(db_path, "refresh_tokens") == []
    with pytest.raises(InvalidGrant) as newest:
        await tokens.rotate(rotated.token)
    assert not isinstance(newest.value, ReuseDetected)
    assert await tokens.family_of(rotated.token) is None


async def test_duplicate_within_grace_gets_the_same_successor(
    tokens: RefreshTokens, store: SQLiteStore, clock: FrozenClock, db_path: Path
) -> None:
    """Within reuse_grace, while the successor is unspent, a duplicate is REPLAYED: the
    identical successor, no new row, the family lives on."""
    issued = await start(tokens)
    rotated = await tokens.rotate(issued.token)
    before = snapshot(db_path)
    clock.advance(GRACE)  # the window's edge is inside it
    replayed = await tokens.rotate(issued.token)
    assert replayed.outcome is Outcome.REPLAYED
    assert replayed.token == rotated.token
    assert replayed.family.id == issued.family.id
    assert tokens.access_jti(replayed) == tokens.access_jti(rotated)
    assert snapshot(db_path) == before
    assert await store.get_family(issued.family.id) is not None
    assert (await tokens.rotate(rotated.token)).outcome is Outcome.ROTATED


async def test_zero_grace_makes_any_second_use_reuse(
    make_tokens: MakeTokens, store: SQLiteStore
) -> None:
    """reuse_grace=0: the same token twice, at the very same instant, ends the family."""
    tokens = make_tokens(reuse_grace=0.0)
    issued = await start(tokens)
    rotated = await tokens.rotate(issued.token)
    with pytest.raises(ReuseDetected):
        await tokens.rotate(issued.token)
    assert await store.get_family(issued.family.id) is None
    with pytest.raises(InvalidGrant):
        await tokens.rotate(rotated.token)


async def test_replay_within_grace_after_successor_was_spent_is_reuse(
    tokens: RefreshTokens, store: SQLiteStore
) -> None:
    """t0 -> t1 -> t2, then t0 again within the grace window: t1 is no longer unspent, so
    this is theft, not a race; the family ends, t2 included."""
    first = await start(tokens)
    second = await tokens.rotate(first.token)
    third = await tokens.rotate(second.token)
    with pytest.raises(ReuseDetected):
        await tokens.rotate(first.token)
    assert await store.get_family(first.family.id) is None
    with pytest.raises(InvalidGrant):
        await tokens.rotate(third.token)


async def test_replaying_the_middle_token_within_grace_is_reuse_after_two_rotations(
    tokens: RefreshTokens, store: SQLiteStore
) -> None:
    """Within the grace window, the duplicate of the token just spent still gets its
    successor, but only while that successor is unspent."""
    first = await start(tokens)
    second = await tokens.rotate(first.token)
    third = await tokens.rotate(second.token)
    assert (await tokens.rotate(second.token)).token == third.token
    await tokens.rotate(third.token)
    with pytest.raises(ReuseDetected):
        await tokens.rotate(second.token)
    assert await store.get_family(first.family.id) is None


# -- races -----------------------------------------------------------------------------


async def test_fifty_concurrent_rotations_within_grace_share_one_successor(
    tokens: RefreshTokens, db_path: Path
) -> None:
    """50 concurrent rotations of one token: all succeed with the same successor, and
    exactly one new token row is stored (T8: one new pair)."""
    issued = await start(tokens)
    results = await outcomes([tokens.rotate(issued.token) for _ in range(50)])
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    successes = [r for r in results if isinstance(r, IssuedRefresh)]
    assert len({r.token for r in successes}) == 1
    assert sum(r.outcome is Outcome.ROTATED for r in successes) == 1
    assert sum(r.outcome is Outcome.REPLAYED for r in successes) == 49
    stored = rows(db_path, "refresh_tokens")
    assert len(stored) == 2
    assert {row[0] for row in stored} == {hash_token(issued.token), hash_token(successes[0].token)}
    # The shared successor is a working token.
    assert (await tokens.rotate(successes[0].token)).outcome is Outcome.ROTATED


async def test_fifty_concurrent_rotations_without_grace_give_at_most_one_pair(
    make_tokens: MakeTokens, store: SQLiteStore, db_path: Path
) -> None:
    """reuse_grace=0: of 50 racing rotations at most one succeeds, the rest are refused
    (reuse or invalid grant), and the family is dead, the winner's token included."""
    tokens = make_tokens(reuse_grace=0.0)
    issued = await start(tokens)
    results = await outcomes([tokens.rotate(issued.token) for _ in range(50)])
    successes = [r for r in results if isinstance(r, IssuedRefresh)]
    refused = [r for r in results if isinstance(r, InvalidGrant)]
    assert len(successes) <= 1
    assert len(successes) + len(refused) == 50
    assert any(isinstance(r, ReuseDetected) for r in refused)
    assert await store.get_family(issued.family.id) is None
    assert rows(db_path, "refresh_tokens") == []
    for winner in successes:
        with pytest.raises(InvalidGrant):
            await tokens.rotate(winner.token)


# -- expiry ----------------------------------------------------------------------------


async def test_idle_timeout_ends_the_family(
    make_tokens: MakeTokens, store: SQLiteStore, clock: FrozenClock
) -> None:
    """A family unused for idle_timeout is refused and deleted; each rotation restarts
    the idle clock."""
    tokens = make_tokens(idle_timeout=100.0, absolute_lifetime=1000.0)
    issued = await start(tokens)
    clock.advance(99)
    alive = await tokens.rotate(issued.token)
    assert alive.family.idle_expires_at == clock.now() + 100
    clock.advance(100)
    with pytest.raises(InvalidGrant) as caught:
        await tokens.rotate(alive.token)
    assert not isinstance(caught.value, ReuseDetected)
    assert await store.get_family(issued.family.id) is None


async def test_absolute_lifetime_ends_the_family_however_often_it_is_used(
    make_tokens: MakeTokens, store: SQLiteStore, clock: FrozenClock
) -> None:
    """Rotating every 50 s keeps the idle timer alive but not past absolute_lifetime; the
    idle expiry is capped at the absolute one."""
    tokens = make_tokens(idle_timeout=100.0, absolute_lifetime=300.0)
    issued = await start(tokens)
    absolute = issued.family.absolute_expires_at
    assert absolute == clock.now() + 300
    current = issued
    for _ in range(5):
        clock.advance(50)
        current = await tokens.rotate(current.token)
        assert current.family.idle_expires_at <= absolute
    assert current.family.idle_expires_at == absolute  # at t=250: min(350, 300)
    clock.advance(50)
    with pytest.raises(InvalidGrant):
        await tokens.rotate(current.token)
    assert await store.get_family(issued.family.id) is None


# -- malformed input and the key -------------------------------------------------------


MALFORMED = [
    "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln",
    "",
    "tfx_" + "A" * 43,
    "TFR_" + "A" * 43,
    "tfr_" + "A" * 42,
    "tfr_" + "A" * 44,
    "tfr_" + "A" * 42 + "=",
    "tfr_" + "A" * 42 + "é",
    "tfr_" + "\uff21" * 43,  # fullwidth A
    " tfr_" + "A" * 43,
    "tfr_" + "A" * 43 + "\n",
]


@pytest.mark.parametrize(
    "token",
    MALFORMED,
    ids=[
        "jwt",
        "empty",
        "wrong-prefix",
        "upper-prefix",
        "short",
        "long",
        "padding",
        "non-ascii-tail",
        "fullwidth",
        "leading-space",
        "trailing-newline",
    ],
)
async def test_malformed_token_is_invalid_grant_without_writes(
    tokens: RefreshTokens, db_path: Path, token: str
) -> None:
    """Anything not shaped like a refresh token is InvalidGrant and changes nothing."""
    await start(tokens)
    before = snapshot(db_path)
    with pytest.raises(InvalidGrant) as caught:
        await tokens.rotate(token)
    assert not isinstance(caught.value, ReuseDetected)
    assert await tokens.family_of(token) is None
    assert snapshot(db_path) == before


async def test_unknown_well_formed_token_is_invalid_grant(
    tokens: RefreshTokens, db_path: Path
) -> None:
    """A well-shaped token the server never issued is refused without writes."""
    await start(tokens)
    before = snapshot(db_path)
    with pytest.raises(InvalidGrant):
        await tokens.rotate("tfr_" + "A" * 43)
    assert snapshot(db_path) == before


async def test_successor_depends_on_the_key(
    tmp_path: Path, store: SQLiteStore, clock: FrozenClock
) -> None:
    """The successor is keyed: the same token rotated under another key gives another
    successor, and under the same key (another instance) the same one."""
    issued = await start(RefreshTokens(store, RefreshPolicy(), clock, KEY))
    first = await store.get_refresh_token(hash_token(issued.token))
    assert first is not None
    successors = []
    for name, key in (("same", KEY), ("other", OTHER_KEY)):
        # The same token planted in another store, served by an instance holding ``key``.
        planted = await open_store(tmp_path / f"{name}.db")
        try:
            await planted.create_family(issued.family, first)
            rotated = await RefreshTokens(planted, RefreshPolicy(), clock, key).rotate(issued.token)
        finally:
            await planted.close()
        successors.append(rotated.token)
    mine = await RefreshTokens(store, RefreshPolicy(), clock, KEY).rotate(issued.token)
    assert successors[0] == mine.token
    assert successors[1] != mine.token
    assert successors[1].startswith("tfr_")
    assert len(successors[1]) == 47
    # Nothing an outsider can compute from the token alone.
    unkeyed = base64.urlsafe_b64encode(hashlib.sha256(issued.token.encode()).digest())
    assert mine.token[4:] != unkeyed.rstrip(b"=").decode()


async def test_a_short_key_is_refused(store: SQLiteStore, clock: FrozenClock) -> None:
    """The successor key must be at least 256 bits."""
    with pytest.raises(ValueError, match="256 bits"):
        RefreshTokens(store, RefreshPolicy(), clock, b"k" * 31)
