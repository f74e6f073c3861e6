"""How the Redis store talks to its server: the connection pool, failures as Twofold
errors, the persistence check, and the pub/sub subscription to revocations.

Failure handling (SECURITY.md O3): every command has bounded connect and read timeouts and
is never retried by the driver (a retried INCR or script could apply twice); a lost
connection, a timeout or a refusing server is ``StoreUnavailable``, and the pool
reconnects by itself once Redis is back.

Redis must keep what it acknowledged across a restart: revocations and password changes
live there, so :func:`check_persistence` warns unless the append-only file is on with
``appendfsync always``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from twofold.errors import ConfigurationError, StoreUnavailable
from twofold.store.redis_records import text
from twofold.store.redis_scripts import CHANNEL

log = logging.getLogger("twofold.store.redis")

# Error replies that mean "not now" (out of memory, persistence failing, a replica, still
# loading, busy with a script, denied by an ACL) or data of an unexpected type: fail
# closed. Any other error reply is a bug here and surfaces unchanged.
_UNAVAILABLE_REPLIES = frozenset(
    {"OOM", "MISCONF", "READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS", "BUSY"}
    | {"TRYAGAIN", "CLUSTERDOWN", "NOPERM", "NOAUTH", "WRONGTYPE"}
)


def pool_options(
    url: str, *, connect_timeout: float, timeout: float, max_connections: int
) -> dict[str, Any]:
    """The connection pool's options for a ``redis://`` or ``rediss://`` URL."""
    if not url.startswith(("redis://", "rediss://")):
        raise ConfigurationError("A Redis URL starts with redis:// or rediss://.")
    try:
        options: dict[str, Any] = dict(parse_url(url))
    except ValueError:
        # The URL may hold a password: never echo it back.
        raise ConfigurationError("The Redis URL could not be parsed.") from None
    # Ours win over the URL's query: bounded waits and no driver retries are not options.
    options.update(
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
        # One retry, for a lost connection only: after a Redis restart every pooled
        # connection is dead and would fail one request each. A timeout is never retried
        # (the command may be running); a command the old server ran before dying just
        # as it replied would run twice, which the stream (a skipped seq) tolerates and
        # a compare-and-set answers with "already done".
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        max_connections=max_connections,
        timeout=timeout,  # waiting for a free pooled connection
    )
    return options


async def check_persistence(client: Redis) -> None:
    """Warn if Redis can lose writes it acknowledged when it restarts."""
    with translated_errors():
        try:
            config = await client.config_get("appendonly", "appendfsync", "maxmemory-policy")
        except ResponseError:  # CONFIG renamed away or denied (managed services)
            log.warning(
                "Could not read the Redis persistence settings: make sure appendonly is yes "
                "and appendfsync always, or revocations can be lost when Redis restarts."
            )
            return
    values = {text(k or ""): text(v or "") for k, v in config.items()}
    if values.get("appendonly") != "yes":
        log.warning(
            "Redis runs without its append-only file (appendonly no): revocations and "
            "password changes it acknowledged are lost when it restarts."
        )
    elif values.get("appendfsync") != "always":
        log.warning(
            "Redis syncs its append-only file with appendfsync %s, not always: the "
            "last acknowledged writes (revocations, password changes) can be lost when "
            "it restarts.",
            values.get("appendfsync"),
        )
    if values.get("maxmemory-policy", "noeviction") != "noeviction":
        log.warning(
            "Redis may evict keys under memory pressure (maxmemory-policy %s): sessions, "
            "indexes and revocations must never be evicted; set noeviction.",
            values.get("maxmemory-policy"),
        )


def translate(exc: RedisError) -> Exception:
    """The Twofold error for a driver error (the message names no host or secret), or the
    driver error itself when it is a bug here, such as a failing script."""
    if isinstance(exc, RedisTimeoutError):
        return StoreUnavailable("The Redis store did not answer in time.")
    if isinstance(exc, AuthenticationError):
        return StoreUnavailable("The Redis store refused the credentials.")
    if isinstance(exc, RedisConnectionError):
        return StoreUnavailable("The Redis store cannot be reached.")
    code = str(exc).split(" ", 1)[0]
    if isinstance(exc, ResponseError) and code in _UNAVAILABLE_REPLIES:
        return StoreUnavailable(f"The Redis store refused the command ({code}).")
    return exc


@contextmanager
def translated_errors() -> Iterator[None]:
    """Driver errors raised inside as :func:`translate` maps them, chained. A socket that
    fails outside the driver's own wrapping (an ``OSError``, or uvloop's ``RuntimeError``
    for a write to a transport the peer has just reset) is the store being unreachable."""
    try:
        yield
    except RedisError as exc:
        mapped = translate(exc)
        if mapped is exc:
            raise
        raise mapped from exc
    except (OSError, RuntimeError) as exc:
        raise StoreUnavailable("The Redis store cannot be reached.") from exc


class RedisRevocationListener:
    """Pushes of the revocation stream on a pub/sub connection of its own."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    @classmethod
    async def subscribe(cls, client: Redis, confirm_within: float) -> RedisRevocationListener:
        """Subscribe on a new connection of ``client``'s pool, waiting up to
        ``confirm_within`` seconds for Redis to confirm."""
        pubsub = client.pubsub()
        try:
            with translated_errors():
                await pubsub.subscribe(CHANNEL)
                # Only once the confirmation is read is every later PUBLISH sure to arrive.
                confirmed = await pubsub.get_message(timeout=confirm_within)
            if confirmed is None or confirmed["type"] != "subscribe":
                raise StoreUnavailable("Redis did not confirm the revocation subscription.")
            # A lost subscription must be reported, not quietly renewed: pushes sent in
            # between are gone, and only the follower's catch-up read recovers them.
            pubsub.connection.retry = Retry(NoBackoff(), 0)  # type: ignore[attr-defined]
        except BaseException:
            await _close_pubsub(pubsub)
            raise
        return cls(pubsub)

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 (see base.py)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with translated_errors():
            while True:
                remaining = max(deadline - loop.time(), 0.0)
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=remaining
                )
                if message is not None:
                    # One wake-up for a burst: the follower reads every entry anyway.
                    while await self._pubsub.get_message(True, timeout=0) is not None:
                        pass
                    return True
                if remaining == 0.0 or loop.time() >= deadline:
                    return False

    async def close(self) -> None:
        await _close_pubsub(self._pubsub)


async def _close_pubsub(pubsub: PubSub) -> None:
    await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
