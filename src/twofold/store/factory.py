"""Pick a store implementation from a database URL.

Each backend is imported only when its scheme is used, so optional drivers (psycopg for
PostgreSQL, a Redis client later) are needed only by deployments that use them. To add a
backend, write an opener and add its scheme to ``_OPENERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from twofold.errors import ConfigurationError
from twofold.store.base import Store


def parse_url(url: str) -> URL:
    """Parse a database URL the way the migrations will (SQLAlchemy's rules)."""
    try:
        return make_url(url)
    except ArgumentError as exc:
        # The URL may hold a password: never echo it back.
        raise ConfigurationError("The database URL could not be parsed.") from exc


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URL."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise ConfigurationError("Not a sqlite:/// database URL.")
    if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        # Readers and the writer need separate connections to one file.
        raise ConfigurationError(
            "A SQLite database URL must name a file: sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db."
        )
    if parsed.query:
        raise ConfigurationError("SQLite database URLs take no query parameters.")
    return Path(parsed.database)


def _open_sqlite(url: str) -> Store:
    from twofold.store.sqlite import SQLiteStore

    return SQLiteStore(sqlite_path(url))


def _open_postgres(url: str) -> Store:
    from twofold.store.postgres import PostgresStore

    return PostgresStore.from_url(url)


def _open_redis(url: str) -> Store:
    from twofold.store.redis_store import RedisStore

    return RedisStore(url)


_OPENERS: Mapping[str, Callable[[str], Store]] = MappingProxyType(
    # postgres:// is libpq's (and Heroku's) spelling; SQLAlchemy knows only postgresql://.
    {"sqlite": _open_sqlite, "postgresql": _open_postgres, "postgres": _open_postgres}
    | {"redis": _open_redis, "rediss": _open_redis}
)


def store_from_url(url: str) -> Store:
    """A new, unopened store for ``url``; ``ConfigurationError`` if the scheme is unknown."""
    backend = parse_url(url).get_backend_name()
    opener = _OPENERS.get(backend)
    if opener is None:
        supported = ", ".join(f"{name}://" for name in sorted(_OPENERS))
        raise ConfigurationError(
            f"unsupported database URL scheme {backend!r}; supported: {supported}"
        )
    return opener(url)
