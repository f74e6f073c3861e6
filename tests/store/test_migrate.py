"""Alembic migrations run programmatically from the package."""

from __future__ import annotations

import dataclasses
import io
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command

from tests.services import Postgres, free_port
from twofold.errors import ConfigurationError, StoreUnavailable
from twofold.store.factory import store_from_url
from twofold.store.migrate import (
    MIGRATION_LOCK_KEY,
    alembic_config,
    current_revision,
    head_revision,
    sqlalchemy_url,
    upgrade,
)
from twofold.store.records import (
    AuditEvent,
    Client,
    RefreshFamily,
    RefreshToken,
    Revocation,
    SessionRecord,
    StoredKey,
    User,
)

from .conftest import sqlite_url
from .factories import (
    T0,
    make_audit,
    make_client,
    make_family,
    make_key,
    make_refresh_token,
    make_revocation,
    make_scoped_token,
    make_session,
    make_user,
)

TABLES = {
    "alembic_version",
    "users",
    "sessions",
    "signing_keys",
    "refresh_families",
    "refresh_tokens",
    "revocations",
    "audit_events",
    "clients",
    "login_failures",
    "scoped_tokens",
}


def schema(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def test_head_is_the_latest_revision() -> None:
    """The packaged migrations have one head, 0005 (update when adding a revision)."""
    assert head_revision() == "0005"


def test_upgrade_creates_the_schema_at_head(tmp_path: Path) -> None:
    """upgrade() builds every table and records the head revision."""
    url = sqlite_url(tmp_path / "twofold.db")
    assert current_revision(url) is None
    upgrade(url)
    assert current_revision(url) == head_revision()
    names = {name for name, _ in schema(tmp_path / "twofold.db")}
    assert names >= TABLES
    assert {
        "ix_sessions_user_id",
        "ix_sessions_idle_expires_at",
        "ix_sessions_last_seen_at",
        "ix_refresh_tokens_family_id",
        "ix_audit_events_user_id_seq",
        "ix_login_failures_last_failure_at",
        "ix_scoped_tokens_user_id",
        "ix_scoped_tokens_expires_at",
    } <= names


def test_upgrade_from_0001_keeps_users_and_sessions(tmp_path: Path) -> None:
    """A database at 0001 holding a user and a session keeps both when moved to head."""
    path = tmp_path / "twofold.db"
    upgrade(sqlite_url(path), "0001")
    assert current_revision(sqlite_url(path)) == "0001"
    user = ("u", "u@example.test", "h", '["admin"]', 1.5, 2.5, 1)
    session = (b"\x00hash", "u", 1.0, 2.0, 3.0, 4.0, "192.0.2.1", "agent", 2.5)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)", user)
        conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", session)
    finally:
        conn.close()
    upgrade(sqlite_url(path))
    assert current_revision(sqlite_url(path)) == "0005"
    conn = sqlite3.connect(path)
    try:
        # Both gain the privilege epoch, 0 for rows from before it existed.
        assert conn.execute("SELECT * FROM users").fetchall() == [(*user, 0.0)]
        assert conn.execute("SELECT * FROM sessions").fetchall() == [(*session, 0.0, None)]
    finally:
        conn.close()
    assert {name for name, _ in schema(path)} >= TABLES


def test_downgrade_to_0001_restores_its_schema(tmp_path: Path) -> None:
    """Downgrading from head to 0001 leaves exactly the schema 0001 creates."""
    at_0001, downgraded = tmp_path / "a.db", tmp_path / "b.db"
    upgrade(sqlite_url(at_0001), "0001")
    upgrade(sqlite_url(downgraded))
    command.downgrade(alembic_config(sqlite_url(downgraded)), "0001")
    assert current_revision(sqlite_url(downgraded)) == "0001"
    # sqlite_sequence (made by AUTOINCREMENT) is internal and cannot be dropped.
    assert [row for row in schema(downgraded) if row[0] != "sqlite_sequence"] == schema(at_0001)


def test_downgrade_to_0003_restores_its_schema(tmp_path: Path) -> None:
    """Downgrading from head to 0003 leaves exactly the schema 0003 creates (0004 drops
    its table and index, nothing else)."""
    at_0003, downgraded = tmp_path / "a.db", tmp_path / "b.db"
    upgrade(sqlite_url(at_0003), "0003")
    upgrade(sqlite_url(downgraded))
    command.downgrade(alembic_config(sqlite_url(downgraded)), "0003")
    assert current_revision(sqlite_url(downgraded)) == "0003"
    assert schema(downgraded) == schema(at_0003)


def test_downgrade_to_0004_restores_its_schema(tmp_path: Path) -> None:
    """Downgrading from head to 0004 leaves exactly the schema 0004 creates (0005 drops
    its table and indexes, nothing else)."""
    at_0004, downgraded = tmp_path / "a.db", tmp_path / "b.db"
    upgrade(sqlite_url(at_0004), "0004")
    upgrade(sqlite_url(downgraded))
    command.downgrade(alembic_config(sqlite_url(downgraded)), "0004")
    assert current_revision(sqlite_url(downgraded)) == "0004"
    assert schema(downgraded) == schema(at_0004)


def test_sequence_tables_use_autoincrement(tmp_path: Path) -> None:
    """revocations and audit_events never reuse a seq: SQLite AUTOINCREMENT is on."""
    path = tmp_path / "twofold.db"
    upgrade(sqlite_url(path))
    ddl = dict(schema(path))
    assert "seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in ddl["revocations"]
    assert "seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in ddl["audit_events"]
    assert "WITHOUT ROWID" in ddl["refresh_tokens"]
    assert "WITHOUT ROWID" in ddl["login_failures"]
    assert "WITHOUT ROWID" in ddl["scoped_tokens"]


def test_upgrade_twice_is_a_no_op(tmp_path: Path) -> None:
    """A second upgrade changes neither the schema nor the data."""
    path = tmp_path / "twofold.db"
    upgrade(sqlite_url(path))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("INSERT INTO users VALUES ('u', 'u@example.test', 'h', '[]', 1, 1, 0, 0)")
    finally:
        conn.close()
    before = schema(path)
    upgrade(sqlite_url(path))
    assert schema(path) == before
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id FROM users").fetchall() == [("u",)]
    finally:
        conn.close()


def test_upgrade_creates_the_parent_directory(tmp_path: Path) -> None:
    """upgrade() makes the database's missing parent directories."""
    path = tmp_path / "data" / "nested" / "twofold.db"
    upgrade(sqlite_url(path))
    assert current_revision(sqlite_url(path)) == head_revision()


def test_relative_url_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///relative.db names a file under the current directory."""
    monkeypatch.chdir(tmp_path)
    upgrade("sqlite:///rel/twofold.db")
    assert (tmp_path / "rel" / "twofold.db").is_file()


def test_migrated_database_is_in_wal_mode(tmp_path: Path) -> None:
    """The migration connection switches the file to WAL before the store ever opens it."""
    path = tmp_path / "twofold.db"
    upgrade(sqlite_url(path))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_current_revision_of_missing_database_creates_nothing(tmp_path: Path) -> None:
    """Asking for the revision of a missing file gives None and leaves no file behind."""
    path = tmp_path / "absent.db"
    assert current_revision(sqlite_url(path)) is None
    assert not path.exists()


def test_failed_migration_leaves_nothing_half_applied(tmp_path: Path) -> None:
    """A migration that fails midway rolls back all of its DDL (transactional on SQLite)."""
    path = tmp_path / "twofold.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TABLE signing_keys (kid TEXT)")  # the last table 0001 creates
    finally:
        conn.close()
    with pytest.raises(StoreUnavailable, match="already exists"):
        upgrade(sqlite_url(path))
    assert {name for name, _ in schema(path)} == {"signing_keys"}
    assert current_revision(sqlite_url(path)) is None


def test_database_at_unknown_revision_is_a_configuration_error(tmp_path: Path) -> None:
    """Upgrading a database stamped by a newer Twofold fails as a ConfigurationError."""
    path = tmp_path / "twofold.db"
    upgrade(sqlite_url(path))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    finally:
        conn.close()
    with pytest.raises(ConfigurationError, match="9999_future"):
        upgrade(sqlite_url(path))


def test_garbage_file_is_unavailable(tmp_path: Path) -> None:
    """A file that is not a database gives StoreUnavailable, not a driver error."""
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(StoreUnavailable):
        current_revision(sqlite_url(path))
    with pytest.raises(StoreUnavailable):
        upgrade(sqlite_url(path))


def test_migrations_render_for_postgresql() -> None:
    """The same migrations produce PostgreSQL DDL (dialect-neutral; rendered offline)."""
    out = io.StringIO()
    command.upgrade(alembic_config("postgresql://twofold@db/twofold", out), "head", sql=True)
    ddl = out.getvalue()
    assert "CREATE TABLE sessions" in ddl
    assert "id_hash BYTEA NOT NULL" in ddl
    assert "idle_expires_at DOUBLE PRECISION NOT NULL" in ddl
    assert "ON DELETE CASCADE" in ddl
    assert "WITHOUT ROWID" not in ddl
    assert "CREATE TABLE refresh_tokens" in ddl
    assert "seq BIGSERIAL NOT NULL" in ddl
    assert "AUTOINCREMENT" not in ddl
    assert "CONSTRAINT ck_revocations_kind CHECK" in ddl
    assert "CREATE TABLE login_failures" in ddl
    assert "key VARCHAR(128) NOT NULL" in ddl
    assert "last_failure_at DOUBLE PRECISION NOT NULL" in ddl
    assert "CREATE INDEX ix_login_failures_last_failure_at" in ddl
    assert "CREATE TABLE scoped_tokens" in ddl
    assert "secret_hash BYTEA NOT NULL" in ddl
    assert "last_used_at DOUBLE PRECISION," in ddl
    assert "CREATE INDEX ix_scoped_tokens_user_id" in ddl
    assert "CREATE INDEX ix_scoped_tokens_expires_at" in ddl


def test_percent_in_url_survives_the_config(tmp_path: Path) -> None:
    """A %-encoded character in the URL is not eaten by ConfigParser interpolation."""
    url = sqlite_url(tmp_path / "100%25.db")
    assert alembic_config(url).get_main_option("sqlalchemy.url") == url
    upgrade(url)
    assert (tmp_path / "100%.db").is_file()


# -- from the previous release (0002), on SQLite and PostgreSQL ----------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty database on each backend."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "twofold.db")
    server: Postgres = request.getfixturevalue("postgres_server")
    return server.create_database(f"migrate_{uuid.uuid4().hex[:12]}")


def insert(url: str, table: str, records: list[Any], *, skip: tuple[str, ...] = ()) -> None:
    """Insert records as rows of ``table`` behind the store's back (the store refuses a
    database below head): columns are the record's fields, in order."""
    columns = [f.name for f in dataclasses.fields(records[0]) if f.name not in skip]
    statement = sa.text(
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (names from records)
        f"VALUES ({', '.join(':' + c for c in columns)})"
    )
    rows = [{c: getattr(r, c) for c in columns} for r in records]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, tuple):  # roles: a JSON array
                row[key] = json.dumps(list(value))
            elif isinstance(value, dict):  # audit detail
                row[key] = json.dumps(value, separators=(",", ":"))
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(statement, rows)
    finally:
        engine.dispose()


def execute(url: str, statement: str) -> list[Any]:
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement))
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


@dataclasses.dataclass
class Release0002Data:
    """One or more records of every table, as a deployment at 0002 holds them."""

    users: list[User]
    sessions: list[SessionRecord]
    families: list[RefreshFamily]
    tokens: list[RefreshToken]
    revocations: list[Revocation]
    audit: list[AuditEvent]
    clients: list[Client]
    keys: list[StoredKey]


def fill_0002(url: str) -> Release0002Data:
    upgrade(url, "0002")
    users = [make_user(1, roles=("admin", "auditor"), locked=True), make_user(2)]
    family = make_family(users[0].id, client_address=None, user_agent=None)
    first = make_refresh_token(family.id, spent_at=T0 + 5, successor_hash=b"\x00next")
    data = Release0002Data(
        users=users,
        sessions=[
            make_session(users[0].id, renewed_to=b"\x00elsewhere"),
            make_session(users[1].id, client_address=None, user_agent="ünïcode"),
        ],
        families=[family],
        tokens=[first, make_refresh_token(family.id, hash=b"\x00next", created_at=T0 + 5)],
        revocations=[
            make_revocation(f"s{n}", kind=kind, at=T0 + n)
            for n, kind in enumerate(["token", "family", "user", "key"])
        ],
        audit=[make_audit(user_id=users[0].id, detail={"ip": "192.0.2.1", "n": [1, 2.5]})],
        clients=[make_client(1)],
        keys=[make_key("k1", state="verify", retire_after=T0 + 9.5), make_key("k2", T0 + 1)],
    )
    insert(url, "users", data.users)
    insert(url, "sessions", data.sessions)
    insert(url, "refresh_families", data.families)
    insert(url, "refresh_tokens", data.tokens)
    insert(url, "revocations", data.revocations, skip=("seq",))
    insert(url, "audit_events", data.audit, skip=("seq",))
    insert(url, "clients", data.clients)
    insert(url, "signing_keys", data.keys)
    return data


async def assert_intact_and_working(url: str, data: Release0002Data) -> None:
    """Every record reads back as stored, and the store works on them."""
    store = store_from_url(url)
    await store.open()
    try:
        for user in data.users:
            assert await store.get_user(user.id) == user
        for record in data.sessions:
            user = await store.get_user(record.user_id)
            assert await store.get_session_and_user(record.id_hash) == (record, user)
        for family in data.families:
            assert await store.get_family(family.id) == family
        for token in data.tokens:
            assert await store.get_refresh_token(token.hash) == token
        revocations = await store.revocations_after(0, T0)
        assert [dataclasses.replace(r, seq=0) for r in revocations] == data.revocations
        assert [dataclasses.replace(e, seq=0) for e in await store.list_audit()] == data.audit
        assert await store.list_clients() == data.clients
        assert await store.list_keys() == data.keys
        # ... and working: rotate the live token, append the new kind, renew a session.
        successor = make_refresh_token(data.families[0].id, created_at=T0 + 6)
        live = data.tokens[1]
        assert await store.spend_refresh_token(live.hash, successor, T0 + 6, T0 + 99) is True
        appended = await store.append_revocation(make_revocation("ab12", kind="session"))
        assert appended.seq > max(r.seq for r in revocations)
        await store.add_user(make_user(3))
        assert len(await store.list_users()) == len(data.users) + 1
        assert await store.set_email(data.users[0].id, "moved@example.test") is True
        assert await store.record_failure("account:user-3", T0, 60) == 1
        assert await store.record_failure("account:user-3", T0 + 1, 60) == 2
        scoped = make_scoped_token(data.users[1].id)
        await store.add_scoped_token(scoped)
        assert await store.list_scoped_tokens(data.users[1].id, T0) == [scoped]
    finally:
        await store.close()


async def test_upgrade_from_0002_keeps_every_table_intact(database_url: str) -> None:
    """A database of the previous release, with data in every table, reaches head with
    all of it intact and usable."""
    data = fill_0002(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    await assert_intact_and_working(database_url, data)


async def test_downgrade_to_0002_and_back(database_url: str) -> None:
    """Head to 0002 drops only the entries of the kind 0003 added (and refuses the kind
    again); back at head, everything else is still there and works."""
    data = fill_0002(database_url)
    upgrade(database_url)
    store = store_from_url(database_url)
    await store.open()
    try:
        await store.append_revocation(make_revocation("cafe", kind="session"))
    finally:
        await store.close()
    command.downgrade(alembic_config(database_url), "0002")
    assert current_revision(database_url) == "0002"
    assert execute(database_url, "SELECT count(*) FROM revocations WHERE kind = 'session'") == [
        (0,)
    ]
    with pytest.raises(sa.exc.IntegrityError):
        execute(
            database_url,
            "INSERT INTO revocations (kind, subject, at, expires_at) VALUES ('session', 'x', 1, 2)",
        )
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    await assert_intact_and_working(database_url, data)


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


async def test_downgrade_to_0003_and_back(database_url: str) -> None:
    """Head to 0003 drops the failure counters and nothing else; back at head the
    counters start empty and every other table is intact and works."""
    data = fill_0002(database_url)
    upgrade(database_url)
    store = store_from_url(database_url)
    await store.open()
    try:
        assert await store.record_failure("account:user-1", T0, 60) == 1
    finally:
        await store.close()
    command.downgrade(alembic_config(database_url), "0003")
    assert current_revision(database_url) == "0003"
    assert table_names(database_url) == TABLES - {"login_failures", "scoped_tokens"}
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    assert execute(database_url, "SELECT count(*) FROM login_failures") == [(0,)]
    await assert_intact_and_working(database_url, data)


async def test_downgrade_to_0004_and_back(database_url: str) -> None:
    """Head to 0004 drops the scoped tokens and nothing else; back at head the table
    starts empty and every other table is intact and works."""
    data = fill_0002(database_url)
    upgrade(database_url)
    store = store_from_url(database_url)
    await store.open()
    try:
        await store.add_scoped_token(make_scoped_token(data.users[0].id))
        assert await store.record_failure("account:user-1", T0, 60) == 1
    finally:
        await store.close()
    command.downgrade(alembic_config(database_url), "0004")
    assert current_revision(database_url) == "0004"
    assert table_names(database_url) == TABLES - {"scoped_tokens"}
    assert execute(database_url, "SELECT count(*) FROM login_failures") == [(1,)]
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    assert execute(database_url, "SELECT count(*) FROM scoped_tokens") == [(0,)]
    await assert_intact_and_working(database_url, data)


def test_scoped_tokens_go_with_their_user(database_url: str) -> None:
    """0005's table cascades from users, as sessions and families do, and is indexed
    by owner and by expiry, on both backends."""
    upgrade(database_url)
    engine = sa.create_engine(sqlalchemy_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            [foreign_key] = inspector.get_foreign_keys("scoped_tokens")
            indexes = {
                index["name"]: index["column_names"]
                for index in inspector.get_indexes("scoped_tokens")
            }
    finally:
        engine.dispose()
    assert foreign_key["referred_table"] == "users"
    assert foreign_key["constrained_columns"] == ["user_id"]
    assert foreign_key["options"].get("ondelete") == "CASCADE"
    assert indexes == {
        "ix_scoped_tokens_user_id": ["user_id"],
        "ix_scoped_tokens_expires_at": ["expires_at"],
    }


async def test_revocation_seq_high_water_mark_survives_0003(database_url: str) -> None:
    """The newest entries purged before the upgrade: the next entry's seq is still above
    theirs (on SQLite, 0003 rebuilds the table and carries AUTOINCREMENT's mark over), so
    a follower that read them cannot skip it."""
    upgrade(database_url, "0002")
    insert(database_url, "revocations", [make_revocation(f"s{n}") for n in range(5)], skip=("seq",))
    [(mark,)] = execute(database_url, "SELECT max(seq) FROM revocations")
    execute(database_url, f"DELETE FROM revocations WHERE seq > {mark - 2}")  # noqa: S608
    upgrade(database_url)
    store = store_from_url(database_url)
    await store.open()
    try:
        appended = await store.append_revocation(make_revocation("after"))
    finally:
        await store.close()
    assert appended.seq > mark


# -- PostgreSQL specifics ------------------------------------------------------------------


@pytest.fixture
def pg_url(postgres_server: Postgres) -> str:
    """A new, empty PostgreSQL database."""
    return postgres_server.create_database(f"migrate_{uuid.uuid4().hex[:12]}")


def upgrade_in_a_process(url: str) -> subprocess.Popen[bytes]:
    """``upgrade(url)`` in another process, as a second ``twofold migrate`` would run."""
    code = f"from twofold.store.migrate import upgrade; upgrade({url!r})"
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)


def test_current_revision_on_postgresql(pg_url: str) -> None:
    """current_revision reads a PostgreSQL database: None, then each revision reached."""
    assert current_revision(pg_url) is None
    upgrade(pg_url, "0002")
    assert current_revision(pg_url) == "0002"
    upgrade(pg_url)
    assert current_revision(pg_url) == head_revision()


def test_concurrent_upgrades_of_one_postgresql_database(pg_url: str) -> None:
    """Upgrades racing from three processes all succeed and build the schema once."""
    processes = [upgrade_in_a_process(pg_url) for _ in range(3)]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()
    assert current_revision(pg_url) == head_revision()
    assert execute(pg_url, "SELECT count(*) FROM alembic_version") == [(1,)]


def test_upgrade_waits_for_the_migration_lock(pg_url: str) -> None:
    """An upgrade takes the advisory lock before reading the version table: while
    another holds it, it waits and changes nothing."""
    with psycopg.connect(pg_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        process = upgrade_in_a_process(pg_url)
        try:
            deadline = time.monotonic() + 30
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            while holder.execute(waiting).fetchone() != (1,):
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert current_revision(pg_url) is None
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert current_revision(pg_url) == head_revision()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p%40ss@h/d", "postgresql+psycopg://u:p%40ss@h/d?connect_timeout=10"),
        ("postgres://u@h:6432/d?pool_max=3", "postgresql+psycopg://u@h:6432/d?connect_timeout=10"),
        (
            "postgresql+psycopg://h/d?connect_timeout=2",
            "postgresql+psycopg://h/d?connect_timeout=2",
        ),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
    ids=["postgresql", "postgres-and-store-option", "psycopg", "sqlite"],
)
def test_urls_are_spelled_for_sqlalchemy(url: str, expected: str) -> None:
    """PostgreSQL URLs go through psycopg 3 with a bounded connect; the password and the
    libpq options survive; the store's own options do not reach the driver."""
    assert sqlalchemy_url(url) == expected


def test_unreachable_postgresql_is_unavailable_without_the_password() -> None:
    """Migrating a server nobody runs is StoreUnavailable, and the password stays out."""
    url = f"postgresql://twofold:s3cret@127.0.0.1:{free_port()}/twofold"
    with pytest.raises(StoreUnavailable) as caught:
        upgrade(url)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(StoreUnavailable) as caught:
        current_revision(url)
    assert "s3cret" not in str(caught.value)
