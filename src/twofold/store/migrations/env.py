"""Alembic environment for Twofold, driven by ``twofold.store.migrate``.

The database URL comes from the Alembic config (no ``alembic.ini`` on disk). SQLAlchemy is
used here, for migrations only; the runtime stores speak their drivers directly.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from twofold.store.migrate import MIGRATION_LOCK_KEY


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from pysqlite (it would not wrap DDL in a transaction)
    # so that ``_sqlite_begin`` can: a failed migration then leaves nothing half-applied.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL is a property of the file; set it here so a freshly migrated database is
        # already in the mode the store expects. FULL: acknowledged DDL survives a crash.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two concurrent upgrades serialise
    # instead of both reading "no version" and racing to create the same tables.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _postgresql_begin(connection: sa.Connection) -> None:
    # The same guarantee by other means: a transaction-level advisory lock, taken before
    # Alembic reads the version table and held to COMMIT. A second upgrade waits here and
    # then reads the first one's result. PostgreSQL runs DDL in the transaction, so no one
    # sees a half-migrated schema meanwhile.
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY:d})")


def run_migrations_offline() -> None:
    """Render SQL for the configured dialect without connecting."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over one connection, in one transaction."""
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set in the Alembic config")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    is_sqlite = engine.dialect.name == "sqlite"
    if is_sqlite:
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        sa.event.listen(engine, "begin", _postgresql_begin)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                # SQLite cannot ALTER most things: batch mode rebuilds tables instead.
                render_as_batch=is_sqlite,
                transactional_ddl=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
