"""Alembic migrations run programmatically from the package."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from alembic import command

from twofold.errors import ConfigurationError, StoreUnavailable
from twofold.store.migrate import alembic_config, current_revision, head_revision, upgrade

from .conftest import sqlite_url

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
}


def schema(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def test_head_is_the_latest_revision() -> None:
    """The packaged migrations have one head, 0003 (update when adding a revision)."""
    assert head_revision() == "0003"


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
    assert current_revision(sqlite_url(path)) == "0003"
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


def test_sequence_tables_use_autoincrement(tmp_path: Path) -> None:
    """revocations and audit_events never reuse a seq: SQLite AUTOINCREMENT is on."""
    path = tmp_path / "twofold.db"
    upgrade(sqlite_url(path))
    ddl = dict(schema(path))
    assert "seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in ddl["revocations"]
    assert "seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in ddl["audit_events"]
    assert "WITHOUT ROWID" in ddl["refresh_tokens"]


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


def test_percent_in_url_survives_the_config(tmp_path: Path) -> None:
    """A %-encoded character in the URL is not eaten by ConfigParser interpolation."""
    url = sqlite_url(tmp_path / "100%25.db")
    assert alembic_config(url).get_main_option("sqlalchemy.url") == url
    upgrade(url)
    assert (tmp_path / "100%.db").is_file()
