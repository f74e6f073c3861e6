"""PostgresStore on a real server: the conformance suite, plus what only PostgreSQL has
(foreign keys and cascades across connections, error translation, outages, the pool,
NOTIFY between instances)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg import sql as pg_sql

from tests.services import Postgres, free_port
from twofold.errors import ConfigurationError, Conflict, StoreUnavailable
from twofold.store import postgres_statements
from twofold.store.factory import store_from_url
from twofold.store.migrate import upgrade
from twofold.store.postgres import PostgresStore, conninfo_from_url

from .conformance import *  # noqa: F403
from .factories import (
    T0,
    add_family,
    add_scoped_token,
    add_user,
    make_family,
    make_refresh_token,
    make_revocation,
    make_scoped_token,
    make_session,
)


@pytest.fixture(scope="session")
def pg_database(postgres_server: Postgres) -> str:
    """One database migrated to head for the whole run; ``pg_url`` empties it per test.

    These tests pin behaviour, not durability: commits do not wait for the disk
    (synchronous_commit=off), which takes one from ~3.5 ms to ~0.1 ms on a slow disk.
    Visibility and locking are the same either way.
    """
    url = postgres_server.create_database("twofold_store")
    postgres_server.psql("ALTER DATABASE twofold_store SET synchronous_commit = off")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def admin(pg_database: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """One autocommit connection to the run's database, for emptying it between tests."""
    with psycopg.connect(pg_database, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def emptying(admin: psycopg.Connection[tuple[object, ...]]) -> pg_sql.Composed:
    """DELETE from every table but the version table, in one round trip.

    Measured per test: ~0.4 ms, against ~18 ms for TRUNCATE and ~75 ms for a new database
    from a template plus its DROP. Sequences go on counting, which no test minds: they only
    compare seqs with each other.
    """
    tables = [
        row[0]
        for row in admin.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version' ORDER BY tablename"
        )
    ]
    return pg_sql.SQL("; ").join(
        pg_sql.SQL("DELETE FROM {}").format(pg_sql.Identifier(table)) for table in tables
    )


@pytest.fixture
def pg_url(
    pg_database: str, admin: psycopg.Connection[tuple[object, ...]], emptying: pg_sql.Composed
) -> str:
    """The run's database, emptied for this test."""
    admin.execute(emptying)
    return pg_database


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    """An opened store on the emptied database."""
    store = PostgresStore.from_url(pg_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def raw(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A plain autocommit connection, to look behind the store's back."""
    return psycopg.connect(url, autocommit=True)


# -- schema rules the server enforces ------------------------------------------------------


async def test_session_of_unknown_user_is_refused(store: PostgresStore) -> None:
    """A session must belong to an existing user; that is a bug, not a Conflict."""
    with pytest.raises(pg_errors.ForeignKeyViolation):
        await store.put_session(make_session("ghost"))


async def test_family_of_unknown_user_is_refused(store: PostgresStore) -> None:
    """A family must belong to an existing user; nothing of it is stored."""
    family = make_family("ghost")
    first = make_refresh_token(family.id)
    with pytest.raises(pg_errors.ForeignKeyViolation):
        await store.create_family(family, first)
    assert await store.get_family(family.id) is None
    assert await store.get_refresh_token(first.hash) is None


async def test_deleting_a_user_cascades_to_sessions_families_and_tokens(
    store: PostgresStore, pg_url: str
) -> None:
    """Sessions, families and their tokens go with their user (SECURITY.md S7)."""
    user, other = await add_user(store), await add_user(store, 1)
    record = make_session(user.id)
    await store.put_session(record)
    family, first = await add_family(store, user.id)
    successor = make_refresh_token(family.id, created_at=T0 + 1)
    assert await store.spend_refresh_token(first.hash, successor, T0 + 1, T0 + 100) is True
    kept, kept_first = await add_family(store, other.id)
    with raw(pg_url) as conn:
        conn.execute("DELETE FROM users WHERE id = %s", (user.id,))
    assert await store.get_session(record.id_hash) is None
    assert await store.get_family(family.id) is None
    assert await store.get_refresh_token(first.hash) is None
    assert await store.get_refresh_token(successor.hash) is None
    assert await store.get_family(kept.id) == kept
    assert await store.get_refresh_token(kept_first.hash) == kept_first


async def test_deleting_a_user_cascades_to_scoped_tokens(store: PostgresStore, pg_url: str) -> None:
    """Scoped tokens go with their user; other users' tokens stay."""
    user, other = await add_user(store), await add_user(store, 1)
    mine = [await add_scoped_token(store, user.id, n) for n in range(2)]
    kept = await add_scoped_token(store, other.id)
    with raw(pg_url) as conn:
        conn.execute("DELETE FROM users WHERE id = %s", (user.id,))
    for record in mine:
        assert await store.get_scoped_token(record.id) is None
    assert await store.list_scoped_tokens(user.id, T0) == []
    assert await store.get_scoped_token(kept.id) == kept


async def test_scoped_token_of_unknown_user_is_refused(store: PostgresStore) -> None:
    """A scoped token must belong to an existing user; that is a bug, not a Conflict."""
    record = make_scoped_token("ghost")
    with pytest.raises(pg_errors.ForeignKeyViolation):
        await store.add_scoped_token(record)
    assert await store.get_scoped_token(record.id) is None


async def test_failed_rotation_rolls_back_the_spend(store: PostgresStore) -> None:
    """If the successor cannot be stored, the old token stays unspent (one statement)."""
    user = await add_user(store)
    family, first = await add_family(store, user.id)
    _, other_first = await add_family(store, user.id, 1)
    clash = make_refresh_token(family.id, hash=other_first.hash, created_at=T0 + 1)
    with pytest.raises(pg_errors.UniqueViolation):
        await store.spend_refresh_token(first.hash, clash, T0 + 1, T0 + 100)
    assert await store.get_refresh_token(first.hash) == first
    assert await store.get_family(family.id) == family
    good = make_refresh_token(family.id, created_at=T0 + 2)
    assert await store.spend_refresh_token(first.hash, good, T0 + 2, T0 + 200) is True


async def test_successor_of_another_family_is_refused(store: PostgresStore) -> None:
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


async def test_unknown_revocation_kind_is_refused(store: PostgresStore) -> None:
    """The CHECK constraint keeps kinds to those the stream knows; the failed append
    leaves its connection usable."""
    with pytest.raises(pg_errors.CheckViolation):
        await store.append_revocation(make_revocation(kind="everything"))
    assert await store.revocations_after(0, T0) == []
    appended = await store.append_revocation(make_revocation(kind="session"))
    assert await store.revocations_after(0, T0) == [appended]


async def test_malformed_stored_roles_fail_closed(store: PostgresStore, pg_url: str) -> None:
    """A corrupt roles column raises StoreUnavailable instead of granting anything."""
    user = await add_user(store)
    with raw(pg_url) as conn:
        conn.execute("UPDATE users SET roles = '{\"admin\": true}' WHERE id = %s", (user.id,))
    with pytest.raises(StoreUnavailable):
        await store.get_user(user.id)


async def test_malformed_stored_scopes_fail_closed(store: PostgresStore, pg_url: str) -> None:
    """A corrupt scopes column raises StoreUnavailable instead of granting anything."""
    user = await add_user(store)
    record = await add_scoped_token(store, user.id)
    with raw(pg_url) as conn:
        conn.execute("UPDATE scoped_tokens SET scopes = '[1]' WHERE id = %s", (record.id,))
    with pytest.raises(StoreUnavailable):
        await store.get_scoped_token(record.id)
    with pytest.raises(StoreUnavailable):
        await store.list_scoped_tokens(user.id, T0)


async def test_concurrent_role_changes_all_move_the_epoch(store: PostgresStore) -> None:
    """Racing set_roles calls on one user each move the epoch a step (GREATEST under the
    row lock): none is lost, whatever the order they land in."""
    user = await add_user(store)
    await asyncio.gather(*(store.set_roles(user.id, (f"r{n}",), T0) for n in range(20)))
    fetched = await store.get_user(user.id)
    assert fetched is not None
    assert fetched.roles_changed_at == pytest.approx(user.roles_changed_at + 20 * 0.001)


# -- errors --------------------------------------------------------------------------------


async def test_conflict_is_chained_to_the_driver_error(store: PostgresStore) -> None:
    """A unique violation surfaces as Conflict, chained to psycopg's error for debugging."""
    user = await add_user(store)
    with pytest.raises(Conflict) as caught:
        await add_user(store, 1, email=user.email)
    assert isinstance(caught.value.__cause__, pg_errors.UniqueViolation)


async def test_unreachable_server_fails_promptly_without_secrets() -> None:
    """open() against a port nobody listens on raises StoreUnavailable at once, and its
    message names neither the password nor where the server was."""
    port = free_port()
    store = store_from_url(f"postgresql://twofold:s3cret@127.0.0.1:{port}/twofold")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await store.open()
    assert time.monotonic() - started < 2
    for secret in ("s3cret", str(port), "127.0.0.1", "twofold@"):
        assert secret not in str(caught.value)


async def test_statement_timeout_fails_closed(store: PostgresStore, pg_url: str) -> None:
    """A statement stuck behind a lock ends at the server's statement_timeout (5 s by
    default; 0.3 s here, set through the URL) as StoreUnavailable, and the store goes on."""
    user = await add_user(store)
    quick = PostgresStore.from_url(f"{pg_url}?options=-c%20statement_timeout%3D300")
    await quick.open()
    try:
        with raw(pg_url) as intruder, intruder.transaction():
            intruder.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user.id,))
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="time limit"):
                await quick.set_locked(user.id, True)
            assert time.monotonic() - started < 2
        assert await quick.set_locked(user.id, True) is True
    finally:
        await quick.close()


async def test_default_statement_timeout_is_five_seconds(store: PostgresStore) -> None:
    """Every pooled connection carries the server-side bound."""
    async with store._connection() as conn:
        cursor = await conn.execute("SHOW statement_timeout")
        assert await cursor.fetchone() == ("5s",)


async def test_closed_store_is_unavailable(pg_url: str) -> None:
    """A store that is not open raises StoreUnavailable, not a psycopg error."""
    store = PostgresStore.from_url(pg_url)
    with pytest.raises(StoreUnavailable):
        await store.get_session(b"x" * 32)
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ping()


def test_unmigrated_database_is_refused(postgres_server: Postgres) -> None:
    """open() on an empty database tells the operator to run the migrations."""
    url = postgres_server.create_database("twofold_empty")
    with pytest.raises(ConfigurationError, match="twofold migrate"):
        asyncio.run(PostgresStore.from_url(url).open())


def test_database_at_unknown_revision_is_refused(postgres_server: Postgres) -> None:
    """open() refuses a schema revision this code does not know."""
    url = postgres_server.create_database("twofold_future")
    postgres_server.psql(
        "CREATE TABLE alembic_version (version_num text); "
        "INSERT INTO alembic_version VALUES ('9999_future')",
        "twofold_future",
    )
    with pytest.raises(ConfigurationError, match="9999_future"):
        asyncio.run(PostgresStore.from_url(url).open())


# -- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheme", ["postgresql", "postgres", "postgresql+psycopg"], ids=["long", "short", "driver"]
)
def test_postgres_urls_select_the_store(scheme: str) -> None:
    """Each spelling of a PostgreSQL URL gives a PostgresStore, password and all."""
    store = store_from_url(f"{scheme}://u:p%40ss@db.example:6432/auth?sslmode=require")
    assert isinstance(store, PostgresStore)
    params = psycopg.conninfo.conninfo_to_dict(conninfo_from_url(f"{scheme}://u:p%40ss@h/d")[0])
    assert params["password"] == "p@ss"


def test_url_options_reach_libpq_and_the_pool() -> None:
    """Query options are libpq's, overriding the defaults; pool_max sizes the pool."""
    conninfo, pool_max = conninfo_from_url(
        "postgresql://u@h/d?connect_timeout=9&pool_max=3&options=-c%20work_mem%3D8MB"
    )
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    assert pool_max == 3
    assert params["connect_timeout"] == "9"
    assert params["options"] == "-c statement_timeout=5000 -c work_mem=8MB"
    assert params["application_name"] == "twofold"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:s3cret@h/d?no_such_option=1",
        "postgresql://u:s3cret@h/d?pool_max=0",
        "postgresql://u:s3cret@h/d?sslmode=a&sslmode=b",
        "postgresql+asyncpg://u:s3cret@h/d",
    ],
    ids=["unknown-option", "pool-max", "repeated", "other-driver"],
)
def test_bad_urls_are_refused_without_the_password(url: str) -> None:
    """A URL the store cannot use is a ConfigurationError that does not repeat it."""
    with pytest.raises(ConfigurationError) as caught:
        store_from_url(url)
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None or "s3cret" not in str(caught.value.__cause__)


# -- the pool ------------------------------------------------------------------------------


def flights(trace: str) -> list[list[str]]:
    """The client's messages in libpq's protocol trace, grouped by the round trip they
    start: each group is what the client sent before it next waited for the server."""
    groups: list[list[str]] = []
    sending = False
    for line in trace.splitlines():
        direction, _, message = [*line.split("\t"), "", ""][:3]
        if direction not in {"F", "B"}:
            continue  # the rest of a multi-line statement
        if direction == "F":
            if not sending:
                groups.append([])
            groups[-1].append(message)
        sending = direction == "F"
    return groups


async def test_one_round_trip_per_operation_and_none_at_checkout(
    store: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    """The pool sends nothing of its own at checkout or return (no check, no reset): a
    read is one round trip, and so is a revocation append with its lock and notice (one
    pipeline, one implicit transaction), an e-mail change and each failure-counter
    operation (a count asked for no key costs none)."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    one = PostgresStore(conninfo_from_url(pg_url)[0], pool_max=1)
    await one.open()
    trace_path = tmp_path / "libpq.trace"
    try:
        with trace_path.open("w") as trace_file:
            async with one._connection() as conn:
                conn.pgconn.trace(trace_file.fileno())
                conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            for _ in range(10):
                assert await one.get_session_and_user(record.id_hash) == (record, user)
            await one.append_revocation(make_revocation())
            assert await one.set_email(user.id, "moved@example.test") is True
            assert await one.record_failure("account:x", T0, 60) == 1
            assert await one.get_failures(["account:x", "y"], T0, 60) == {"account:x": (1, T0)}
            assert await one.get_failures([], T0, 60) == {}
            await one.clear_failures("account:x")
            assert await one.purge_stale_failures(T0) == 0
            async with one._connection() as conn:
                conn.pgconn.untrace()
    finally:
        await one.close()
    # psycopg prepares a statement on its fifth run, in a round trip of its own (once per
    # statement and connection); every other flight is one operation.
    sent = [flight for flight in flights(trace_path.read_text()) if flight != ["Parse", "Sync"]]
    protocol = {"Parse", "Describe", "Bind", "Execute", "Sync", "Flush"}
    assert all(set(flight) <= protocol and flight.count("Sync") == 1 for flight in sent)
    # The append: lock, INSERT, notify. Then the e-mail and the four counter operations.
    assert [flight.count("Execute") for flight in sent] == [1] * 10 + [3] + [1] * 5


# -- the revocation stream's pushes --------------------------------------------------------


async def test_listener_hears_appends_of_another_instance(
    store: PostgresStore, pg_url: str
) -> None:
    """A listener on one store wakes for appends made through another store (another
    instance of the server) and reads them in seq order."""
    other = PostgresStore.from_url(pg_url)
    await other.open()
    listener = await store.listen_revocations()
    try:
        assert await listener.wait(0.05) is False
        first = await other.append_revocation(make_revocation("a"))
        assert await listener.wait(5) is True
        second = await other.append_revocation(make_revocation("b"))
        assert await listener.wait(5) is True
        assert await store.revocations_after(0, T0) == [first, second]
        assert await listener.wait(0.05) is False
    finally:
        await listener.close()
        await other.close()


async def test_rolled_back_append_notifies_nobody(store: PostgresStore) -> None:
    """The notice is sent at COMMIT: an append that fails wakes no listener."""
    listener = await store.listen_revocations()
    try:
        with pytest.raises(pg_errors.CheckViolation):
            await store.append_revocation(make_revocation(kind="everything"))
        assert await listener.wait(0.2) is False
    finally:
        await listener.close()


async def test_closed_listener_is_unavailable(store: PostgresStore) -> None:
    """Waiting on a closed subscription fails closed."""
    listener = await store.listen_revocations()
    await listener.close()
    with pytest.raises(StoreUnavailable):
        await listener.wait(0.05)


async def test_append_waits_behind_an_uncommitted_earlier_append(
    store: PostgresStore, pg_url: str
) -> None:
    """While another instance's append has drawn its seq but not committed, a second
    append waits for it instead of committing a higher seq first, which a follower would
    read and then never look below (the advisory lock; base.RevocationStore)."""
    with raw(pg_url) as slow, slow.transaction():
        slow.execute(postgres_statements.LOCK_REVOCATIONS)
        cursor = slow.execute(
            postgres_statements.INSERT_REVOCATION, ("token", "slow", T0, T0 + 900)
        )
        [(slow_seq,)] = cursor.fetchall()
        later = asyncio.create_task(store.append_revocation(make_revocation("later")))
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        deadline = time.monotonic() + 10
        while slow.execute(waiting).fetchone() != (1,):
            assert not later.done(), "the append did not wait for the earlier one"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert await store.revocations_after(0, T0) == []
    appended = await later
    assert appended.seq > slow_seq
    assert [r.seq for r in await store.revocations_after(0, T0)] == [slow_seq, appended.seq]


async def test_concurrent_appends_of_two_instances_are_visible_in_seq_order(
    store: PostgresStore, pg_url: str
) -> None:
    """The advisory lock orders appends across instances, not just within one pool: a
    follower reading "seq > last" misses none of either instance's entries."""
    other = PostgresStore.from_url(pg_url)
    await other.open()
    seen: list[int] = []
    done = False

    async def follow() -> None:
        last = 0
        while not done:
            for entry in await store.revocations_after(last, T0):
                seen.append(entry.seq)
                last = entry.seq
            await asyncio.sleep(0)

    follower = asyncio.create_task(follow())
    try:
        appended = await asyncio.gather(
            *(
                (store if n % 2 else other).append_revocation(make_revocation(f"s{n}"))
                for n in range(200)
            )
        )
    finally:
        done = True
        await follower
        await other.close()
    seen.extend(entry.seq for entry in await store.revocations_after(max(seen, default=0), T0))
    assert sorted(seen) == sorted(entry.seq for entry in appended)
    assert seen == sorted(seen)


# -- outages -------------------------------------------------------------------------------


@pytest.fixture
def private_server() -> Iterator[Postgres]:
    """A server of this test's own, to stop and start."""
    server = Postgres.create()
    try:
        yield server
    finally:
        server.remove()


async def test_outage_fails_closed_and_recovers(private_server: Postgres) -> None:
    """While the server is down every call raises StoreUnavailable within the pool's
    timeout, never hangs; once it is back, the store answers correctly without being
    reopened: its dead connections are dropped and new ones made (SECURITY.md O3)."""
    url = private_server.create_database("twofold")
    upgrade(url)
    store = PostgresStore(conninfo_from_url(url)[0], pool_timeout=1.0)
    await store.open()
    listener = await store.listen_revocations()
    try:
        user = await add_user(store)
        record = make_session(user.id)
        await store.put_session(record)
        # Use several pooled connections, so several are dead after the restart.
        await asyncio.gather(*(store.get_user(user.id) for _ in range(5)))

        # A fast shutdown, as `systemctl restart` does: sessions are ended at once.
        private_server.stop()
        for call in (store.get_session_and_user(record.id_hash), store.ping()):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call
            assert time.monotonic() - started < 2.5
        with pytest.raises(StoreUnavailable):
            await listener.wait(1)
        await listener.close()

        private_server.start()
        assert await store.get_session_and_user(record.id_hash) == (record, user)
        assert await asyncio.gather(*(store.get_user(user.id) for _ in range(5))) == [user] * 5
        listener = await store.listen_revocations()
        await store.append_revocation(make_revocation())
        assert await listener.wait(5) is True
    finally:
        await listener.close()
        await store.close()
