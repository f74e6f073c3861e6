"""The SQLite writer's group commit: writes queued together share one COMMIT, each stays
atomic on its own, and none is acknowledged before that COMMIT has returned."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from twofold.errors import Conflict, StoreUnavailable
from twofold.store.sqlite import SQLiteStore
from twofold.store.sqlite_writer import MAX_BATCH

from .factories import T0, add_family, add_user, make_refresh_token, make_session, make_user


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(db_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection of its own: it sees only what has been committed."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def user_ids(path: Path) -> set[str]:
    with raw(path) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM users")}


@asynccontextmanager
async def writer_held(
    store: SQLiteStore, trace: Callable[[str], None] | None = None
) -> AsyncIterator[list[str]]:
    """Keep the writer busy in a batch of its own until the block ends, so every write
    started inside the block is queued by then and they form the next batches. Yields
    the statements the writer runs from then on (its trace)."""
    statements: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def traced(statement: str) -> None:
        statements.append(statement)
        if trace is not None:
            trace(statement)

    def hold(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(traced)
        entered.set()
        release.wait(10)

    holding = asyncio.create_task(store._write(hold))
    assert await asyncio.to_thread(entered.wait, 10)
    try:
        yield statements
        await asyncio.sleep(0.05)  # the writes started in the block queue their jobs
    finally:
        release.set()
        await holding


def started(*coroutines: Any) -> list[asyncio.Task[Any]]:
    return [asyncio.create_task(coroutine) for coroutine in coroutines]


async def outcomes(tasks: list[asyncio.Task[Any]]) -> list[Any]:
    return list(await asyncio.gather(*tasks, return_exceptions=True))


@pytest.mark.parametrize("count", [40, 2 * MAX_BATCH + 5], ids=["one-batch", "bounded"])
async def test_queued_writes_share_commits_and_survive_reopen(db_path: Path, count: int) -> None:
    """Writes queued while the writer is busy commit together, at most MAX_BATCH to a
    COMMIT, and every one acknowledged is there after the store reopens."""
    store = SQLiteStore(db_path)
    await store.open()
    try:
        async with writer_held(store) as statements:
            tasks = started(*(store.add_user(make_user(n)) for n in range(count)))
        assert await outcomes(tasks) == [None] * count
    finally:
        await store.close()
    # The held job's own batch, then the queued writes in bounded batches.
    assert statements.count("COMMIT") == 1 + math.ceil(count / MAX_BATCH)
    assert user_ids(db_path) == {f"user-{n}" for n in range(count)}
    reopened = SQLiteStore(db_path)
    await reopened.open()
    try:
        for n in range(count):
            assert await reopened.get_user(f"user-{n}") == make_user(n)
    finally:
        await reopened.close()


async def test_a_failing_write_fails_alone_and_its_batch_mates_commit(
    store: SQLiteStore,
) -> None:
    """In one batch, a unique conflict, a rotation whose insert fails after its spend and
    a rotation refused after its spend each fail with their own error and leave nothing
    behind, while the writes around them commit."""
    owner = await add_user(store)
    family, first = await add_family(store, owner.id)
    _, other_first = await add_family(store, owner.id, 1)
    clash = make_refresh_token(family.id, hash=other_first.hash, created_at=T0 + 1)
    other_family, _ = await add_family(store, owner.id, 2)
    stray = make_refresh_token(other_family.id, created_at=T0 + 1)
    async with writer_held(store) as statements:
        tasks = started(
            store.add_user(make_user(1)),
            store.add_user(make_user(2, email=owner.email)),
            store.spend_refresh_token(first.hash, clash, T0 + 1, T0 + 100),
            store.add_user(make_user(3)),
            store.spend_refresh_token(first.hash, stray, T0 + 1, T0 + 100),
            store.add_user(make_user(4)),
        )
    added, conflict, clashed, added_too, refused, added_last = await outcomes(tasks)
    assert statements.count("COMMIT") == 2  # the held job's, then the six together
    assert (added, added_too, added_last) == (None, None, None)
    assert isinstance(conflict, Conflict)
    assert isinstance(clashed, sqlite3.IntegrityError)
    assert isinstance(refused, ValueError)
    assert user_ids(store.path) == {owner.id, "user-1", "user-3", "user-4"}
    # Both rotations' spends were undone with their savepoints: the token is unspent.
    assert await store.get_refresh_token(first.hash) == first
    assert await store.get_family(family.id) == family
    assert await store.get_refresh_token(stray.hash) is None
    successor = make_refresh_token(family.id, created_at=T0 + 2)
    assert await store.spend_refresh_token(first.hash, successor, T0 + 2, T0 + 200) is True


async def test_a_failed_commit_fails_every_write_of_the_batch(store: SQLiteStore) -> None:
    """A COMMIT refused by SQLite (a deferred foreign key left dangling) fails every job
    of its batch, keeps none of them, and the writer goes on afterwards."""
    owner = await add_user(store)

    def dangling(conn: sqlite3.Connection) -> None:
        # Checked at COMMIT, not at the INSERT: the job itself succeeds.
        conn.execute("PRAGMA defer_foreign_keys=ON")
        conn.execute(
            "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, "
            "idle_expires_at, absolute_expires_at, password_changed_at, roles_changed_at) "
            "VALUES (?, 'ghost', 0, 0, 1, 1, 0, 0)",
            (b"d" * 32,),
        )

    session = make_session(owner.id)
    async with writer_held(store):
        tasks = started(
            store.add_user(make_user(1)),
            store._write(dangling),
            store.put_session(session),
        )
    results = await outcomes(tasks)
    assert [type(result) for result in results] == [sqlite3.IntegrityError] * 3
    assert all("FOREIGN KEY" in str(result) for result in results)
    assert user_ids(store.path) == {owner.id}
    assert await store.get_session(session.id_hash) is None
    await store.add_user(make_user(5))
    await store.put_session(session)
    assert await store.get_session(session.id_hash) == session


@pytest.mark.parametrize("then_raise", [False, True], ids=["returns", "raises"])
@pytest.mark.parametrize("statement", ["ROLLBACK", "COMMIT", "RELEASE twofold_write_job"])
async def test_a_write_that_ends_the_transaction_fails_its_whole_batch(
    store: SQLiteStore, statement: str, then_raise: bool
) -> None:
    """A job that ends the writer's transaction (or drops its savepoint) is a bug: it gets
    a RuntimeError (or its own error), its batch-mates StoreUnavailable (their outcome is
    in doubt), never a success; the next batch runs normally."""

    def meddle(conn: sqlite3.Connection) -> None:
        conn.execute(statement)
        if then_raise:
            raise LookupError("after meddling")

    async with writer_held(store):
        tasks = started(
            store.add_user(make_user(1)),
            store._write(meddle),
            store.add_user(make_user(2)),
        )
    before, meddled, after = await outcomes(tasks)
    assert isinstance(meddled, LookupError if then_raise else RuntimeError)
    assert isinstance(before, StoreUnavailable)
    assert isinstance(after, StoreUnavailable)
    assert "user-2" not in user_ids(store.path)  # never run
    await store.add_user(make_user(3))
    assert "user-3" in user_ids(store.path)


async def test_a_write_that_begins_a_transaction_fails_alone(store: SQLiteStore) -> None:
    """BEGIN inside the writer's transaction is refused by SQLite; only that job fails."""
    async with writer_held(store):
        tasks = started(
            store.add_user(make_user(1)),
            store._write(lambda conn: conn.execute("BEGIN")),
            store.add_user(make_user(2)),
        )
    before, began, after = await outcomes(tasks)
    assert isinstance(began, StoreUnavailable)
    assert (before, after) == (None, None)
    assert user_ids(store.path) == {"user-1", "user-2"}


async def test_no_write_is_acknowledged_before_its_commit(store: SQLiteStore) -> None:
    """When a caller hears its write succeeded, another connection already sees it, even
    with the COMMIT slowed down: acknowledgements wait for the COMMIT to return."""

    def slow_commit(statement: str) -> None:
        if statement == "COMMIT":
            time.sleep(0.3)  # the event loop runs meanwhile

    async def add_and_look(n: int) -> bool:
        await store.add_user(make_user(n))
        return f"user-{n}" in user_ids(store.path)

    async with writer_held(store, slow_commit):
        tasks = started(*(add_and_look(n) for n in range(5)))
    assert await outcomes(tasks) == [True] * 5


async def test_ping_and_pragma_reads_ride_a_batch(store: SQLiteStore) -> None:
    """A read-only job (a health check, a PRAGMA read) runs in a batch with writes."""
    async with writer_held(store):
        tasks = started(
            store.ping(),
            store._write(lambda conn: conn.execute("PRAGMA synchronous").fetchone()),
            store.add_user(make_user(1)),
        )
    assert await outcomes(tasks) == [None, (2,), None]


async def test_close_finishes_queued_writes_first(db_path: Path) -> None:
    """close() lets every write queued before it commit; writes after it are refused."""
    store = SQLiteStore(db_path)
    await store.open()
    async with writer_held(store):
        tasks = started(*(store.add_user(make_user(n)) for n in range(10)))
        closing = asyncio.create_task(store.close())
        await asyncio.sleep(0.05)
        with pytest.raises(StoreUnavailable):
            await store.add_user(make_user(99))
    await closing
    assert await outcomes(tasks) == [None] * 10
    assert user_ids(db_path) == {f"user-{n}" for n in range(10)}


async def test_a_cancelled_write_not_yet_started_is_skipped(store: SQLiteStore) -> None:
    """A caller that gives up before its batch begins does not have its write made."""
    async with writer_held(store):
        tasks = started(store.add_user(make_user(1)), store.add_user(make_user(2)))
        await asyncio.sleep(0.05)
        tasks[0].cancel()
    cancelled, added = await outcomes(tasks)
    assert isinstance(cancelled, asyncio.CancelledError)
    assert added is None
    assert user_ids(store.path) == {"user-2"}
