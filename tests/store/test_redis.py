"""RedisStore: the conformance suite against a real Redis, plus what only Redis has (key
layout, native expiry, lazy index cleanup, outages, pub/sub across instances, persistence
settings)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis as RawRedis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.services import Redis, free_port
from twofold.errors import ConfigurationError, Conflict, StoreUnavailable
from twofold.store.factory import store_from_url
from twofold.store.redis_scripts import (
    EXPIRY_MARGIN,
    scoped_token_key,
    session_key,
    token_key,
)
from twofold.store.redis_store import RedisStore

from .conformance import *  # noqa: F403
from .factories import (
    T0,
    add_family,
    add_scoped_token,
    add_user,
    make_audit,
    make_client,
    make_family,
    make_key,
    make_refresh_token,
    make_revocation,
    make_scoped_token,
    make_session,
    new_id_hash,
)

# A db of its own on the shared server, emptied before each test.
DB = 9
LOGGER = "twofold.store.redis"


@pytest.fixture
async def raw(redis_server: Redis) -> AsyncIterator[RawRedis]:
    """A plain client on the test db, to look (and reach) behind the store's back."""
    client = RawRedis.from_url(redis_server.url(DB))
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_server: Redis, raw: RawRedis) -> AsyncIterator[RedisStore]:
    """An opened store on an empty db."""
    store = RedisStore(redis_server.url(DB))
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def own_redis() -> Iterator[Redis]:
    """A private Redis for tests that stop, freeze or reconfigure it."""
    server = Redis.create()
    yield server
    server.remove()


def deadline_ms(*times: float) -> int:
    """Where a record's native expiry belongs: its later expiry plus the margin."""
    return int(max(times) * 1000) + EXPIRY_MARGIN * 1000


# -- key layout ----------------------------------------------------------------------------


async def test_every_key_is_under_the_prefix(store: RedisStore, raw: RawRedis) -> None:
    """Everything the store writes lives under ``twofold:``, so a Redis can be shared."""
    user = await add_user(store)
    await store.put_session(make_session(user.id))
    await add_family(store, user.id)
    await store.append_revocation(make_revocation())
    await store.append_audit(make_audit(user_id=user.id, actor_id="admin"))
    await store.add_client(make_client())
    await store.add_key(make_key("k1"))
    await store.record_failure("account:user-0", T0, 900)
    await add_scoped_token(store, user.id)
    keys = [key async for key in raw.scan_iter()]
    assert len(keys) > 20
    assert all(key.startswith(b"twofold:") for key in keys), keys


async def test_session_and_user_is_one_command(store: RedisStore, raw: RawRedis) -> None:
    """get_session_and_user costs one round trip: a single EVALSHA, whose script reads
    the two hashes (commandstats counts commands run inside scripts too)."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    assert await store.get_session_and_user(record.id_hash) == (record, user)
    await raw.config_resetstat()
    assert await store.get_session_and_user(record.id_hash) == (record, user)
    calls = {name: stat["calls"] for name, stat in (await raw.info("commandstats")).items()}
    assert calls == {
        "cmdstat_config|resetstat": 1,
        "cmdstat_evalsha": 1,
        "cmdstat_hgetall": 2,
    }


# -- native expiry -------------------------------------------------------------------------


async def test_sessions_expire_natively_after_their_later_expiry(
    store: RedisStore, raw: RawRedis
) -> None:
    """A session carries a Redis expiry at its later expiry plus the margin, moved by a
    touch and cut by a renewal, so an abandoned record goes without any purge."""
    user = await add_user(store)
    record = make_session(user.id, roles_changed_at=T0)
    await store.put_session(record)
    key = session_key(record.id_hash)
    expected = deadline_ms(record.idle_expires_at, record.absolute_expires_at)
    assert await raw.pexpiretime(key) == expected
    before = int(time.time() * 1000)
    assert 0 < await raw.pttl(key) <= expected - before
    await store.touch_session(record.id_hash, T0 + 10, T0 + 90000)
    assert await raw.pexpiretime(key) == deadline_ms(T0 + 90000)
    renewed = make_session(user.id, roles_changed_at=T0 + 1)
    assert await store.renew_session(record.id_hash, renewed, T0 + 30) is True
    assert await raw.pexpiretime(key) == deadline_ms(T0 + 30)
    assert await raw.pexpiretime(session_key(renewed.id_hash)) == deadline_ms(T0 + 86400)


async def test_families_and_tokens_expire_together(store: RedisStore, raw: RawRedis) -> None:
    """A family, its token set and every token expire at the family's later expiry plus
    the margin; a rotation that moves it moves them all."""
    user = await add_user(store)
    family, first = await add_family(store, user.id, absolute_expires_at=T0 + 1000)
    keys = [f"twofold:family:{family.id}", f"twofold:family-tokens:{family.id}"]
    keys.append(token_key(first.hash))
    for key in keys:
        assert await raw.pexpiretime(key) == deadline_ms(T0 + 86400, T0 + 1000)
    before = int(time.time() * 1000)
    assert 0 < await raw.pttl(keys[0]) <= deadline_ms(T0 + 86400) - before
    successor = make_refresh_token(family.id, created_at=T0 + 1)
    assert await store.spend_refresh_token(first.hash, successor, T0 + 1, T0 + 99999) is True
    for key in [*keys, token_key(successor.hash)]:
        assert await raw.pexpiretime(key) == deadline_ms(T0 + 99999)


async def test_failure_counters_expire_natively_after_their_window(
    store: RedisStore, raw: RawRedis
) -> None:
    """A failure counter is a hash that Redis drops by itself once its window (plus the
    margin) has passed, moved by every failure: there is nothing to purge, and
    purge_stale_failures says so with 0."""
    key = "twofold:login-failures:account:user-0"
    lifetime_ms = (900 + EXPIRY_MARGIN) * 1000
    assert await store.record_failure("account:user-0", T0, 900) == 1
    # Relative to Redis's clock (PEXPIRE), not the instance's: a lagging clock on an
    # instance cannot make a counter vanish early.
    assert lifetime_ms - 5000 < await raw.pttl(key) <= lifetime_ms
    assert await store.record_failure("account:user-0", T0 + 100.5, 900) == 2
    assert lifetime_ms - 5000 < await raw.pttl(key) <= lifetime_ms
    assert await raw.hgetall(key) == {
        b"failures": b"2",
        b"last_failure_at": repr(T0 + 100.5).encode(),
    }
    assert await store.purge_stale_failures(T0 + 10_000) == 0
    await store.clear_failures("account:user-0")
    assert await raw.exists(key) == 0


async def test_scoped_tokens_expire_natively_after_their_expiry(
    store: RedisStore, raw: RawRedis
) -> None:
    """A scoped token carries a Redis expiry at its expiry plus the margin, which a touch
    leaves alone: an expired token goes without any purge."""
    user = await add_user(store)
    record = await add_scoped_token(store, user.id, expires_at=T0 + 1000.5)
    key = scoped_token_key(record.id)
    assert await raw.pexpiretime(key) == deadline_ms(T0 + 1000.5)
    await store.touch_scoped_token(record.id, T0 + 10)
    assert await raw.pexpiretime(key) == deadline_ms(T0 + 1000.5)


async def test_get_failures_is_one_command(store: RedisStore, raw: RawRedis) -> None:
    """get_failures costs one round trip whatever the number of keys: one EVALSHA."""
    await store.record_failure("a", T0, 900)
    await raw.config_resetstat()
    assert await store.get_failures(["a", "b", "c"], T0, 900) == {"a": (1, T0)}
    calls = {name: stat["calls"] for name, stat in (await raw.info("commandstats")).items()}
    assert calls == {"cmdstat_config|resetstat": 1, "cmdstat_evalsha": 1, "cmdstat_hmget": 3}


async def test_set_email_moves_the_index_entry(store: RedisStore, raw: RawRedis) -> None:
    """set_email moves the user's entry in the e-mail index (the old one is deleted, not
    left pointing at the user); a refused move leaves both users' entries alone."""
    user, other = await add_user(store), await add_user(store, 1)
    assert await store.set_email(user.id, "moved@example.test") is True
    assert await raw.get("twofold:user-email:moved@example.test") == user.id.encode()
    assert await raw.exists(f"twofold:user-email:{user.email}") == 0
    with pytest.raises(Conflict):
        await store.set_email(user.id, other.email)
    assert await raw.get(f"twofold:user-email:{other.email}") == other.id.encode()
    assert await raw.get("twofold:user-email:moved@example.test") == user.id.encode()


# -- lazy cleanup of entries whose record vanished -----------------------------------------


async def test_vanished_session_is_unlinked_when_read(store: RedisStore, raw: RawRedis) -> None:
    """A session Redis dropped by itself (here: DEL behind the store's back) is never
    listed, and its index entries go when an index is read or purged."""
    user = await add_user(store)
    kept, gone = make_session(user.id), make_session(user.id)
    await store.put_session(kept)
    await store.put_session(gone)
    await raw.delete(session_key(gone.id_hash))
    assert await store.list_live_sessions(T0) == [kept]
    for index in ("sessions:seen", "sessions:ends", f"user-sessions:{user.id}"):
        assert await raw.zcard(f"twofold:{index}") == 1
    await store.put_session(gone)
    await raw.delete(session_key(gone.id_hash))
    assert await store.list_user_sessions(user.id) == [kept]
    for index in ("sessions:seen", "sessions:ends", f"user-sessions:{user.id}"):
        assert await raw.zcard(f"twofold:{index}") == 1
    assert await store.get_session_and_user(gone.id_hash) is None
    assert await store.delete_user_sessions(user.id) == 1


async def test_purge_unlinks_vanished_records_everywhere(store: RedisStore, raw: RawRedis) -> None:
    """purge clears the index entries of records Redis expired, from the owner's index
    too, without counting them as deleted."""
    user = await add_user(store)
    session = make_session(user.id, idle_expires_at=T0 + 5)
    await store.put_session(session)
    family, _ = await add_family(store, user.id, idle_expires_at=T0 + 5)
    await raw.delete(session_key(session.id_hash), f"twofold:family:{family.id}")
    assert await store.purge_expired_sessions(T0 + 10) == 0
    assert await store.purge_expired_families(T0 + 10) == 0
    for index in ("sessions:seen", "sessions:ends", f"user-sessions:{user.id}"):
        assert await raw.exists(f"twofold:{index}") == 0
    for index in ("families:used", "families:ends", f"user-families:{user.id}"):
        assert await raw.exists(f"twofold:{index}") == 0


async def test_vanished_family_is_unlinked_when_read(store: RedisStore, raw: RawRedis) -> None:
    """A family Redis dropped is never listed; reading the indexes unlinks it."""
    user = await add_user(store)
    kept, _ = await add_family(store, user.id, 1)
    gone, _ = await add_family(store, user.id, 2)
    await raw.delete(f"twofold:family:{gone.id}")
    assert await store.list_live_families(T0) == [kept]
    assert await store.list_user_families(user.id) == [kept]
    assert await raw.zcard(f"twofold:user-families:{user.id}") == 1
    assert await store.delete_user_families(user.id) == [kept.id]


async def test_vanished_scoped_token_is_unlinked(store: RedisStore, raw: RawRedis) -> None:
    """A scoped token Redis dropped by itself is never listed nor counted as deleted, and
    its index entries go when the owner's tokens are listed or the expired ones purged."""
    user = await add_user(store)
    kept = await add_scoped_token(store, user.id, 1)
    gone = await add_scoped_token(store, user.id, 2)
    await raw.delete(scoped_token_key(gone.id))
    assert await store.list_scoped_tokens(user.id, T0) == [kept]
    for index in ("scoped-tokens:ends", f"user-scoped-tokens:{user.id}"):
        assert await raw.zcard(f"twofold:{index}") == 1
    expired = await add_scoped_token(store, user.id, 3, expires_at=T0 + 5)
    await raw.delete(scoped_token_key(expired.id))
    assert await store.purge_expired_scoped_tokens(T0 + 10) == 0
    for index in ("scoped-tokens:ends", f"user-scoped-tokens:{user.id}"):
        assert await raw.zcard(f"twofold:{index}") == 1
    await raw.delete(scoped_token_key(kept.id))
    assert await store.delete_scoped_token(kept.id) is False
    assert await store.delete_user_scoped_tokens(user.id) == []
    for index in ("scoped-tokens:ends", f"user-scoped-tokens:{user.id}"):
        assert await raw.exists(f"twofold:{index}") == 0


async def test_expired_entries_do_not_shorten_listings(store: RedisStore) -> None:
    """More expired entries than one script batch reads do not make revocations_after or
    list_live_sessions return fewer than ``limit`` when more qualify."""
    user = await add_user(store)
    now = T0 + 100
    await asyncio.gather(
        *(store.append_revocation(make_revocation(f"old{n}", expires_at=now)) for n in range(300))
    )
    live = [await store.append_revocation(make_revocation(f"live{n}")) for n in range(3)]
    assert await store.revocations_after(0, now, limit=2) == live[:2]
    dead = [make_session(user.id, last_seen_at=T0 + 50, idle_expires_at=now) for _ in range(300)]
    await asyncio.gather(*(store.put_session(record) for record in dead))
    fresh = [make_session(user.id, last_seen_at=T0 + n) for n in range(3)]
    for record in fresh:
        await store.put_session(record)
    assert await store.list_live_sessions(now, limit=2) == [fresh[2], fresh[1]]


# -- caller bugs and corrupt data ----------------------------------------------------------


async def test_families_of_unknown_users_are_refused(store: RedisStore) -> None:
    """A family must belong to an existing user (a bug, not a Conflict)."""
    family = make_family("ghost")
    with pytest.raises(ValueError, match="user"):
        await store.create_family(family, make_refresh_token(family.id))
    assert await store.get_family(family.id) is None


async def test_sessions_of_users_kept_elsewhere_are_stored(store: RedisStore) -> None:
    """Beside PostgreSQL (``redis_url``) this Redis holds sessions whose users live in
    PostgreSQL: a session is stored, renewed and found without its user here (the
    one-read lookup then has no user to join, and the session manager reads it there)."""
    record = make_session("kept-in-postgres")
    await store.put_session(record)
    assert await store.get_session(record.id_hash) == record
    assert await store.get_session_and_user(record.id_hash) is None
    renewed = dataclasses.replace(record, id_hash=new_id_hash(), roles_changed_at=T0 + 9)
    assert await store.renew_session(record.id_hash, renewed, T0 + 5) is True
    listed = await store.list_user_sessions("kept-in-postgres")
    assert sorted(listed, key=lambda r: r.id_hash) == sorted(
        [
            renewed,
            dataclasses.replace(
                record,
                roles_changed_at=T0 + 9,
                renewed_to=renewed.id_hash,
                idle_expires_at=min(record.idle_expires_at, T0 + 5),
                absolute_expires_at=min(record.absolute_expires_at, T0 + 5),
            ),
        ],
        key=lambda r: r.id_hash,
    )


async def test_scoped_tokens_of_unknown_users_are_refused(store: RedisStore) -> None:
    """A scoped token must belong to an existing user (a bug, not a Conflict); a taken id
    is refused too and the first token is untouched."""
    record = make_scoped_token("ghost")
    with pytest.raises(ValueError, match="user"):
        await store.add_scoped_token(record)
    assert await store.get_scoped_token(record.id) is None
    user = await add_user(store)
    first = await add_scoped_token(store, user.id)
    with pytest.raises(ValueError, match="exists"):
        await store.add_scoped_token(make_scoped_token(user.id, 1, id=first.id))
    assert await store.get_scoped_token(first.id) == first


async def test_successor_of_another_family_is_refused(store: RedisStore) -> None:
    """A successor filed under a different family is a caller bug; nothing changes."""
    user = await add_user(store)
    _, first = await add_family(store, user.id)
    other, _ = await add_family(store, user.id, 1)
    stray = make_refresh_token(other.id, created_at=T0 + 1)
    with pytest.raises(ValueError, match="family"):
        await store.spend_refresh_token(first.hash, stray, T0 + 1, T0 + 100)
    assert await store.get_refresh_token(first.hash) == first
    assert await store.get_refresh_token(stray.hash) is None


async def test_unknown_revocation_kind_is_refused(store: RedisStore) -> None:
    """A kind the stream does not know is refused before it is stored: followers could
    not read past it."""
    with pytest.raises(ValueError, match="kind"):
        await store.append_revocation(make_revocation(kind="everything"))
    assert await store.revocations_after(0, T0) == []


async def test_unknown_key_state_is_refused(store: RedisStore) -> None:
    """A key state the ring does not know is refused before it is stored."""
    with pytest.raises(ValueError, match="state"):
        await store.add_key(make_key("k1", state="lost"))
    await store.add_key(make_key("k1"))
    with pytest.raises(ValueError, match="state"):
        await store.set_key_state("k1", "lost", None)  # type: ignore[arg-type]
    assert [key.state for key in await store.list_keys()] == ["active"]


async def test_malformed_failure_counter_fails_closed(store: RedisStore, raw: RawRedis) -> None:
    """A corrupt counter raises StoreUnavailable instead of reading as no failures."""
    await store.record_failure("account:user-0", T0, 900)
    await raw.hset("twofold:login-failures:account:user-0", "failures", "many")
    with pytest.raises(StoreUnavailable):
        await store.get_failures(["account:user-0"], T0, 900)


async def test_malformed_stored_roles_fail_closed(store: RedisStore, raw: RawRedis) -> None:
    """A corrupt roles field raises StoreUnavailable instead of granting anything."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    await raw.hset(f"twofold:user:{user.id}", "roles", '{"admin": true}')
    with pytest.raises(StoreUnavailable):
        await store.get_user(user.id)
    with pytest.raises(StoreUnavailable):
        await store.get_session_and_user(record.id_hash)


async def test_malformed_stored_scopes_fail_closed(store: RedisStore, raw: RawRedis) -> None:
    """A corrupt scopes field raises StoreUnavailable instead of granting anything."""
    user = await add_user(store)
    record = await add_scoped_token(store, user.id)
    await raw.hset(scoped_token_key(record.id), "scopes", '"admin"')
    with pytest.raises(StoreUnavailable):
        await store.get_scoped_token(record.id)
    with pytest.raises(StoreUnavailable):
        await store.list_scoped_tokens(user.id, T0)


# -- outages -------------------------------------------------------------------------------


async def timed(call: object) -> float:
    """Seconds until ``call`` (an awaitable) raised StoreUnavailable."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await call  # type: ignore[misc]
    assert "127.0.0.1" not in str(caught.value)
    return time.monotonic() - started


async def test_outage_fails_closed_and_recovers(own_redis: Redis) -> None:
    """While Redis is down every call raises StoreUnavailable at once (never hangs, never
    answers); once it is back the same store answers again, with the data (O3)."""
    store = RedisStore(own_redis.url(), timeout=1)
    await store.open()
    try:
        user = await add_user(store)
        record = make_session(user.id)
        await store.put_session(record)
        listener = await store.listen_revocations()
        own_redis.stop()
        assert await timed(listener.wait(5)) < 1
        await listener.close()
        assert await timed(store.get_session_and_user(record.id_hash)) < 1
        assert await timed(store.put_session(make_session(user.id))) < 1
        assert await timed(store.append_revocation(make_revocation())) < 1
        assert await timed(store.ping()) < 1
        assert await timed(store.listen_revocations()) < 1
        own_redis.start()
        assert await store.get_session_and_user(record.id_hash) == (record, user)
        appended = await store.append_revocation(make_revocation())
        assert await store.revocations_after(0, T0) == [appended]
        listener = await store.listen_revocations()
        await store.append_revocation(make_revocation("again"))
        assert await listener.wait(5) is True
        await listener.close()
    finally:
        await store.close()


async def test_frozen_redis_times_out(own_redis: Redis) -> None:
    """A Redis that stops answering (SIGSTOP) costs a request the read timeout, not a hang;
    after it resumes the store answers again."""
    store = RedisStore(own_redis.url(), timeout=0.3)
    await store.open()
    assert own_redis.proc is not None
    try:
        user = await add_user(store)
        os.killpg(own_redis.proc.pid, signal.SIGSTOP)
        try:
            assert await timed(store.get_user(user.id)) < 1.5
        finally:
            os.killpg(own_redis.proc.pid, signal.SIGCONT)
        assert await store.get_user(user.id) == user
    finally:
        await store.close()


async def test_open_fails_promptly_when_unreachable() -> None:
    """open() on a port nobody listens on raises StoreUnavailable at once."""
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    assert await timed(store.open()) < 1
    with pytest.raises(StoreUnavailable):
        await store.get_user("user-0")


async def test_closed_store_is_unavailable(redis_server: Redis) -> None:
    """A store that is not open raises StoreUnavailable, not a driver error."""
    store = RedisStore(redis_server.url(DB))
    with pytest.raises(StoreUnavailable):
        await store.get_session(new_id_hash())
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_wrong_credentials_do_not_leak(redis_server: Redis) -> None:
    """Refused credentials are StoreUnavailable, and the message holds no password."""
    url = f"redis://nobody:s3cret-pw@127.0.0.1:{redis_server.port}/{DB}"
    with pytest.raises(StoreUnavailable, match="credentials") as caught:
        await RedisStore(url).open()
    assert "s3cret" not in str(caught.value)


async def test_driver_retries_only_a_lost_connection_once(store: RedisStore) -> None:
    """The pool's connections retry once after a lost connection (a restart leaves every
    pooled one dead), never after a timeout (the command may be running), and every wait
    is bounded."""
    options = store._redis().connection_pool.connection_kwargs
    assert options["retry"].get_retries() == 1
    assert options["retry"]._supported_errors == (RedisConnectionError,)
    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (3.0, 5.0)


# -- revocation push -----------------------------------------------------------------------


async def test_listener_hears_appends_of_another_instance(
    redis_server: Redis, raw: RawRedis
) -> None:
    """A listener on one store hears appends made through a second, separate store (what
    tells every Twofold instance to read the stream, T9)."""
    listening, appending = RedisStore(redis_server.url(DB)), RedisStore(redis_server.url(DB))
    await listening.open()
    await appending.open()
    listener = await listening.listen_revocations()
    try:
        assert await listener.wait(0.05) is False
        appended = await appending.append_revocation(make_revocation())
        assert await listener.wait(5) is True
        assert await listening.revocations_after(0, T0) == [appended]
    finally:
        await listener.close()
        await listening.close()
        await appending.close()


async def test_listener_raises_when_its_connection_is_killed(
    store: RedisStore, raw: RawRedis
) -> None:
    """A listener whose connection is cut raises StoreUnavailable (the follower then
    re-reads the stream and listens anew) rather than silently hearing nothing."""
    listener = await store.listen_revocations()
    try:
        assert await raw.client_kill_filter(_type="pubsub") >= 1
        with pytest.raises(StoreUnavailable):
            await listener.wait(5)
    finally:
        await listener.close()


# -- persistence settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [("appendfsync", "everysec", "appendfsync everysec"), ("appendonly", "no", "appendonly no")],
    ids=["fsync-everysec", "no-aof"],
)
async def test_open_warns_when_writes_can_be_lost(
    own_redis: Redis, caplog: pytest.LogCaptureFixture, setting: str, value: str, message: str
) -> None:
    """open() warns when Redis could lose acknowledged writes on a restart."""
    async with RawRedis.from_url(own_redis.url()) as client:
        await client.config_set(setting, value)
    store = RedisStore(own_redis.url())
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await store.open()
    await store.close()
    assert [r.name for r in caplog.records] == [LOGGER]
    assert message in caplog.records[0].getMessage()


async def test_open_is_quiet_when_every_write_is_synced(
    redis_server: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """With appendonly yes and appendfsync always there is nothing to warn about."""
    store = RedisStore(redis_server.url(DB))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await store.open()
    await store.close()
    assert caplog.records == []


async def test_open_tolerates_config_being_denied(
    own_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A user without CONFIG (as on managed services) opens the store, with a warning that
    the settings could not be checked."""
    async with RawRedis.from_url(own_redis.url()) as client:
        await client.acl_setuser(
            "limited", enabled=True, passwords=["+limited-pw"], keys=["*"], channels=["*"],
            commands=["+@all", "-config"],
        )  # fmt: skip
    store = RedisStore(f"redis://limited:limited-pw@127.0.0.1:{own_redis.port}/0")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await store.open()
    try:
        assert "Could not read" in caplog.records[0].getMessage()
        assert await add_user(store)
    finally:
        await store.close()


# -- the factory ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["redis://localhost:6379/3", "rediss://u:pw@cache.example/0"])
def test_factory_opens_redis_urls(url: str) -> None:
    """redis:// and rediss:// URLs give an unopened RedisStore."""
    assert isinstance(store_from_url(url), RedisStore)


def test_bad_redis_url_is_not_echoed() -> None:
    """A Redis URL that cannot be parsed is refused without repeating it."""
    with pytest.raises(ConfigurationError) as caught:
        RedisStore("redis://:s3cret@localhost:notaport/0")
    assert "s3cret" not in str(caught.value)
