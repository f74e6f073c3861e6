"""Server-side sessions on the real SQLite store (SECURITY.md S1-S3, S6)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sqlite3
import string
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from twofold.clock import FrozenClock
from twofold.errors import NotAuthenticated, StoreUnavailable
from twofold.revocation import EVERYONE
from twofold.session_cache import SessionCache
from twofold.sessions import IssuedSession, SessionManager, SessionPolicy, hash_session_id
from twofold.store.records import Revocation, SessionRecord, User
from twofold.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0
IDLE = 30 * 60
ABSOLUTE = 2 * 60 * 60
TOUCH = 60
POLICY = SessionPolicy(idle_timeout=IDLE, absolute_lifetime=ABSOLUTE, touch_interval=TOUCH)
ALICE = "user-alice"
BOB = "user-bob"


class SpyStore:
    """Delegates to a real store and counts each primitive called."""

    def __init__(self, inner: SQLiteStore) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._inner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await method(*args, **kwargs)

        return counted


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SpyStore]:
    inner = SQLiteStore(db_path)
    await inner.open()
    for n, user_id in enumerate((ALICE, BOB)):
        await inner.add_user(
            User(
                id=user_id,
                email=f"{user_id}@example.com",
                password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
                roles=("user",),
                created_at=T0 + n,
                password_changed_at=T0 + n,
            )
        )
    spy = SpyStore(inner)
    yield spy
    await inner.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def sessions(store: SpyStore, clock: FrozenClock) -> SessionManager:
    return SessionManager(store, POLICY, clock)  # type: ignore[arg-type]


def session_rows(db_path: Path) -> list[tuple[Any, ...]]:
    """Every session row, read straight from the file."""
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute("SELECT * FROM sessions").fetchall()


async def new(sessions: SessionManager, user_id: str = ALICE, **kwargs: Any) -> str:
    kwargs.setdefault("client_address", "203.0.113.7")
    kwargs.setdefault("user_agent", "pytest")
    kwargs.setdefault("password_changed_at", 0.0)
    issued = await sessions.create(user_id, **kwargs)
    return issued.id


# -- ids (S1) ------------------------------------------------------------------------------


async def test_id_is_43_urlsafe_characters_of_256_bits(sessions: SessionManager) -> None:
    """An id is token_urlsafe(32): 43 URL-safe characters decoding to 32 bytes."""
    session_id = await new(sessions)
    assert len(session_id) == 43
    assert set(session_id) <= set(string.ascii_letters + string.digits + "-_")
    assert len(base64.urlsafe_b64decode(session_id + "=")) == 32


async def test_ids_are_unique(sessions: SessionManager, db_path: Path) -> None:
    """1000 sessions get 1000 different ids and 1000 stored records."""
    ids = {await new(sessions) for _ in range(1000)}
    assert len(ids) == 1000
    assert len(session_rows(db_path)) == 1000


async def test_store_holds_the_sha256_of_the_id_not_the_id(
    sessions: SessionManager, store: SpyStore, db_path: Path
) -> None:
    """The stored key is SHA-256(id); the id itself is nowhere in the database files."""
    issued = await sessions.create(
        ALICE, password_changed_at=0.0, client_address=None, user_agent=None
    )
    expected = hashlib.sha256(issued.id.encode("ascii")).digest()
    assert issued.record.id_hash == expected == hash_session_id(issued.id)
    assert [row[0] for row in session_rows(db_path)] == [expected]
    await store.close()  # flush the WAL so every byte is on disk
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert issued.id.encode("ascii") not in raw
    assert expected in raw


# -- strict mode (S2) ----------------------------------------------------------------------


async def test_session_resolve_unknown_id_does_not_create_record(
    sessions: SessionManager, store: SpyStore, db_path: Path
) -> None:
    """A well-formed id the server never issued is refused and nothing is created (S2)."""
    planted = "A" * 43
    with pytest.raises(NotAuthenticated):
        await sessions.resolve(planted)
    assert session_rows(db_path) == []
    assert store.calls["put_session"] == 0
    assert store.calls["touch_session"] == 0


async def test_ended_id_is_not_adopted_again(sessions: SessionManager, db_path: Path) -> None:
    """An id that was ended stays refused; resolving it does not bring it back."""
    session_id = await new(sessions)
    assert await sessions.end(session_id) is True
    with pytest.raises(NotAuthenticated):
        await sessions.resolve(session_id)
    assert session_rows(db_path) == []


@pytest.mark.parametrize(
    "session_id",
    [
        "",
        "A" * 42,
        "A" * 44,
        "A" * 42 + "=",
        "A" * 42 + "+",
        "A" * 42 + "/",
        "A" * 42 + "é",
        "A" * 42 + "\n",
        "A" * 21 + " " + "A" * 21,
        "A" * 10_240,
    ],
    ids=[
        "empty",
        "too-short",
        "too-long",
        "padding",
        "plus",
        "slash",
        "non-ascii",
        "newline",
        "space",
        "10-KiB",
    ],
)
async def test_malformed_id_is_refused_without_a_store_read(
    sessions: SessionManager, store: SpyStore, session_id: str
) -> None:
    """An id that cannot be ours is refused before the store is asked."""
    with pytest.raises(NotAuthenticated):
        await sessions.resolve(session_id)
    assert sum(store.calls.values()) == 0


async def test_not_authenticated_detail_does_not_echo_the_id(sessions: SessionManager) -> None:
    """The refusal's message never contains the presented id (S4)."""
    planted = "B" * 43
    with pytest.raises(NotAuthenticated) as caught:
        await sessions.resolve(planted)
    assert planted not in str(caught.value)
    assert planted not in caught.value.detail


# -- resolve and expiry (S6) ---------------------------------------------------------------


async def test_resolve_returns_the_record(sessions: SessionManager, clock: FrozenClock) -> None:
    """A live id resolves to its user's record with the issued timestamps."""
    issued = await sessions.create(
        ALICE, password_changed_at=0.0, client_address="203.0.113.7", user_agent="ua"
    )
    record, _ = await sessions.resolve(issued.id)
    assert record == issued.record
    assert record.user_id == ALICE
    assert record.created_at == record.last_seen_at == T0
    assert record.idle_expires_at == T0 + IDLE
    assert record.absolute_expires_at == T0 + ABSOLUTE
    assert (record.client_address, record.user_agent) == ("203.0.113.7", "ua")


async def test_user_agent_is_truncated(sessions: SessionManager) -> None:
    """An oversized User-Agent is cut to 512 characters before it is stored."""
    issued = await sessions.create(
        ALICE, password_changed_at=0.0, client_address=None, user_agent="x" * 5000
    )
    record, _ = await sessions.resolve(issued.id)
    assert record.user_agent == "x" * 512


@pytest.mark.parametrize(
    ("elapsed", "alive"),
    [(IDLE - 1, True), (IDLE, False), (IDLE + 1, False)],
    ids=["just-before", "exactly-at", "after"],
)
async def test_idle_expiry(
    sessions: SessionManager,
    clock: FrozenClock,
    db_path: Path,
    elapsed: int,
    alive: bool,
) -> None:
    """A session unused for idle_timeout is refused and its record deleted."""
    session_id = await new(sessions)
    clock.advance(elapsed)
    if alive:
        await sessions.resolve(session_id)
        assert len(session_rows(db_path)) == 1
    else:
        with pytest.raises(NotAuthenticated):
            await sessions.resolve(session_id)
        assert session_rows(db_path) == []


async def test_absolute_expiry_holds_under_constant_activity(
    sessions: SessionManager, clock: FrozenClock, db_path: Path
) -> None:
    """Using a session every minute never extends it past absolute_lifetime."""
    session_id = await new(sessions)
    while clock.now() + TOUCH < T0 + ABSOLUTE:
        clock.advance(TOUCH)
        record, _ = await sessions.resolve(session_id)
        assert record.idle_expires_at <= T0 + ABSOLUTE
    clock.advance(TOUCH)
    assert clock.now() >= T0 + ABSOLUTE
    with pytest.raises(NotAuthenticated):
        await sessions.resolve(session_id)
    assert session_rows(db_path) == []


async def test_resolve_within_touch_interval_does_not_write(
    sessions: SessionManager, store: SpyStore, clock: FrozenClock
) -> None:
    """Requests closer together than touch_interval cost no store write."""
    issued = await sessions.create(
        ALICE, password_changed_at=0.0, client_address=None, user_agent=None
    )
    for _ in range(3):
        clock.advance(TOUCH / 4)
        record, _ = await sessions.resolve(issued.id)
        assert record.last_seen_at == T0
    assert store.calls["touch_session"] == 0
    stored = await store.get_session(issued.record.id_hash)
    assert stored is not None
    assert stored.last_seen_at == T0
    assert stored.idle_expires_at == T0 + IDLE


async def test_resolve_after_touch_interval_slides_the_idle_expiry(
    sessions: SessionManager, store: SpyStore, clock: FrozenClock
) -> None:
    """A request touch_interval or more after the last write moves last_seen and idle expiry."""
    issued = await sessions.create(
        ALICE, password_changed_at=0.0, client_address=None, user_agent=None
    )
    clock.advance(TOUCH)
    record, _ = await sessions.resolve(issued.id)
    now = T0 + TOUCH
    assert (record.last_seen_at, record.idle_expires_at) == (now, now + IDLE)
    assert store.calls["touch_session"] == 1
    stored = await store.get_session(issued.record.id_hash)
    assert stored is not None
    assert (stored.last_seen_at, stored.idle_expires_at) == (now, now + IDLE)


async def test_activity_keeps_a_session_alive_past_the_first_idle_deadline(
    sessions: SessionManager, clock: FrozenClock
) -> None:
    """Sliding works: regular use keeps the session past idle_timeout from creation."""
    session_id = await new(sessions)
    for _ in range(3):
        clock.advance(IDLE - TOUCH)
        await sessions.resolve(session_id)
    assert clock.now() > T0 + IDLE
    await sessions.resolve(session_id)


@pytest.mark.parametrize(
    "policy",
    [
        SessionPolicy(idle_timeout=3600, absolute_lifetime=600, touch_interval=60),
        SessionPolicy(idle_timeout=1800, absolute_lifetime=3600, touch_interval=60),
    ],
    ids=["absolute-shorter-than-idle", "idle-reaches-absolute"],
)
async def test_idle_expiry_never_exceeds_absolute_expiry(
    store: SpyStore, clock: FrozenClock, policy: SessionPolicy
) -> None:
    """Neither creation nor sliding sets idle_expires_at beyond absolute_expires_at."""
    sessions = SessionManager(store, policy, clock)  # type: ignore[arg-type]
    issued = await sessions.create(
        ALICE, password_changed_at=0.0, client_address=None, user_agent=None
    )
    assert issued.record.idle_expires_at <= issued.record.absolute_expires_at
    while clock.now() + policy.touch_interval < issued.record.absolute_expires_at:
        clock.advance(policy.touch_interval)
        record, _ = await sessions.resolve(issued.id)
        assert record.idle_expires_at <= record.absolute_expires_at
        stored = await store.get_session(issued.record.id_hash)
        assert stored is not None
        assert stored.idle_expires_at <= stored.absolute_expires_at


# -- fixation and rotation (S3) ------------------------------------------------------------


async def test_create_replacing_ends_the_old_id(sessions: SessionManager, db_path: Path) -> None:
    """Logging in with an existing id ends it; only the new id works (no fixation)."""
    old = await new(sessions)
    fresh = await new(sessions, replacing=old)
    assert fresh != old
    with pytest.raises(NotAuthenticated):
        await sessions.resolve(old)
    assert (await sessions.resolve(fresh))[0].user_id == ALICE
    assert [row[0] for row in session_rows(db_path)] == [hash_session_id(fresh)]


async def test_create_replacing_an_unknown_or_malformed_id_is_harmless(
    sessions: SessionManager,
) -> None:
    """A planted id that never existed is simply not adopted."""
    for planted in ("C" * 43, "garbage"):
        fresh = await new(sessions, replacing=planted)
        assert fresh != planted
        assert (await sessions.resolve(fresh))[0].user_id == ALICE
        with pytest.raises(NotAuthenticated):
            await sessions.resolve("C" * 43)


async def test_rotate_kills_the_old_id_and_keeps_the_login_deadline(
    sessions: SessionManager, clock: FrozenClock, db_path: Path
) -> None:
    """Rotation gives a new id, keeps created_at and the absolute expiry, and ends the old id."""
    issued = await sessions.create(
        ALICE, password_changed_at=0.0, client_address="203.0.113.7", user_agent="ua"
    )
    clock.advance(600)
    record, _ = await sessions.resolve(issued.id)
    rotated = await sessions.rotate(issued.id, record)
    assert rotated.id != issued.id
    with pytest.raises(NotAuthenticated):
        await sessions.resolve(issued.id)
    fresh, _ = await sessions.resolve(rotated.id)
    assert fresh.created_at == T0
    assert fresh.absolute_expires_at == T0 + ABSOLUTE
    assert fresh.last_seen_at == T0 + 600
    assert fresh.idle_expires_at == T0 + 600 + IDLE
    assert (fresh.user_id, fresh.client_address, fresh.user_agent) == (ALICE, "203.0.113.7", "ua")
    assert len(session_rows(db_path)) == 1


async def test_rotated_session_still_dies_at_the_original_absolute_expiry(
    sessions: SessionManager, clock: FrozenClock
) -> None:
    """Rotating just before the deadline does not buy a new lifetime."""
    issued = await sessions.create(
        ALICE, password_changed_at=0.0, client_address=None, user_agent=None
    )
    while clock.now() + IDLE / 2 < T0 + ABSOLUTE - 10:
        clock.advance(IDLE / 2)
        await sessions.resolve(issued.id)
    clock.advance(T0 + ABSOLUTE - 10 - clock.now())
    record, _ = await sessions.resolve(issued.id)
    rotated = await sessions.rotate(issued.id, record)
    assert rotated.record.idle_expires_at <= T0 + ABSOLUTE
    clock.advance(10)
    with pytest.raises(NotAuthenticated):
        await sessions.resolve(rotated.id)


async def test_rotate_of_a_session_ended_meanwhile_issues_nothing(
    sessions: SessionManager, db_path: Path
) -> None:
    """A session ended after it was resolved cannot be revived by rotating it (S3, S7)."""
    session_id = await new(sessions)
    record, _ = await sessions.resolve(session_id)
    await sessions.end_all_for_user(ALICE)  # e.g. an admin locks the account
    with pytest.raises(NotAuthenticated):
        await sessions.rotate(session_id, record)
    assert session_rows(db_path) == []


# -- ending sessions (S7, S8) --------------------------------------------------------------


async def test_end(sessions: SessionManager) -> None:
    """end() kills one id, reports True once, then False."""
    session_id = await new(sessions)
    other = await new(sessions)
    assert await sessions.end(session_id) is True
    assert await sessions.end(session_id) is False
    with pytest.raises(NotAuthenticated):
        await sessions.resolve(session_id)
    await sessions.resolve(other)


async def test_end_of_a_malformed_id_touches_nothing(
    sessions: SessionManager, store: SpyStore
) -> None:
    """end() of an id that cannot be ours is False and does not reach the store."""
    assert await sessions.end("x" * 10_240) is False
    assert sum(store.calls.values()) == 0


async def test_end_all_for_user(sessions: SessionManager) -> None:
    """end_all_for_user ends every session of that user and no one else's."""
    alice = [await new(sessions, ALICE) for _ in range(3)]
    bob = await new(sessions, BOB)
    assert await sessions.end_all_for_user(ALICE) == 3
    for session_id in alice:
        with pytest.raises(NotAuthenticated):
            await sessions.resolve(session_id)
    assert (await sessions.resolve(bob))[0].user_id == BOB


async def test_end_all_for_user_keeps_the_current_session(sessions: SessionManager) -> None:
    """With keep=, the caller's own session survives (e.g. after a password change)."""
    current = await new(sessions, ALICE)
    others = [await new(sessions, ALICE) for _ in range(2)]
    assert await sessions.end_all_for_user(ALICE, keep=current) == 2
    assert (await sessions.resolve(current))[0].user_id == ALICE
    for session_id in others:
        with pytest.raises(NotAuthenticated):
            await sessions.resolve(session_id)


async def test_end_all_for_user_cannot_keep_another_users_session(
    sessions: SessionManager,
) -> None:
    """keep= names a session to spare, not a way to end a different user's sessions."""
    bob = await new(sessions, BOB)
    await new(sessions, ALICE)
    assert await sessions.end_all_for_user(ALICE, keep=bob) == 1
    assert (await sessions.resolve(bob))[0].user_id == BOB


async def test_list_for_user(sessions: SessionManager, clock: FrozenClock) -> None:
    """A user's sessions are listed newest first, and only theirs."""
    first = await sessions.create(
        ALICE, password_changed_at=0.0, client_address=None, user_agent=None
    )
    clock.advance(1)
    second = await sessions.create(
        ALICE, password_changed_at=0.0, client_address=None, user_agent=None
    )
    await new(sessions, BOB)
    listed: list[SessionRecord] = await sessions.list_for_user(ALICE)
    assert [r.id_hash for r in listed] == [second.record.id_hash, first.record.id_hash]


# -- what a request costs, the cache and its coherence --------------------------------------


async def test_a_request_costs_one_store_read_and_no_write(
    sessions: SessionManager, store: SpyStore, clock: FrozenClock
) -> None:
    """Within the touch interval a resolve is exactly one read (session and user
    together) and nothing else: the budget of C13 (one read, no write per request)."""
    issued = await login(sessions, ALICE)
    store.calls.clear()
    clock.advance(TOUCH / 2)
    record, user = await sessions.resolve(issued.id)
    assert (record.user_id, user.id) == (ALICE, ALICE)
    assert dict(store.calls) == {"get_session_and_user": 1}


class Announced:
    """Collects what a SessionManager announces, and feeds a cache as the stream would."""

    def __init__(self, cache: SessionCache | None = None) -> None:
        self.users: list[str] = []
        self.cache = cache

    async def __call__(self, user_id: str) -> None:
        self.users.append(user_id)
        if self.cache is not None:
            self.cache.invalidate([Revocation("session", user_id, T0, T0 + 1)])


class Following:
    """Stands in for Revoker.is_current."""

    def __init__(self) -> None:
        self.current = True

    def __call__(self) -> bool:
        return self.current


@pytest.fixture
def following() -> Following:
    return Following()


@pytest.fixture
def cache(following: Following) -> SessionCache:
    return SessionCache(ttl=30, is_current=following)


@pytest.fixture
def cached(store: SpyStore, clock: FrozenClock, cache: SessionCache) -> SessionManager:
    return SessionManager(
        store,  # type: ignore[arg-type]
        POLICY,
        clock,
        announce=Announced(cache),
        cache=cache,
    )


async def test_ending_sessions_is_announced_with_the_user_id(
    store: SpyStore, clock: FrozenClock
) -> None:
    """Every way a session ends or changes is announced on the stream (for the caches
    of every instance), naming the user, never the session."""
    announced = Announced()
    sessions = SessionManager(store, POLICY, clock, announce=announced)  # type: ignore[arg-type]
    one = await login(sessions, ALICE)
    await login(sessions, BOB)
    await sessions.end(one.id)
    await sessions.end_all_for_user(BOB)
    await sessions.end_everyone()
    renewable = await login(sessions, ALICE)
    assert await sessions.renew(renewable.record, roles_changed_at=T0 + 9, grace=5) is not None
    # Ends are announced before and after the delete; a renewal once, after.
    assert announced.users == [ALICE, ALICE, BOB, BOB, EVERYONE, EVERYONE, ALICE]


async def test_a_failed_announcement_leaves_the_session_for_the_retry(
    store: SpyStore, clock: FrozenClock
) -> None:
    """If the stream cannot be written, the logout fails before anything is deleted, so
    the client's retry finds the session and announces its end (a delete without an
    announcement would leave other instances' caches serving it)."""
    calls: list[str] = []

    async def flaky(user_id: str) -> None:
        calls.append(user_id)
        if len(calls) == 1:
            raise StoreUnavailable("down")

    sessions = SessionManager(store, POLICY, clock, announce=flaky)  # type: ignore[arg-type]
    issued = await login(sessions, ALICE)
    with pytest.raises(StoreUnavailable):
        await sessions.end(issued.id)
    assert await store.get_session(issued.record.id_hash) is not None
    assert await sessions.end(issued.id) is True
    assert calls == [ALICE, ALICE, ALICE]


async def test_a_cached_session_costs_no_store_read(
    cached: SessionManager, store: SpyStore, clock: FrozenClock
) -> None:
    """With the cache, the first request reads and the next ones read nothing."""
    issued = await login(cached, ALICE)
    await cached.resolve(issued.id)
    store.calls.clear()
    for _ in range(5):
        clock.advance(1)
        record, user = await cached.resolve(issued.id)
        assert (record.id_hash, user.id) == (issued.record.id_hash, ALICE)
    assert dict(store.calls) == {}


async def test_an_announcement_drops_the_users_cached_sessions(
    cached: SessionManager, store: SpyStore, cache: SessionCache
) -> None:
    """A logout anywhere (here: the stream entry) makes the next request read the store,
    which refuses the ended session; other users' sessions stay cached."""
    alice = await login(cached, ALICE)
    bob = await login(cached, BOB)
    await cached.resolve(alice.id)
    await cached.resolve(bob.id)
    # Another instance deletes Alice's session and announces it.
    await store.delete_session(alice.record.id_hash)
    cache.invalidate([Revocation("session", ALICE, T0, T0 + 1)])
    with pytest.raises(NotAuthenticated):
        await cached.resolve(alice.id)
    store.calls.clear()
    await cached.resolve(bob.id)
    assert dict(store.calls) == {}


@pytest.mark.parametrize("kind", ["user", "session"])
async def test_everyone_entries_clear_the_cache(cache: SessionCache, kind: str) -> None:
    """A global logout or cut (subject "*") drops every cached session."""
    user = User(ALICE, "a@example.com", "h", ("user",), T0, T0)
    for _ in range(3):
        record = SessionRecord(new_hash(), ALICE, T0, T0, T0 + 60, T0 + 60, None, None, T0)
        cache.put(record, user, cache.generation())
    assert len(cache) == 3
    cache.invalidate([Revocation(kind, EVERYONE, T0, T0 + 1)])  # type: ignore[arg-type]
    assert len(cache) == 0


async def test_a_lookup_racing_an_announcement_is_not_cached(
    cached: SessionManager,
    store: SpyStore,
    cache: SessionCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the stream says "Alice's sessions changed" while her session is being read, what
    was read may predate the change: it is served once but not cached."""
    issued = await login(cached, ALICE)
    inner_lookup = store.get_session_and_user

    async def racing(id_hash: bytes) -> Any:
        found = await inner_lookup(id_hash)
        cache.invalidate([Revocation("user", ALICE, T0, T0 + 1)])  # arrives mid-read
        return found

    monkeypatch.setattr(store, "get_session_and_user", racing, raising=False)
    await cached.resolve(issued.id)
    assert len(cache) == 0


async def test_the_cache_is_bypassed_when_the_stream_is_not_followed(
    cached: SessionManager, store: SpyStore, following: Following
) -> None:
    """An instance that cannot read the stream would miss invalidations: it reads the
    store (which then answers, or fails closed)."""
    issued = await login(cached, ALICE)
    await cached.resolve(issued.id)
    following.current = False
    store.calls.clear()
    await cached.resolve(issued.id)
    assert store.calls["get_session_and_user"] == 1


async def test_cached_entries_expire_after_the_ttl(store: SpyStore, clock: FrozenClock) -> None:
    """An entry is served at most ttl seconds (monotonic time), a bound on any gap."""
    cache = SessionCache(ttl=0.05, is_current=lambda: True)
    sessions = SessionManager(store, POLICY, clock, cache=cache)  # type: ignore[arg-type]
    issued = await login(sessions, ALICE)
    await sessions.resolve(issued.id)
    await asyncio.sleep(0.06)
    store.calls.clear()
    await sessions.resolve(issued.id)
    assert store.calls["get_session_and_user"] == 1


async def test_a_cached_session_that_looks_expired_is_read_again(
    cached: SessionManager, store: SpyStore, clock: FrozenClock
) -> None:
    """Another instance may have slid the idle expiry: a cached record past its idle
    deadline is re-read, and served if the store has it alive."""
    issued = await login(cached, ALICE)
    await cached.resolve(issued.id)
    clock.advance(IDLE + 1)
    slid = clock.now() + IDLE
    await store.touch_session(issued.record.id_hash, clock.now() - 1, slid)
    record, _ = await cached.resolve(issued.id)
    assert record.idle_expires_at == slid


async def test_the_cache_is_bounded(following: Following) -> None:
    """The least recently used entries go first once the cache is full."""
    cache = SessionCache(ttl=30, is_current=following, size=2)
    user = User(ALICE, "a@example.com", "h", ("user",), T0, T0)
    records = [
        SessionRecord(new_hash(), ALICE, T0, T0, T0 + 60, T0 + 60, None, None, T0) for _ in range(3)
    ]
    for record in records:
        cache.put(record, user, cache.generation())
    assert len(cache) == 2
    assert cache.get(records[0].id_hash) is None
    assert cache.get(records[2].id_hash) is not None


def new_hash() -> bytes:
    return hashlib.sha256(os.urandom(32)).digest()


async def login(sessions: SessionManager, user_id: str) -> IssuedSession:
    return await sessions.create(
        user_id, password_changed_at=0.0, client_address=None, user_agent=None
    )
