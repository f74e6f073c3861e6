"""How the Redis store talks to its server: the connection pool, the pipelined record
reads, failures as Twofold errors, the persistence check, and the pub/sub subscription to
revocations.

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
from redis.asyncio.connection import AbstractConnection, parse_url
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


class PipelinedReads:
    """Read-only commands of concurrent requests, written together on one connection of
    their own. Every command issued in the same turn of the event loop goes out in one
    write and its replies come back in one read, where each command on its own would pay
    a pool checkout and release, the driver's retry and telemetry wrappers, a task for the
    timed write, and a write and a read on the socket: under load the per-request session
    read costs a fraction of a lone HGETALL.

    One batch is in flight at a time; commands issued meanwhile form the next. The
    guarantees of the pool's commands hold: each write and read is bounded by the
    connection's socket timeout (a timeout fails the batch, never retried), a lost
    connection is retried once (reads are safe to repeat), an error reply fails only its
    own command, and a failed batch drops the connection, which reconnects on next use.
    A caller that gives up (cancelled) leaves the batch in step: its reply is read and
    dropped. The connection counts against the pool's bound and closes with the pool."""

    def __init__(self, client: Redis) -> None:
        self._pool = client.connection_pool
        self._connection: AbstractConnection | None = None
        self._queue: list[tuple[tuple[str | bytes, ...], asyncio.Future[Any]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def read(self, *command: str | bytes) -> Any:
        """The reply to ``command``; driver errors raised as the pool's commands raise them."""
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, reply))
        if self._flushing is None:
            # Runs on the next turn, once this turn's other requests have queued theirs.
            self._flushing = loop.create_task(self._flush())
        return await reply

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._run(batch)
        finally:
            self._flushing = None

    async def _run(self, batch: list[tuple[tuple[str | bytes, ...], asyncio.Future[Any]]]) -> None:
        try:
            try:
                replies = await self._round_trip([command for command, _ in batch])
            except RedisConnectionError:
                # A restart leaves the held connection dead: one more try, as the pool's.
                replies = await self._round_trip([command for command, _ in batch])
        except Exception as exc:
            # The driver's own errors are mapped by the caller; anything else (the pool
            # closed under a read at shutdown) is an outage too, never a 500.
            failure = (
                exc
                if isinstance(exc, RedisError | OSError)
                else StoreUnavailable("The Redis read failed.")
            )
            for _, reply in batch:
                if not reply.done():
                    reply.set_exception(failure)
            return
        except BaseException:  # cancelled with the loop: so are the callers
            for _, reply in batch:
                reply.cancel()
            raise
        for (_, reply), answer in zip(batch, replies, strict=True):
            if reply.done():
                continue
            if isinstance(answer, ResponseError):
                reply.set_exception(answer)
            else:
                reply.set_result(answer)

    async def _round_trip(self, commands: list[tuple[str | bytes, ...]]) -> list[Any]:
        """Every reply in order (an error reply as its exception); any other failure drops
        the connection, so no later batch reads a stale reply."""
        if self._connection is None:
            # Held for good: it counts against the pool's bound and closes with the pool.
            self._connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        connection = self._connection
        try:
            await connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:  # fully read: the stream stays in step
                    replies.append(exc)
            return replies
        except BaseException:
            await connection.disconnect(nowait=True)
            raise


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
