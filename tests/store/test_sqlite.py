"""SQLiteStore: the conformance suite, plus what only SQLite has (files, WAL, locking)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from twofold.errors import ConfigurationError, Conflict, StoreUnavailable
from twofold.store.sqlite import SQLiteStore

from .conformance import *  # noqa: F403
from .factories import (
    T0,
    add_family,
    add_scoped_token,
    add_user,
    make_audit,
    make_family,
    make_refresh_token,
    make_revocation,
    make_scoped_token,
    make_session,
)


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    """An opened store on a freshly migrated, empty database."""
    store = SQLiteStore(db_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain autocommit connection, to look behind the store's back."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def assert_no_transaction_left_open(path: Path) -> None:
    """Another connection takes the write lock at once: the store's writer holds none."""
    with raw(path) as conn:
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")


async def test_wal_mode_is_on(store: SQLiteStore) -> None:
    """The database runs in WAL mode, so reads on the loop never wait for the writer."""
    with raw(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_writer_commits_with_synchronous_full(store: SQLiteStore) -> None:
    """The writer fsyncs every commit (synchronous=FULL) and enforces foreign keys."""
    pragmas = await store._write(
        lambda c: (
            c.execute("PRAGMA synchronous").fetchone(),
            c.execute("PRAGMA foreign_keys").fetchone(),
        )
    )
    assert pragmas == ((2,), (1,))


async def test_session_of_unknown_user_is_refused(store: SQLiteStore) -> None:
    """A session must belong to an existing user; that is a bug, not a Conflict."""
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await store.put_session(make_session("ghost"))


async def test_deleting_a_user_deletes_their_sessions(store: SQLiteStore) -> None:
    """Sessions cascade with their user (SECURITY.md S7: deletion ends sessions)."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    with raw(store.path) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("DELETE FROM users WHERE id = ?", (user.id,))
    assert await store.get_session(record.id_hash) is None


async def test_deleting_a_user_deletes_their_families_and_tokens(store: SQLiteStore) -> None:
    """Refresh families and their tokens cascade with their user (S7 for JWT mode)."""
    user, other = await add_user(store), await add_user(store, 1)
    family, first = await add_family(store, user.id)
    successor = make_refresh_token(family.id, created_at=T0 + 1)
    assert await store.spend_refresh_token(first.hash, successor, T0 + 1, T0 + 100) is True
    kept, kept_first = await add_family(store, other.id)
    with raw(store.path) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("DELETE FROM users WHERE id = ?", (user.id,))
    assert await store.get_family(family.id) is None
    assert await store.get_refresh_token(first.hash) is None
    assert await store.get_refresh_token(successor.hash) is None
    assert await store.get_family(kept.id) == kept
    assert await store.get_refresh_token(kept_first.hash) == kept_first


async def test_deleting_a_user_deletes_their_scoped_tokens(store: SQLiteStore) -> None:
    """Scoped tokens cascade with their user; other users' tokens stay."""
    user, other = await add_user(store), await add_user(store, 1)
    mine = [await add_scoped_token(store, user.id, n) for n in range(2)]
    kept = await add_scoped_token(store, other.id)
    with raw(store.path) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("DELETE FROM users WHERE id = ?", (user.id,))
    for record in mine:
        assert await store.get_scoped_token(record.id) is None
    assert await store.list_scoped_tokens(user.id, T0) == []
    assert await store.get_scoped_token(kept.id) == kept


async def test_scoped_token_of_unknown_user_is_refused(store: SQLiteStore) -> None:
    """A scoped token must belong to an existing user; that is a bug, not a Conflict."""
    record = make_scoped_token("ghost")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await store.add_scoped_token(record)
    assert await store.get_scoped_token(record.id) is None


async def test_family_of_unknown_user_is_refused(store: SQLiteStore) -> None:
    """A family must belong to an existing user; nothing of it is stored."""
    family = make_family("ghost")
    first = make_refresh_token(family.id)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await store.create_family(family, first)
    assert await store.get_family(family.id) is None
    assert await store.get_refresh_token(first.hash) is None


async def test_failed_rotation_rolls_back_the_spend(store: SQLiteStore) -> None:
    """If the successor cannot be stored, the old token stays unspent (one transaction)."""
    user = await add_user(store)
    family, first = await add_family(store, user.id)
    _, other_first = await add_family(store, user.id, 1)
    clash = make_refresh_token(family.id, hash=other_first.hash, created_at=T0 + 1)
    with pytest.raises(sqlite3.IntegrityError):
        await store.spend_refresh_token(first.hash, clash, T0 + 1, T0 + 100)
    assert await store.get_refresh_token(first.hash) == first
    assert await store.get_family(family.id) == family
    assert await store.get_refresh_token(other_first.hash) == other_first
    # The writer connection is usable again: no transaction was left open.
    assert_no_transaction_left_open(store.path)
    good = make_refresh_token(family.id, created_at=T0 + 2)
    assert await store.spend_refresh_token(first.hash, good, T0 + 2, T0 + 200) is True


async def test_successor_of_another_family_is_refused(store: SQLiteStore) -> None:
    """A successor filed under a different family is a caller bug; nothing changes."""
    user = await add_user(store)
    _, first = await add_family(store, user.id)
    other, _ = await add_family(store, user.id, 1)
    stray = make_refresh_token(other.id, created_at=T0 + 1)
    with pytest.raises(ValueError, match="family"):
        await store.spend_refresh_token(first.hash, stray, T0 + 1, T0 + 100)
    assert await store.get_refresh_token(first.hash) == first
    assert await store.get_refresh_token(stray.hash) is None
    assert await store.get_family(other.id) == other


async def test_rotation_waits_for_a_foreign_write_lock(db_path: Path) -> None:
    """BEGIN IMMEDIATE waits (busy_timeout) for another process's lock, then fails closed."""
    store = SQLiteStore(db_path, busy_timeout_ms=200)
    await store.open()
    try:
        user = await add_user(store)
        family, first = await add_family(store, user.id)
        successor = make_refresh_token(family.id, created_at=T0 + 1)
        with raw(db_path) as intruder:
            intruder.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable):
                await store.spend_refresh_token(first.hash, successor, T0 + 1, T0 + 100)
            intruder.execute("ROLLBACK")
        assert_no_transaction_left_open(db_path)
        assert await store.spend_refresh_token(first.hash, successor, T0 + 1, T0 + 100) is True
    finally:
        await store.close()


async def test_failures_counted_by_two_processes_are_each_counted_once(db_path: Path) -> None:
    """Two stores on one file (two server processes, two writer connections) racing on
    one key still count 1..n between them: the upsert and the read of its count are one
    IMMEDIATE transaction, so no other writer comes in between, even when one store
    dawdles before reading the count back."""

    def dawdle(statement: str) -> None:
        if statement.startswith("SELECT failures"):
            time.sleep(0.01)

    first, second = SQLiteStore(db_path), SQLiteStore(db_path)
    await first.open()
    await second.open()
    try:
        await first._write(lambda conn: conn.set_trace_callback(dawdle))
        counts = await asyncio.gather(
            *((first, second)[n % 2].record_failure("account:race", T0, 900) for n in range(40))
        )
    finally:
        await first.close()
        await second.close()
    assert sorted(counts) == list(range(1, 41))


async def test_unknown_revocation_kind_is_refused(store: SQLiteStore) -> None:
    """The CHECK constraint keeps kinds to the four the stream knows."""
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        await store.append_revocation(make_revocation(kind="everything"))


async def test_malformed_stored_audit_detail_fails_closed(store: SQLiteStore) -> None:
    """A corrupt detail column raises StoreUnavailable rather than returning junk."""
    seq = await store.append_audit(make_audit(detail={"a": 1}))
    with raw(store.path) as conn:
        conn.execute("UPDATE audit_events SET detail = '[1, 2]' WHERE seq = ?", (seq,))
    with pytest.raises(StoreUnavailable):
        await store.list_audit()
    with raw(store.path) as conn:
        conn.execute("UPDATE audit_events SET detail = 'not json' WHERE seq = ?", (seq,))
    with pytest.raises(StoreUnavailable):
        await store.list_audit()


async def test_audit_detail_is_stored_as_compact_json(store: SQLiteStore) -> None:
    """detail is compact JSON text; NaN is refused before anything is written."""
    seq = await store.append_audit(make_audit(detail={"a": [1, "x"], "b": None}))
    with raw(store.path) as conn:
        stored = conn.execute("SELECT detail FROM audit_events WHERE seq = ?", (seq,)).fetchone()
    assert stored == ('{"a":[1,"x"],"b":null}',)
    with pytest.raises(ValueError, match="JSON"):
        await store.append_audit(make_audit(detail={"n": float("nan")}))
    assert len(await store.list_audit()) == 1


async def test_audit_seq_is_never_reused_after_deleting_the_newest(store: SQLiteStore) -> None:
    """Even with the newest row gone, the next event gets a new seq (AUTOINCREMENT)."""
    seq = await store.append_audit(make_audit())
    with raw(store.path) as conn:
        conn.execute("DELETE FROM audit_events")
    assert await store.append_audit(make_audit()) > seq


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    """What a closed store acknowledged is there when it reopens."""
    store = SQLiteStore(db_path)
    await store.open()
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    await store.close()
    await store.close()
    reopened = SQLiteStore(db_path)
    await reopened.open()
    try:
        assert await reopened.get_user(user.id) == user
        assert await reopened.get_session(record.id_hash) == record
    finally:
        await reopened.close()


async def test_closed_store_is_unavailable(db_path: Path) -> None:
    """A store that is not open raises StoreUnavailable, not a sqlite3 error."""
    store = SQLiteStore(db_path)
    with pytest.raises(StoreUnavailable):
        await store.get_session(b"x" * 32)
    await store.open()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.put_session(make_session("user-0"))
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    """open() on an empty database tells the operator to run the migrations."""
    path = tmp_path / "empty.db"
    with raw(path):
        pass
    with pytest.raises(ConfigurationError, match="twofold migrate"):
        await SQLiteStore(path).open()


async def test_database_at_unknown_revision_is_refused(db_path: Path) -> None:
    """open() refuses a schema revision this code does not know."""
    with raw(db_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(ConfigurationError, match="9999_future"):
        await SQLiteStore(db_path).open()


@pytest.mark.parametrize("where", ["missing.db", "no/such/dir/twofold.db"], ids=["file", "dir"])
async def test_missing_database_is_refused_and_not_created(tmp_path: Path, where: str) -> None:
    """open() on a missing file or directory raises ConfigurationError and creates nothing."""
    path = tmp_path / where
    with pytest.raises(ConfigurationError, match="twofold migrate"):
        await SQLiteStore(path).open()
    assert not path.exists()


async def test_unreadable_database_is_unavailable(tmp_path: Path) -> None:
    """A path that is a directory, or a file that is not a database, fails closed."""
    with pytest.raises(StoreUnavailable):
        await SQLiteStore(tmp_path).open()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 200)
    with pytest.raises(StoreUnavailable):
        await SQLiteStore(garbage).open()


@pytest.fixture
def read_only_db(tmp_path: Path, db_path: Path) -> Iterator[Path]:
    """A migrated database in a directory nobody may write to (WAL needs its -shm file)."""
    tmp_path.chmod(0o555)
    try:
        yield db_path
    finally:
        tmp_path.chmod(0o755)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_read_only_directory_is_unavailable(read_only_db: Path) -> None:
    """A database in a directory it cannot write to fails with StoreUnavailable."""
    with pytest.raises(StoreUnavailable):
        await SQLiteStore(read_only_db).open()


async def test_locked_writer_fails_closed_and_recovers(db_path: Path) -> None:
    """Writes locked past busy_timeout raise StoreUnavailable; reads go on; writes resume."""
    store = SQLiteStore(db_path, busy_timeout_ms=50)
    await store.open()
    try:
        user = await add_user(store)
        record = make_session(user.id)
        await store.put_session(record)
        with raw(db_path) as intruder:
            intruder.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable, match="locked"):
                await store.put_session(make_session(user.id))
            assert await store.get_session(record.id_hash) == record
            intruder.execute("ROLLBACK")
        await store.put_session(make_session(user.id))
        await store.ping()
    finally:
        await store.close()


async def test_waiting_writer_does_not_block_the_loop(db_path: Path) -> None:
    """While a write waits on a lock, the event loop keeps serving reads."""
    store = SQLiteStore(db_path, busy_timeout_ms=400)
    await store.open()
    try:
        user = await add_user(store)
        with raw(db_path) as intruder:
            intruder.execute("BEGIN IMMEDIATE")
            write = asyncio.create_task(store.put_session(make_session(user.id)))
            reads = 0
            while not write.done():
                assert await store.get_user(user.id) == user
                reads += 1
                await asyncio.sleep(0.005)
            intruder.execute("ROLLBACK")
        with pytest.raises(StoreUnavailable):
            await write
        assert reads >= 10
    finally:
        await store.close()


async def test_conflict_is_not_a_bare_sqlite_error(store: SQLiteStore) -> None:
    """A unique violation surfaces as Conflict, chained to the sqlite3 error for debugging."""
    user = await add_user(store)
    with pytest.raises(Conflict) as caught:
        await add_user(store, 1, email=user.email)
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)


async def test_malformed_stored_roles_fail_closed(store: SQLiteStore) -> None:
    """A corrupt roles column raises StoreUnavailable instead of granting anything."""
    user = await add_user(store)
    with raw(store.path) as conn:
        conn.execute("UPDATE users SET roles = '{\"admin\": true}' WHERE id = ?", (user.id,))
    with pytest.raises(StoreUnavailable):
        await store.get_user(user.id)


async def test_malformed_stored_scopes_fail_closed(store: SQLiteStore) -> None:
    """A corrupt scopes column raises StoreUnavailable instead of granting anything."""
    user = await add_user(store)
    record = await add_scoped_token(store, user.id)
    with raw(store.path) as conn:
        conn.execute("UPDATE scoped_tokens SET scopes = '\"admin\"' WHERE id = ?", (record.id,))
    with pytest.raises(StoreUnavailable):
        await store.get_scoped_token(record.id)
    with pytest.raises(StoreUnavailable):
        await store.list_scoped_tokens(user.id, T0)
