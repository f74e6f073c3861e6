"""Run the Alembic migrations programmatically; no ``alembic.ini`` is needed on disk.

The migrations live in the package (``twofold.store:migrations``) so they ship with an
installed Twofold. The stores' ``open`` migrates nothing: it refuses a database that is not
at :func:`head_revision`, and the operator runs ``twofold migrate``.

PostgreSQL URLs are run through psycopg 3, the driver the PostgreSQL store uses
(SQLAlchemy's default for ``postgresql://`` is psycopg2, which Twofold does not install).
Concurrent upgrades of one PostgreSQL database take turns on :data:`MIGRATION_LOCK_KEY`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from twofold.errors import ConfigurationError, StoreUnavailable
from twofold.store.factory import parse_url, sqlite_path

SCRIPT_LOCATION = "twofold.store:migrations"

#: The PostgreSQL advisory lock that ``migrations/env.py`` holds for a whole upgrade, so a
#: second ``twofold migrate`` waits, then finds the schema at head (an arbitrary constant;
#: the revocation stream's lock in ``postgres_statements`` is another).
MIGRATION_LOCK_KEY = 7461932857102469120

#: The URL schemes of PostgreSQL through psycopg 3 (``postgres://`` is libpq's spelling).
POSTGRES_DRIVER_NAMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
# Only the PostgreSQL store reads this URL option; the driver would refuse it.
_STORE_ONLY_OPTIONS = ("pool_max",)


def alembic_config(database_url: str, output: io.StringIO | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations and ``database_url``.

    ``output`` receives the SQL when migrations are rendered offline (``sql=True``).
    """
    config = Config(output_buffer=output)
    config.set_main_option("script_location", SCRIPT_LOCATION)
    # The config is a ConfigParser, which would interpolate a "%" from a URL-encoded
    # password; doubling keeps the URL as given.
    url = sqlalchemy_url(database_url) if database_url else ""
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def sqlalchemy_url(database_url: str) -> str:
    """``database_url`` as SQLAlchemy must see it: PostgreSQL through psycopg 3, with a
    bounded connect (10 s unless the URL says otherwise); other URLs as they are."""
    parsed = parse_url(database_url)
    if parsed.drivername not in POSTGRES_DRIVER_NAMES:
        return database_url
    parsed = parsed.set(drivername="postgresql+psycopg").difference_update_query(
        _STORE_ONLY_OPTIONS
    )
    if "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": "10"})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def _as_twofold_errors() -> Iterator[None]:
    """Alembic and driver errors as Twofold errors, so callers (the CLI) report them."""
    try:
        yield
    except CommandError as exc:  # e.g. the database is at a revision this code lacks
        raise ConfigurationError(f"The migrations cannot run: {exc}") from exc
    except sa.exc.DBAPIError as exc:
        # The driver's own message only: SQLAlchemy's adds the statement and parameters.
        raise StoreUnavailable(f"The database could not be migrated: {exc.orig}") from exc


def head_revision() -> str:
    """The revision the code expects the database to be at."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    if head is None:
        raise RuntimeError("the packaged migrations have no head revision")
    return head


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to ``revision``; a database already there is left alone."""
    if parse_url(database_url).get_backend_name() == "sqlite":
        sqlite_path(database_url).parent.mkdir(parents=True, exist_ok=True)
    with _as_twofold_errors():
        command.upgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The database's revision, or None if it was never migrated (or does not exist)."""
    # Connecting would create an empty SQLite file; a missing one is simply unmigrated.
    is_sqlite = parse_url(database_url).get_backend_name() == "sqlite"
    if is_sqlite and not sqlite_path(database_url).exists():
        return None
    engine = sa.create_engine(sqlalchemy_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with _as_twofold_errors(), engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
