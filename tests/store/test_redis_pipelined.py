"""The Redis store's pipelined record reads: concurrent reads share one round trip, and a
failing or abandoned command never puts another command's reply in the wrong hands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis as RawRedis
from redis.exceptions import ResponseError

from tests.services import Redis
from twofold.errors import StoreUnavailable
from twofold.store.redis_connection import PipelinedReads
from twofold.store.redis_scripts import family_key, session_key, token_key, user_key
from twofold.store.redis_store import RedisStore

from .factories import add_family, add_user, make_session

DB = 10


@pytest.fixture
async def raw(redis_server: Redis) -> AsyncIterator[RawRedis]:
    client = RawRedis.from_url(redis_server.url(DB))
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_server: Redis, raw: RawRedis) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url(DB))
    await store.open()
    yield store
    await store.close()


async def test_concurrent_reads_each_get_their_own_record(store: RedisStore) -> None:
    """Many sessions read at once (one batch) come back each to its own caller."""
    user = await add_user(store)
    records = [make_session(user.id) for _ in range(40)]
    for record in records:
        await store.put_session(record)
    found = await asyncio.gather(*(store.get_session(r.id_hash) for r in records))
    assert found == records


async def test_concurrent_reads_share_one_connection(store: RedisStore, raw: RawRedis) -> None:
    """Reads issued together use one connection, not one pooled connection each."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    await asyncio.gather(*(store.get_session(record.id_hash) for _ in range(30)))
    clients = [c for c in await raw.client_list() if c["db"] == str(DB)]
    # The raw client, the store's pooled connection (scripts) and the pipelined one.
    assert len(clients) <= 3


async def test_an_error_reply_fails_only_its_own_command(store: RedisStore, raw: RawRedis) -> None:
    """A key of the wrong type fails its read (StoreUnavailable); the reads batched with
    it get their records."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    other = make_session(user.id)
    await raw.set(session_key(other.id_hash), "not a hash")
    results = await asyncio.gather(
        store.get_session(record.id_hash),
        store.get_session(other.id_hash),
        store.get_session(record.id_hash),
        return_exceptions=True,
    )
    assert results[0] == record
    assert isinstance(results[1], StoreUnavailable)
    assert results[2] == record
    assert await store.get_session(record.id_hash) == record


async def test_raw_error_replies_reach_the_caller(redis_server: Redis) -> None:
    """Without the store's translation, the caller sees the driver's error reply."""
    client = RawRedis.from_url(redis_server.url(DB))
    try:
        reads = PipelinedReads(client)
        with pytest.raises(ResponseError):
            await reads.read("NOSUCHCOMMAND")
        assert await reads.read("PING") == b"PONG"
    finally:
        await client.aclose()


async def test_an_abandoned_read_keeps_the_replies_in_step(store: RedisStore) -> None:
    """A caller cancelled while its command is in flight leaves the others their own
    replies, now and in the next batch."""
    user = await add_user(store)
    first, second = make_session(user.id), make_session(user.id)
    await store.put_session(first)
    await store.put_session(second)
    abandoned = asyncio.ensure_future(store.get_session(first.id_hash))
    kept = asyncio.ensure_future(store.get_session(second.id_hash))
    await asyncio.sleep(0)
    abandoned.cancel()
    assert await kept == second
    assert await store.get_session(first.id_hash) == first
    assert await store.get_session(second.id_hash) == second


async def test_a_record_under_another_key_is_refused(store: RedisStore, raw: RawRedis) -> None:
    """Should a reply ever reach the wrong caller, the record it carries is not the one
    asked for: the read fails (503) rather than authenticating as another user."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    stranger = make_session(user.id)
    await raw.copy(session_key(record.id_hash), session_key(stranger.id_hash))
    with pytest.raises(StoreUnavailable):
        await store.get_session(stranger.id_hash)
    other = await add_user(store, 1)
    await raw.copy(user_key(user.id), user_key(other.id), replace=True)
    with pytest.raises(StoreUnavailable):
        await store.get_user(other.id)


async def test_every_record_read_is_checked_to_be_the_one_asked_for(
    store: RedisStore, raw: RawRedis
) -> None:
    """Refresh tokens, families, clients and scoped tokens, like sessions and users."""
    user = await add_user(store)
    family, first = await add_family(store, user.id)
    await raw.copy(family_key(family.id), family_key("family-else"))
    with pytest.raises(StoreUnavailable):
        await store.get_family("family-else")
    await raw.copy(token_key(first.hash), token_key(b"\x01" * 32))
    with pytest.raises(StoreUnavailable):
        await store.get_refresh_token(b"\x01" * 32)
