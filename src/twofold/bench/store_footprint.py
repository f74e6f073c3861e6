"""What one stored session costs each store: disk for SQLite and PostgreSQL, memory for Redis.

Each figure is a difference divided by a count: the store's size before and after ``N``
sessions made through the real code (``SessionManager.create`` on the real store), with the
users they belong to stored beforehand, so everything a session adds is counted: its record,
its entries in the per-user, recency and expiry indexes, and for Redis its key's expiry.
The sessions carry what a browser login stores: an IPv4 address and a current desktop
Chrome ``User-Agent`` (111 characters). The users (ten sessions each) are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from twofold.bench.services import throwaway_postgres, throwaway_redis
from twofold.clock import SystemClock
from twofold.sessions import SessionManager, SessionPolicy
from twofold.store.base import Store
from twofold.store.factory import sqlite_path, store_from_url
from twofold.store.migrate import upgrade
from twofold.store.records import User

__all__ = ["TYPICAL_USER_AGENT", "SessionFootprint", "StoreName", "session_footprint"]

StoreName = Literal["SQLite", "PostgreSQL", "Redis"]

TYPICAL_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
TYPICAL_ADDRESS = "203.0.113.7"
SESSIONS_PER_USER = 10
_WRITERS = 16
# An Argon2id hash of the default profile's length: users are stored as they would be.
_PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$" + "c2FsdHNhbHRzYWx0c2FsdA" + "$" + "h" * 43


@dataclass(frozen=True)
class SessionFootprint:
    """Bytes one session occupies in ``store``, and how that was measured."""

    store: StoreName
    #: "disk" (SQLite, PostgreSQL) or "memory" (Redis).
    kind: Literal["disk", "memory"]
    sessions: int
    bytes_per_session: float
    #: The method and the raw figures behind ``bytes_per_session``.
    detail: str


def session_footprint(store: StoreName, url: str | None = None, *, quick: bool) -> SessionFootprint:
    """Measure ``store`` at ``url`` (SQLite: always a private file; PostgreSQL and Redis: a
    throwaway server when ``url`` is None). ``Unavailable`` when no server can be had. The
    sessions made are deleted again; their users stay (there is no store call to delete
    a user), under ids of their own."""
    count = 2_000 if quick else 10_000
    if store == "SQLite":
        return _sqlite(count)
    if store == "PostgreSQL":
        with _server_url(url, throwaway_postgres) as found:
            return _postgres(found, count)
    with _server_url(url, throwaway_redis) as found:
        return _redis(found, count)


@contextlib.contextmanager
def _server_url(
    url: str | None, throwaway: Callable[[], contextlib.AbstractContextManager[str]]
) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with throwaway() as started:
        yield started


# -- the sessions ----------------------------------------------------------------------


async def _add_users(store: Store, count: int) -> list[str]:
    run = f"{time.time_ns():x}"[-8:]
    now = time.time()
    ids = [f"bench{run}{n:09d}" for n in range(max(1, count // SESSIONS_PER_USER))]
    for user_id in ids:
        await store.add_user(
            User(
                id=user_id,
                email=f"{user_id}@bench.example",
                password_hash=_PASSWORD_HASH,
                roles=("user",),
                created_at=now,
                password_changed_at=now,
            )
        )
    return ids


async def _add_sessions(store: Store, users: list[str], count: int) -> None:
    manager = SessionManager(store, SessionPolicy(), SystemClock())
    now = time.time()

    async def create(numbers: range) -> None:
        for n in numbers:
            await manager.create(
                users[n % len(users)],
                password_changed_at=now,
                client_address=TYPICAL_ADDRESS,
                user_agent=TYPICAL_USER_AGENT,
            )

    # Several at once, as logins come: a store that groups its writes (Redis's fsync per
    # event-loop turn) is filled in less time; what is stored is the same.
    await asyncio.gather(*(create(range(k, count, _WRITERS)) for k in range(_WRITERS)))


async def _measured(
    url: str,
    count: int,
    size: Callable[[], Awaitable[int]],
    inspect: Callable[[], Awaitable[str]] | None = None,
) -> tuple[int, int, str]:
    """The store's size (``size``) before and after ``count`` sessions, and what
    ``inspect`` notes about them before they are deleted again."""
    store = store_from_url(url)
    await store.open()
    try:
        users = await _add_users(store, count)
        before = await size()
        await _add_sessions(store, users, count)
        after = await size()
        noted = await inspect() if inspect is not None else ""
        for user_id in users:
            await store.delete_user_sessions(user_id)
        return before, after, noted
    finally:
        await store.close()


# -- SQLite ----------------------------------------------------------------------------


def _sqlite(count: int) -> SessionFootprint:
    with tempfile.TemporaryDirectory(prefix="twofold-footprint-") as directory:
        url = f"sqlite:///{Path(directory) / 'twofold.db'}"
        upgrade(url)
        path = sqlite_path(url)

        async def size() -> int:
            # A checkpoint first: then the file is the whole database (the WAL is empty).
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                page_size, pages, free = (
                    conn.execute(f"PRAGMA {name}").fetchone()[0]
                    for name in ("page_size", "page_count", "freelist_count")
                )
            return int(page_size) * (int(pages) - int(free))

        before, after, _ = asyncio.run(_measured(url, count, size))
    per = (after - before) / count
    return SessionFootprint(
        "SQLite",
        "disk",
        count,
        per,
        f"(used pages * page size) after a WAL checkpoint, before and after {count:,} "
        f"sessions: {before:,} → {after:,} bytes; table and its five indexes",
    )


# -- PostgreSQL ------------------------------------------------------------------------

_PG_SIZE = "SELECT pg_total_relation_size('sessions')"


def _postgres(url: str, count: int) -> SessionFootprint:
    import psycopg

    from twofold.store.postgres import conninfo_from_url

    upgrade(url)
    conninfo, _ = conninfo_from_url(url)

    async def size() -> int:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            cursor = await conn.execute(_PG_SIZE)
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    before, after, _ = asyncio.run(_measured(url, count, size))
    return SessionFootprint(
        "PostgreSQL",
        "disk",
        count,
        (after - before) / count,
        f"pg_total_relation_size('sessions') (heap, TOAST and every index) before and after "
        f"{count:,} sessions: {before:,} → {after:,} bytes",
    )


# -- Redis -----------------------------------------------------------------------------


def _redis(url: str, count: int) -> SessionFootprint:
    from redis.asyncio import Redis

    from twofold.store.redis_scripts import PREFIX

    async def measure() -> tuple[int, int, str]:
        client = Redis.from_url(url)

        async def size() -> int:
            # Less the clients' buffers: they hold requests in flight, not sessions.
            info = await client.info("memory")
            return int(info["used_memory"]) - int(info.get("mem_clients_normal", 0))

        async def inspect() -> str:
            notes = []
            async for key in client.scan_iter(match=f"{PREFIX}session:*", count=1000):
                usage = await client.memory_usage(key)
                encoding = _text(await client.object("encoding", key))
                notes.append(f"MEMORY USAGE of one session key: {usage} bytes ({encoding})")
                break
            for name in ("sessions:seen", "sessions:ends"):
                entries = await client.zcard(PREFIX + name)
                usage = await client.memory_usage(PREFIX + name)
                if entries and usage:
                    notes.append(f"{name}: {usage / entries:.0f} bytes per entry")
            return "; ".join(notes)

        try:
            return await _measured(url, count, size, inspect)
        finally:
            await client.aclose()

    before, after, noted = asyncio.run(measure())
    return SessionFootprint(
        "Redis",
        "memory",
        count,
        (after - before) / count,
        f"INFO used_memory less mem_clients_normal before and after {count:,} sessions: "
        f"{before:,} → {after:,} bytes (the record, its expiry, its per-user and global "
        f"index entries); {noted}",
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
