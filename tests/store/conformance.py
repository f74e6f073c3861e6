"""The store conformance suite: every backend passes these tests, written once.

A backend's test module star-imports this module and defines a ``store`` fixture that
yields an opened, migrated, empty store. Names starting with ``test_`` are collected in
the importing module only (pytest does not collect this file: it is not named ``test_*``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import secrets

import pytest

from twofold.errors import Conflict
from twofold.store.base import Store

from .factories import T0, add_user, make_key, make_session, make_user, new_id_hash

# -- users ---------------------------------------------------------------------------------


async def test_add_user_then_get_by_id_and_email(store: Store) -> None:
    """A stored user comes back equal, by id and by e-mail."""
    user = await add_user(store, roles=("admin", "auditor"), locked=True)
    assert await store.get_user(user.id) == user
    assert await store.get_user_by_email(user.email) == user


@pytest.mark.parametrize("roles", [(), ("admin",), ("b", "a", "c")], ids=["none", "one", "many"])
async def test_roles_round_trip_in_order(store: Store, roles: tuple[str, ...]) -> None:
    """Roles come back as the same tuple, order kept."""
    user = await add_user(store, roles=roles)
    fetched = await store.get_user(user.id)
    assert fetched is not None
    assert fetched.roles == roles


async def test_missing_user_is_none(store: Store) -> None:
    """An unknown id or e-mail gives None, not an error."""
    await add_user(store)
    assert await store.get_user("nobody") is None
    assert await store.get_user_by_email("nobody@example.test") is None


async def test_duplicate_email_conflicts(store: Store) -> None:
    """A second user with a taken e-mail is refused and the first is untouched."""
    first = await add_user(store, 1)
    with pytest.raises(Conflict):
        await store.add_user(make_user(2, email=first.email))
    assert await store.get_user("user-2") is None
    assert await store.get_user_by_email(first.email) == first


async def test_duplicate_user_id_conflicts(store: Store) -> None:
    """A second user with a taken id is refused."""
    first = await add_user(store, 1)
    with pytest.raises(Conflict):
        await store.add_user(make_user(1, email="other@example.test"))
    assert await store.get_user(first.id) == first


async def test_concurrent_registrations_of_one_email_admit_one(store: Store) -> None:
    """Racing registrations of one e-mail: exactly one wins, the rest get Conflict."""
    users = [make_user(n, email="race@example.test") for n in range(10)]
    results = await asyncio.gather(*(store.add_user(u) for u in users), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)


async def test_set_password_moves_changed_at(store: Store) -> None:
    """set_password replaces the hash and moves password_changed_at."""
    user = await add_user(store)
    await store.set_password(user.id, "$argon2id$new", T0 + 500.25)
    fetched = await store.get_user(user.id)
    assert fetched == dataclasses.replace(
        user, password_hash="$argon2id$new", password_changed_at=T0 + 500.25
    )


async def test_rehash_replaces_only_a_matching_hash(store: Store) -> None:
    """rehash_password is a compare-and-set: a stale old hash changes nothing."""
    user = await add_user(store)
    await store.rehash_password(user.id, "$argon2id$stale", "$argon2id$lost")
    assert await store.get_user(user.id) == user
    await store.rehash_password(user.id, user.password_hash, "$argon2id$stronger")
    assert await store.get_user(user.id) == dataclasses.replace(
        user, password_hash="$argon2id$stronger"
    )


async def test_rehash_keeps_password_changed_at(store: Store) -> None:
    """A rehash is not a password change: password_changed_at stays put."""
    user = await add_user(store)
    await store.rehash_password(user.id, user.password_hash, "$argon2id$stronger")
    fetched = await store.get_user(user.id)
    assert fetched is not None
    assert fetched.password_changed_at == user.password_changed_at


async def test_list_users_ordered_by_creation_then_id(store: Store) -> None:
    """list_users orders by created_at, ties broken by id, whatever the insert order."""
    for n, created in [(3, T0 + 2), (1, T0 + 5), (2, T0 + 2), (0, T0 - 1)]:
        await add_user(store, n, created_at=created)
    assert [u.id for u in await store.list_users()] == ["user-0", "user-2", "user-3", "user-1"]


async def test_list_users_pages_with_limit_and_offset(store: Store) -> None:
    """limit and offset page through users in order."""
    for n in range(7):
        await add_user(store, n)
    assert [u.id for u in await store.list_users(limit=3)] == ["user-0", "user-1", "user-2"]
    assert [u.id for u in await store.list_users(limit=3, offset=5)] == ["user-5", "user-6"]
    assert await store.list_users(limit=3, offset=7) == []
    assert await store.list_users(limit=0) == []


# -- sessions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_address", "user_agent"),
    [("2001:db8::1", "Mozilla/5.0 ünïcode"), (None, None)],
    ids=["filled", "empty"],
)
async def test_session_round_trip_is_exact(
    store: Store, client_address: str | None, user_agent: str | None
) -> None:
    """A session comes back field-for-field equal, fractional times included."""
    user = await add_user(store)
    record = make_session(
        user.id,
        created_at=T0 + 0.123456789,
        last_seen_at=T0 + 1.000001,
        idle_expires_at=T0 + 1801.5,
        absolute_expires_at=1e10 + 0.25,
        client_address=client_address,
        user_agent=user_agent,
    )
    await store.put_session(record)
    assert await store.get_session(record.id_hash) == record


async def test_missing_session_is_none(store: Store) -> None:
    """An unknown id hash gives None."""
    assert await store.get_session(new_id_hash()) is None


async def test_session_hash_is_stored_as_given(store: Store) -> None:
    """The store keys sessions by the hash it is given, byte for byte (NULs included)."""
    user = await add_user(store)
    raw_id = secrets.token_bytes(32)
    id_hash = b"\x00" + hashlib.sha256(raw_id).digest()[1:]
    await store.put_session(make_session(user.id, id_hash=id_hash))
    assert await store.get_session(raw_id) is None
    [listed] = await store.list_user_sessions(user.id)
    assert listed.id_hash == id_hash


async def test_put_session_replaces_a_record(store: Store) -> None:
    """Putting a record with an existing id hash replaces it."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    replaced = dataclasses.replace(record, last_seen_at=T0 + 9, user_agent="other")
    await store.put_session(replaced)
    assert await store.get_session(record.id_hash) == replaced


async def test_touch_moves_only_the_sliding_expiry(store: Store) -> None:
    """touch_session moves last_seen_at and idle_expires_at and nothing else."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    await store.touch_session(record.id_hash, T0 + 60.5, T0 + 1860.5)
    assert await store.get_session(record.id_hash) == dataclasses.replace(
        record, last_seen_at=T0 + 60.5, idle_expires_at=T0 + 1860.5
    )


async def test_touch_missing_session_is_a_no_op(store: Store) -> None:
    """Touching an unknown session neither fails nor creates it."""
    id_hash = new_id_hash()
    await store.touch_session(id_hash, T0, T0 + 1800)
    assert await store.get_session(id_hash) is None


async def test_delete_session_reports_whether_it_deleted(store: Store) -> None:
    """delete_session is True once, then False; the record is gone."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    assert await store.delete_session(record.id_hash) is True
    assert await store.get_session(record.id_hash) is None
    assert await store.delete_session(record.id_hash) is False


async def test_delete_user_sessions_spares_keep_and_other_users(store: Store) -> None:
    """delete_user_sessions ends the user's other sessions only and counts them."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    mine = [make_session(alice.id) for _ in range(3)]
    theirs = make_session(bob.id)
    for record in [*mine, theirs]:
        await store.put_session(record)
    assert await store.delete_user_sessions(alice.id, keep=mine[0].id_hash) == 2
    assert await store.list_user_sessions(alice.id) == [mine[0]]
    assert await store.delete_user_sessions(alice.id) == 1
    assert await store.list_user_sessions(alice.id) == []
    assert await store.get_session(theirs.id_hash) == theirs
    assert await store.delete_user_sessions("nobody") == 0


async def test_list_user_sessions_newest_first_and_only_theirs(store: Store) -> None:
    """list_user_sessions returns that user's sessions, newest first."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    sessions = [make_session(alice.id, created_at=T0 + n) for n in (5, 1, 9, 3)]
    for record in [*sessions, make_session(bob.id, created_at=T0 + 7)]:
        await store.put_session(record)
    listed = await store.list_user_sessions(alice.id)
    assert listed == sorted(sessions, key=lambda r: r.created_at, reverse=True)
    assert await store.list_user_sessions("nobody") == []


async def test_purge_removes_idle_or_absolute_expired_only(store: Store) -> None:
    """purge deletes sessions past either expiry (at now counts as past), keeps the rest."""
    user = await add_user(store)
    now = T0 + 1000
    live = make_session(user.id, idle_expires_at=now + 1, absolute_expires_at=now + 100)
    expired = [
        make_session(user.id, idle_expires_at=now - 1, absolute_expires_at=now + 100),
        make_session(user.id, idle_expires_at=now + 1, absolute_expires_at=now - 0.001),
        make_session(user.id, idle_expires_at=now, absolute_expires_at=now + 100),
    ]
    for record in [live, *expired]:
        await store.put_session(record)
    assert await store.purge_expired_sessions(now) == 3
    assert await store.list_user_sessions(user.id) == [live]
    assert await store.purge_expired_sessions(now) == 0


async def test_purge_respects_limit(store: Store) -> None:
    """purge deletes at most ``limit`` sessions per call."""
    user = await add_user(store)
    for _ in range(5):
        await store.put_session(make_session(user.id, idle_expires_at=T0 - 1))
    assert await store.purge_expired_sessions(T0, limit=2) == 2
    assert len(await store.list_user_sessions(user.id)) == 3
    assert await store.purge_expired_sessions(T0, limit=10) == 3


async def test_concurrent_puts_all_persist(store: Store) -> None:
    """200 concurrent put_session calls all land."""
    user = await add_user(store)
    records = [make_session(user.id, created_at=T0 + n) for n in range(200)]
    await asyncio.gather(*(store.put_session(r) for r in records))
    for record in records:
        assert await store.get_session(record.id_hash) == record
    assert len(await store.list_user_sessions(user.id)) == 200


# -- signing keys --------------------------------------------------------------------------


async def test_keys_listed_oldest_first(store: Store) -> None:
    """list_keys returns every key exactly as stored, oldest first."""
    keys = [
        make_key("k-new", T0 + 20, state="verify"),
        make_key("k-old", T0, state="retired", retire_after=T0 + 5.5),
        make_key("k-mid", T0 + 10),
    ]
    for key in keys:
        await store.add_key(key)
    assert await store.list_keys() == sorted(keys, key=lambda k: k.created_at)


async def test_no_keys_lists_empty(store: Store) -> None:
    """An empty key table lists as []."""
    assert await store.list_keys() == []


async def test_duplicate_kid_conflicts(store: Store) -> None:
    """A second key with a taken kid is refused and the first is untouched."""
    key = make_key("k1")
    await store.add_key(key)
    with pytest.raises(Conflict):
        await store.add_key(make_key("k1", T0 + 1, material=b"other"))
    assert await store.list_keys() == [key]


async def test_set_key_state_moves_state_and_retire_after(store: Store) -> None:
    """set_key_state changes state and retire_after, and can clear retire_after."""
    key = make_key("k1")
    await store.add_key(key)
    await store.set_key_state("k1", "verify", T0 + 3600.5)
    assert await store.list_keys() == [
        dataclasses.replace(key, state="verify", retire_after=T0 + 3600.5)
    ]
    await store.set_key_state("k1", "active", None)
    assert await store.list_keys() == [key]


async def test_ping_answers(store: Store) -> None:
    """An open store answers ping."""
    await store.ping()
