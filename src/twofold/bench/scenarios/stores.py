"""The PostgreSQL and Redis a run measures: the user's own (``--postgres-url``,
``--redis-url``) or throwaway servers started for the run.

A store that cannot be had is not an error: its configurations are reported as skipped,
with the reason (not installed, not reachable, refused). Reasons name the host and port,
never the URL, which may hold a password.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from twofold.bench.services import Unavailable, throwaway_postgres, throwaway_redis

__all__ = ["StoreURL", "postgres", "redis"]

_CONNECT_TIMEOUT = 3


@dataclass(frozen=True)
class StoreURL:
    """A usable store's URL, or why there is none."""

    url: str | None
    reason: str = ""
    #: Whether the run started the server (and will stop it).
    throwaway: bool = False


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 'default port'}"


def _reach_postgres(url: str) -> str | None:
    """None if ``url`` accepts a session, else why not."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT).close()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at {_where(url)} is not reachable: {first}"
    return None


def _reach_redis(url: str) -> str | None:
    import redis as redis_client

    client = redis_client.Redis.from_url(url, socket_connect_timeout=_CONNECT_TIMEOUT)
    try:
        client.ping()
    except (redis_client.RedisError, OSError) as exc:
        return f"Redis at {_where(url)} is not reachable: {exc}"
    finally:
        client.close()
    return None


@contextlib.contextmanager
def postgres(given: str | None) -> Iterator[StoreURL]:
    """The PostgreSQL to measure: ``given`` if it answers, else a throwaway server."""
    if given is not None:
        reason = _reach_postgres(given)
        yield StoreURL(None, reason) if reason else StoreURL(given)
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_postgres())
        except Unavailable as exc:
            yield StoreURL(None, exc.reason)
            return
        yield StoreURL(url, throwaway=True)


@contextlib.contextmanager
def redis(given: str | None) -> Iterator[StoreURL]:
    """The Redis to measure: ``given`` if it answers, else a throwaway server."""
    if given is not None:
        reason = _reach_redis(given)
        yield StoreURL(None, reason) if reason else StoreURL(given)
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_redis())
        except Unavailable as exc:
            yield StoreURL(None, exc.reason)
            return
        yield StoreURL(url, throwaway=True)
