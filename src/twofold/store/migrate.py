"""Run the Alembic migrations programmatically; no ``alembic.ini`` is needed on disk.

The migrations live in the package (``twofold.store:migrations``) so they ship with an
installed Twofold. ``SQLiteStore.open`` migrates nothing: it refuses a database that is not
at :func:`head_revision`, and the operator runs ``twofold migrate``.
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


def alembic_config(database_url: str, output: io.StringIO | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations and ``database_url``.

    ``output`` receives the SQL when migrations are rendered offline (``sql=True``).
    """
    config = Config(output_buffer=output)
    config.set_main_option("script_location", SCRIPT_LOCATION)
    # The config is a ConfigParser, which would interpolate a "%" from a URL-encoded
    # password; doubling keeps the URL as given.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


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
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with _as_twofold_errors(), engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
