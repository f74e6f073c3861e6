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
    make_user,
    new_id_hash,
)

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


async def test_set_locked_locks_and_unlocks(store: Store) -> None:
    """set_locked flips the flag (True if the user exists) and touches nothing else."""
    user = await add_user(store)
    assert await store.set_locked(user.id, True) is True
    assert await store.get_user(user.id) == dataclasses.replace(user, locked=True)
    assert await store.set_locked(user.id, True) is True  # already locked: still a match
    assert await store.set_locked(user.id, False) is True
    assert await store.get_user(user.id) == user


async def test_set_locked_unknown_user_is_false(store: Store) -> None:
    """set_locked on an unknown id is False and creates nothing."""
    assert await store.set_locked("nobody", True) is False
    assert await store.get_user("nobody") is None


async def test_set_roles_replaces_roles_in_order(store: Store) -> None:
    """set_roles replaces the roles, order kept, can clear them, and moves the privilege
    epoch."""
    user = await add_user(store, roles=("admin",))
    other = await add_user(store, 1, roles=("admin",))
    assert await store.set_roles(user.id, ("b", "a", "c"), T0 + 5) is True
    assert await store.get_user(user.id) == dataclasses.replace(
        user, roles=("b", "a", "c"), roles_changed_at=T0 + 5
    )
    assert await store.set_roles(user.id, (), T0 + 6) is True
    assert await store.get_user(user.id) == dataclasses.replace(
        user, roles=(), roles_changed_at=T0 + 6
    )
    assert await store.get_user(other.id) == other


async def test_set_roles_epoch_only_moves_forward(store: Store) -> None:
    """A change stamped no later than the current epoch still moves it (just past it), so
    two changes in one instant are two epochs."""
    user = await add_user(store)
    assert await store.set_roles(user.id, ("a",), T0 + 5) is True
    assert await store.set_roles(user.id, ("b",), T0 + 5) is True
    second = await store.get_user(user.id)
    assert second is not None
    assert second.roles_changed_at > T0 + 5
    assert await store.set_roles(user.id, ("c",), T0) is True
    third = await store.get_user(user.id)
    assert third is not None
    assert third.roles_changed_at > second.roles_changed_at


async def test_set_roles_unknown_user_is_false(store: Store) -> None:
    """set_roles on an unknown id is False."""
    assert await store.set_roles("nobody", ("admin",), T0 + 7) is False
    assert await store.get_user("nobody") is None


async def test_set_email_moves_the_address(store: Store) -> None:
    """set_email: the user is found under the new address only, nothing else of theirs
    changes, other users are untouched, and the old address is free for someone else."""
    user, other = await add_user(store), await add_user(store, 1)
    assert await store.set_email(user.id, "moved@example.test") is True
    moved = dataclasses.replace(user, email="moved@example.test")
    assert await store.get_user(user.id) == moved
    assert await store.get_user_by_email("moved@example.test") == moved
    assert await store.get_user_by_email(user.email) is None
    assert await store.get_user_by_email(other.email) == other
    newcomer = await add_user(store, 2, email=user.email)
    assert await store.get_user_by_email(user.email) == newcomer


async def test_set_email_to_another_users_address_conflicts(store: Store) -> None:
    """Taking another user's address is a Conflict that changes neither user."""
    user, other = await add_user(store), await add_user(store, 1)
    with pytest.raises(Conflict):
        await store.set_email(user.id, other.email)
    assert await store.get_user(user.id) == user
    assert await store.get_user_by_email(user.email) == user
    assert await store.get_user(other.id) == other
    assert await store.get_user_by_email(other.email) == other


async def test_set_email_of_unknown_user_is_false(store: Store) -> None:
    """set_email on an unknown id is False, creates nothing and claims no address."""
    assert await store.set_email("nobody", "nobody@example.test") is False
    assert await store.get_user("nobody") is None
    assert await store.get_user_by_email("nobody@example.test") is None
    await add_user(store, email="nobody@example.test")


async def test_set_email_to_the_same_address_is_a_no_op(store: Store) -> None:
    """Setting the address a user already has is True and changes nothing."""
    user = await add_user(store)
    assert await store.set_email(user.id, user.email) is True
    assert await store.get_user(user.id) == user
    assert await store.get_user_by_email(user.email) == user


async def test_concurrent_moves_to_one_address_admit_one(store: Store) -> None:
    """Racing set_email calls of several users to one address: exactly one wins; the
    others get Conflict and keep their own address."""
    users = [await add_user(store, n) for n in range(5)]
    results = await asyncio.gather(
        *(store.set_email(u.id, "race@example.test") for u in users), return_exceptions=True
    )
    assert sum(r is True for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not True)
    winner = users[results.index(True)]
    assert await store.get_user_by_email("race@example.test") == dataclasses.replace(
        winner, email="race@example.test"
    )
    for user in users:
        if user is not winner:
            assert await store.get_user_by_email(user.email) == user


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


async def test_session_and_user_in_one_read(store: Store) -> None:
    """get_session_and_user returns both records as stored, and the user's current state
    (a later lock or role change shows)."""
    user = await add_user(store)
    record = make_session(user.id)
    await store.put_session(record)
    assert await store.get_session_and_user(record.id_hash) == (record, user)
    await store.set_locked(user.id, True)
    await store.set_roles(user.id, ("user", "admin"), T0 + 5)
    found = await store.get_session_and_user(record.id_hash)
    assert found is not None
    assert found[1] == await store.get_user(user.id)
    assert found[1].locked
    assert found[1].roles == ("user", "admin")
    assert await store.get_session_and_user(new_id_hash()) is None
    await store.delete_session(record.id_hash)
    assert await store.get_session_and_user(record.id_hash) is None


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


async def test_list_live_sessions_filters_expired_and_orders_by_last_seen(store: Store) -> None:
    """Only sessions with both expiries after now, most recently seen first, ties by
    id_hash descending."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    now = T0 + 1000
    live = [
        make_session(alice.id, last_seen_at=T0 + 5, idle_expires_at=now + 1),
        make_session(bob.id, last_seen_at=T0 + 9),
        make_session(alice.id, last_seen_at=T0 + 7, absolute_expires_at=now + 0.5),
        make_session(bob.id, last_seen_at=T0 + 7),
    ]
    dead = [
        make_session(alice.id, last_seen_at=T0 + 20, idle_expires_at=now),
        make_session(bob.id, last_seen_at=T0 + 20, absolute_expires_at=now),
        make_session(alice.id, last_seen_at=T0 + 20, idle_expires_at=now - 1),
    ]
    for record in [*live, *dead]:
        await store.put_session(record)
    listed = await store.list_live_sessions(now)
    assert listed == sorted(live, key=lambda r: (r.last_seen_at, r.id_hash), reverse=True)
    assert await store.list_live_sessions(now, limit=2) == listed[:2]
    assert await store.list_live_sessions(now, limit=2, offset=2) == listed[2:]
    assert await store.list_live_sessions(now, offset=4) == []
    assert await store.list_live_sessions(T0 + 10**9) == []


async def test_list_live_sessions_refuses_negative_paging(store: Store) -> None:
    """A negative limit or offset is a ValueError, never "everything"."""
    with pytest.raises(ValueError, match="negative"):
        await store.list_live_sessions(T0, limit=-1)
    with pytest.raises(ValueError, match="negative"):
        await store.list_live_sessions(T0, offset=-1)


# -- refresh-token families ----------------------------------------------------------------


async def test_create_family_stores_family_and_first_token(store: Store) -> None:
    """A new family and its first token come back exactly as stored."""
    user = await add_user(store)
    family = make_family(user.id, client_address=None, user_agent=None, created_at=T0 + 0.125)
    first = make_refresh_token(family.id, created_at=T0 + 0.125)
    await store.create_family(family, first)
    assert await store.get_family(family.id) == family
    assert await store.get_refresh_token(first.hash) == first


async def test_create_family_is_all_or_nothing(store: Store) -> None:
    """A first token that cannot be stored leaves no family behind (one transaction)."""
    user = await add_user(store)
    _, first = await add_family(store, user.id, 1)
    second = make_family(user.id, 2)
    with pytest.raises(Exception):  # noqa: B017, PT011 - a duplicate hash is a caller bug
        await store.create_family(second, make_refresh_token(second.id, hash=first.hash))
    assert await store.get_family(second.id) is None
    assert await store.get_refresh_token(first.hash) == first


async def test_missing_family_and_token_are_none(store: Store) -> None:
    """Unknown ids and hashes give None."""
    assert await store.get_family("nope") is None
    assert await store.get_refresh_token(new_id_hash()) is None


async def test_spend_rotates_once(store: Store) -> None:
    """Spending an unspent token marks it, stores the successor and slides the family."""
    user = await add_user(store)
    family, first = await add_family(store, user.id)
    successor = make_refresh_token(family.id, created_at=T0 + 60.5)
    assert await store.spend_refresh_token(first.hash, successor, T0 + 60.5, T0 + 9000.5)
    assert await store.get_refresh_token(first.hash) == dataclasses.replace(
        first, spent_at=T0 + 60.5, successor_hash=successor.hash
    )
    assert await store.get_refresh_token(successor.hash) == successor
    assert await store.get_family(family.id) == dataclasses.replace(
        family, last_used_at=T0 + 60.5, idle_expires_at=T0 + 9000.5
    )


async def test_spend_of_a_spent_token_changes_nothing(store: Store) -> None:
    """A reused token is refused: False, no new successor, the family stays put (T8)."""
    user = await add_user(store)
    family, first = await add_family(store, user.id)
    successor = make_refresh_token(family.id, created_at=T0 + 60)
    assert await store.spend_refresh_token(first.hash, successor, T0 + 60, T0 + 9000) is True
    spent = await store.get_refresh_token(first.hash)
    moved = await store.get_family(family.id)
    replay = make_refresh_token(family.id, created_at=T0 + 120)
    assert await store.spend_refresh_token(first.hash, replay, T0 + 120, T0 + 9999) is False
    assert await store.get_refresh_token(replay.hash) is None
    assert await store.get_refresh_token(first.hash) == spent
    assert await store.get_family(family.id) == moved


async def test_spend_of_an_unknown_token_changes_nothing(store: Store) -> None:
    """A token the store never saw is refused and no successor appears."""
    user = await add_user(store)
    family, first = await add_family(store, user.id)
    successor = make_refresh_token(family.id, created_at=T0 + 60)
    assert await store.spend_refresh_token(new_id_hash(), successor, T0 + 60, T0 + 9000) is False
    assert await store.get_refresh_token(successor.hash) is None
    assert await store.get_refresh_token(first.hash) == first
    assert await store.get_family(family.id) == family


async def test_concurrent_spends_of_one_token_admit_one(store: Store) -> None:
    """50 racing spends of one token: exactly one wins and one successor exists (T8)."""
    user = await add_user(store)
    family, first = await add_family(store, user.id)
    successors = [make_refresh_token(family.id, created_at=T0 + n) for n in range(50)]
    results = await asyncio.gather(
        *(store.spend_refresh_token(first.hash, s, s.created_at, T0 + 9000) for s in successors)
    )
    assert results.count(True) == 1
    assert results.count(False) == 49
    stored = [s for s in successors if await store.get_refresh_token(s.hash) is not None]
    winner = successors[results.index(True)]
    assert stored == [winner]
    spent = await store.get_refresh_token(first.hash)
    assert spent is not None
    assert spent.successor_hash == winner.hash
    assert spent.spent_at == winner.created_at


async def test_successor_can_be_spent_in_turn(store: Store) -> None:
    """Rotation chains: the successor is itself unspent and spendable once."""
    user = await add_user(store)
    family, first = await add_family(store, user.id)
    second = make_refresh_token(family.id, created_at=T0 + 1)
    third = make_refresh_token(family.id, created_at=T0 + 2)
    assert await store.spend_refresh_token(first.hash, second, T0 + 1, T0 + 100) is True
    assert await store.spend_refresh_token(second.hash, third, T0 + 2, T0 + 200) is True
    assert await store.spend_refresh_token(second.hash, third, T0 + 3, T0 + 300) is False
    fetched = await store.get_family(family.id)
    assert fetched is not None
    assert (fetched.last_used_at, fetched.idle_expires_at) == (T0 + 2, T0 + 200)


async def test_delete_family_deletes_its_tokens(store: Store) -> None:
    """delete_family is True once; the family's tokens go with it, other families stay."""
    user = await add_user(store)
    family, first = await add_family(store, user.id, 1)
    other, other_first = await add_family(store, user.id, 2)
    successor = make_refresh_token(family.id, created_at=T0 + 5)
    assert await store.spend_refresh_token(first.hash, successor, T0 + 5, T0 + 500) is True
    assert await store.delete_family(family.id) is True
    assert await store.get_family(family.id) is None
    assert await store.get_refresh_token(first.hash) is None
    assert await store.get_refresh_token(successor.hash) is None
    assert await store.delete_family(family.id) is False
    assert await store.get_family(other.id) == other
    assert await store.get_refresh_token(other_first.hash) == other_first


async def test_delete_user_families_spares_keep_and_other_users(store: Store) -> None:
    """delete_user_families returns the deleted ids and spares keep and other users."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    mine = [(await add_family(store, alice.id, n))[0] for n in range(3)]
    theirs, theirs_first = await add_family(store, bob.id)
    deleted = await store.delete_user_families(alice.id, keep=mine[1].id)
    assert sorted(deleted) == sorted([mine[0].id, mine[2].id])
    assert await store.list_user_families(alice.id) == [mine[1]]
    assert await store.delete_user_families(alice.id) == [mine[1].id]
    assert await store.list_user_families(alice.id) == []
    assert await store.delete_user_families(alice.id) == []
    assert await store.get_family(theirs.id) == theirs
    assert await store.get_refresh_token(theirs_first.hash) == theirs_first


async def test_renew_session_retires_the_old_id_and_adds_the_new(store: Store) -> None:
    """renew_session gives the old record the new epoch, a link to the new one and both
    expiries cut to the grace, stores the new one, and does so once: a renewed record is
    never renewed again, not even to a later epoch."""
    user = await add_user(store)
    old = make_session(user.id, roles_changed_at=T0)
    await store.put_session(old)
    new = make_session(user.id, roles_changed_at=T0 + 10)
    assert await store.renew_session(old.id_hash, new, T0 + 5) is True
    assert await store.get_session(new.id_hash) == new
    assert await store.get_session(old.id_hash) == dataclasses.replace(
        old,
        roles_changed_at=T0 + 10,
        idle_expires_at=T0 + 5,
        absolute_expires_at=T0 + 5,
        renewed_to=new.id_hash,
    )
    for epoch in (T0 + 10, T0 + 20):
        again = make_session(user.id, roles_changed_at=epoch)
        assert await store.renew_session(old.id_hash, again, T0 + 5) is False
        assert await store.get_session(again.id_hash) is None


async def test_renew_session_of_a_missing_session_stores_nothing(store: Store) -> None:
    user = await add_user(store)
    new = make_session(user.id, roles_changed_at=T0 + 10)
    assert await store.renew_session(new_id_hash(), new, T0 + 5) is False
    assert await store.get_session(new.id_hash) is None


async def test_concurrent_renewals_of_one_session_admit_one(store: Store) -> None:
    user = await add_user(store)
    old = make_session(user.id, roles_changed_at=T0)
    await store.put_session(old)
    candidates = [make_session(user.id, roles_changed_at=T0 + 10) for _ in range(20)]
    results = await asyncio.gather(
        *(store.renew_session(old.id_hash, new, T0 + 5) for new in candidates)
    )
    assert sorted(results) == [False] * 19 + [True]
    stored = [await store.get_session(new.id_hash) for new in candidates]
    assert sum(record is not None for record in stored) == 1


async def test_delete_all_sessions_and_families_of_everyone(store: Store) -> None:
    """The global logout empties both tables, tokens included, and counts what it ended."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    for user in (alice, bob):
        await store.put_session(make_session(user.id))
    _, first = await add_family(store, alice.id)
    await add_family(store, bob.id)
    assert await store.delete_all_sessions() == 2
    assert await store.delete_all_families() == 2
    assert await store.list_user_sessions(alice.id) == []
    assert await store.list_user_families(bob.id) == []
    assert await store.get_refresh_token(first.hash) is None
    assert await store.get_user(alice.id) == alice
    assert await store.delete_all_sessions() == 0


async def test_delete_user_families_deletes_their_tokens(store: Store) -> None:
    """The tokens of families deleted with the user's go too."""
    user = await add_user(store)
    _, first = await add_family(store, user.id)
    await store.delete_user_families(user.id)
    assert await store.get_refresh_token(first.hash) is None


async def test_list_user_families_newest_first(store: Store) -> None:
    """list_user_families returns only that user's families, newest first."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    families = [(await add_family(store, alice.id, n))[0] for n in (5, 1, 9, 3)]
    await add_family(store, bob.id, 7)
    listed = await store.list_user_families(alice.id)
    assert listed == sorted(families, key=lambda f: f.created_at, reverse=True)
    assert await store.list_user_families("nobody") == []


async def test_list_live_families_filters_expired_and_orders_by_last_use(store: Store) -> None:
    """Only families with both expiries after now, most recently used first, ties by id
    descending."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    now = T0 + 1000
    live = [
        (await add_family(store, alice.id, 1, last_used_at=T0 + 5, idle_expires_at=now + 1))[0],
        (await add_family(store, bob.id, 2, last_used_at=T0 + 9))[0],
        # Stored in ascending id order, so an order by insertion would show.
        (await add_family(store, bob.id, 4, last_used_at=T0 + 7))[0],
        (await add_family(store, alice.id, 3, last_used_at=T0 + 7))[0],
    ]
    await add_family(store, alice.id, 5, last_used_at=T0 + 20, idle_expires_at=now)
    await add_family(store, bob.id, 6, last_used_at=T0 + 20, absolute_expires_at=now - 1)
    listed = await store.list_live_families(now)
    assert listed == [live[1], live[2], live[3], live[0]]
    assert live[2].id > live[3].id
    assert await store.list_live_families(now, limit=2) == listed[:2]
    assert await store.list_live_families(now, limit=2, offset=2) == listed[2:]
    assert await store.list_live_families(T0 + 10**9) == []
    with pytest.raises(ValueError, match="negative"):
        await store.list_live_families(now, limit=-1)


async def test_purge_expired_families_deletes_them_and_their_tokens(store: Store) -> None:
    """purge deletes families past either expiry (at now counts), with their tokens."""
    user = await add_user(store)
    now = T0 + 1000
    live, live_first = await add_family(store, user.id, 0, idle_expires_at=now + 1)
    expired = [
        await add_family(store, user.id, 1, idle_expires_at=now),
        await add_family(store, user.id, 2, absolute_expires_at=now - 0.001),
    ]
    assert await store.purge_expired_families(now) == 2
    assert await store.list_user_families(user.id) == [live]
    for _, first in expired:
        assert await store.get_refresh_token(first.hash) is None
    assert await store.get_refresh_token(live_first.hash) == live_first
    assert await store.purge_expired_families(now) == 0


async def test_purge_expired_families_respects_limit(store: Store) -> None:
    """purge deletes at most ``limit`` families per call."""
    user = await add_user(store)
    for n in range(5):
        await add_family(store, user.id, n, idle_expires_at=T0 - 1)
    assert await store.purge_expired_families(T0, limit=2) == 2
    assert len(await store.list_user_families(user.id)) == 3
    assert await store.purge_expired_families(T0, limit=10) == 3


# -- revocations ---------------------------------------------------------------------------


async def test_append_revocation_assigns_increasing_seq(store: Store) -> None:
    """Each appended entry comes back with a seq greater than every earlier one."""
    kinds = ("token", "family", "user", "key", "session")
    appended = [
        await store.append_revocation(make_revocation(f"s{n}", kind=kinds[n % 5]))
        for n in range(10)
    ]
    seqs = [r.seq for r in appended]
    assert seqs == sorted(set(seqs))
    assert seqs[0] > 0
    assert [dataclasses.replace(r, seq=0) for r in appended] == [
        make_revocation(f"s{n}", kind=kinds[n % 5]) for n in range(10)
    ]
    assert await store.revocations_after(0, T0) == appended


async def test_concurrent_revocations_get_distinct_seqs(store: Store) -> None:
    """Racing appends each get their own seq."""
    appended = await asyncio.gather(
        *(store.append_revocation(make_revocation(f"s{n}")) for n in range(50))
    )
    assert len({r.seq for r in appended}) == 50
    assert [r.seq for r in await store.revocations_after(0, T0)] == sorted(r.seq for r in appended)


async def test_revocations_after_filters_by_seq_and_expiry(store: Store) -> None:
    """Only entries after the seq and still in force (expires_at > now), in seq order."""
    now = T0 + 500
    first = await store.append_revocation(make_revocation("a", expires_at=now + 1))
    gone = await store.append_revocation(make_revocation("b", expires_at=now))
    third = await store.append_revocation(make_revocation("c", kind="user", at=T0 + 3.5))
    assert gone.seq > first.seq
    assert await store.revocations_after(0, now) == [first, third]
    assert await store.revocations_after(first.seq, now) == [third]
    assert await store.revocations_after(third.seq, now) == []
    assert await store.revocations_after(0, now, limit=1) == [first]
    assert await store.revocations_after(0, T0 - 1) == [first, gone, third]


async def test_purge_expired_revocations_is_bounded(store: Store) -> None:
    """purge deletes entries expired at or before now, at most ``limit`` per call."""
    now = T0 + 500
    for n in range(5):
        await store.append_revocation(make_revocation(f"old{n}", expires_at=now - n))
    live = await store.append_revocation(make_revocation("live", expires_at=now + 1))
    assert await store.purge_expired_revocations(now, limit=2) == 2
    assert len(await store.revocations_after(0, T0)) == 4
    assert await store.purge_expired_revocations(now) == 3
    assert await store.revocations_after(0, T0) == [live]
    assert await store.purge_expired_revocations(now) == 0


async def test_revocation_seq_is_never_reused_after_a_purge(store: Store) -> None:
    """Purging the newest entry does not hand its seq to the next one (followers would
    skip the new entry)."""
    await store.append_revocation(make_revocation("a", expires_at=T0 + 1))
    newest = await store.append_revocation(make_revocation("b", expires_at=T0 + 1))
    assert await store.purge_expired_revocations(T0 + 2) == 2
    following = await store.append_revocation(make_revocation("c", expires_at=T0 + 10))
    assert following.seq > newest.seq
    assert await store.revocations_after(newest.seq, T0) == [following]


async def test_revocation_listener_hears_appends(store: Store) -> None:
    """A backend with push wakes a listener after each append, and only then; one with
    none (SQLite) says so with None and its followers poll."""
    listener = await store.listen_revocations()
    if listener is None:
        return
    try:
        assert await listener.wait(0.05) is False
        await store.append_revocation(make_revocation("a"))
        assert await listener.wait(5) is True
        assert await listener.wait(0.05) is False
        await store.append_revocation(make_revocation("b"))
        await store.append_revocation(make_revocation("c"))
        assert await listener.wait(5) is True
    finally:
        await listener.close()


async def test_concurrent_appends_become_visible_in_seq_order(store: Store) -> None:
    """While appends race, a reader that has seen some seq never later finds an entry
    below it (a follower reading "seq > last" would skip that entry for good)."""
    seen: list[int] = []
    done = False

    async def follow() -> None:
        last = 0
        while not done:
            for entry in await store.revocations_after(last, T0):
                seen.append(entry.seq)
                last = entry.seq
            await asyncio.sleep(0)

    follower = asyncio.create_task(follow())
    appended = await asyncio.gather(
        *(store.append_revocation(make_revocation(f"s{n}")) for n in range(200))
    )
    done = True
    await follower
    seen.extend(entry.seq for entry in await store.revocations_after(max(seen, default=0), T0))
    assert sorted(seen) == sorted(entry.seq for entry in appended)


async def test_revocation_paging_refuses_negative_limit(store: Store) -> None:
    """A negative limit is a ValueError, never "everything"."""
    with pytest.raises(ValueError, match="negative"):
        await store.revocations_after(0, T0, limit=-1)
    with pytest.raises(ValueError, match="negative"):
        await store.purge_expired_revocations(T0, limit=-1)


# -- audit ---------------------------------------------------------------------------------


async def test_audit_round_trip_with_detail(store: Store) -> None:
    """An event comes back equal, nested JSON detail and all, with its seq."""
    event = make_audit(
        "role_change",
        at=T0 + 0.5,
        user_id="user-1",
        actor_id="admin-1",
        client_address=None,
        detail={"roles": ["admin", "b"], "n": 3, "ok": True, "x": None, "ü": {"f": 1.5}},
    )
    seq = await store.append_audit(event)
    assert await store.list_audit() == [dataclasses.replace(event, seq=seq)]


async def test_audit_seq_strictly_increases(store: Store) -> None:
    """append_audit returns strictly increasing seqs."""
    seqs = [await store.append_audit(make_audit(at=T0 + n)) for n in range(5)]
    assert seqs == sorted(set(seqs))


async def test_list_audit_pages_newest_first(store: Store) -> None:
    """Newest first; ``before`` and ``limit`` page backwards through the log."""
    seqs = [await store.append_audit(make_audit(f"k{n}", at=T0 + n)) for n in range(7)]
    page = await store.list_audit(limit=3)
    assert [e.seq for e in page] == seqs[:-4:-1]
    assert [e.kind for e in page] == ["k6", "k5", "k4"]
    page = await store.list_audit(before=page[-1].seq, limit=3)
    assert [e.seq for e in page] == seqs[3:0:-1]
    page = await store.list_audit(before=page[-1].seq, limit=3)
    assert [e.seq for e in page] == seqs[:1]
    assert await store.list_audit(before=seqs[0]) == []


async def test_list_audit_filters_by_user_as_subject_or_actor(store: Store) -> None:
    """user_id matches events about the user and events the user did."""
    about = await store.append_audit(make_audit("login", user_id="alice"))
    other = await store.append_audit(make_audit("login", user_id="bob"))
    did = await store.append_audit(make_audit("lock", user_id="bob", actor_id="alice"))
    await store.append_audit(make_audit("boot"))
    assert [e.seq for e in await store.list_audit(user_id="alice")] == [did, about]
    assert [e.seq for e in await store.list_audit(user_id="bob")] == [did, other]
    assert [e.seq for e in await store.list_audit(user_id="alice", before=did)] == [about]
    assert await store.list_audit(user_id="nobody") == []


async def test_list_audit_filters_by_kind(store: Store) -> None:
    """kind narrows to one kind, alone or together with user_id."""
    a = await store.append_audit(make_audit("login", user_id="alice"))
    await store.append_audit(make_audit("logout", user_id="alice"))
    b = await store.append_audit(make_audit("login", user_id="bob"))
    c = await store.append_audit(make_audit("login", actor_id="alice"))
    assert [e.seq for e in await store.list_audit(kind="login")] == [c, b, a]
    assert [e.seq for e in await store.list_audit(kind="login", user_id="alice")] == [c, a]
    assert [e.seq for e in await store.list_audit(kind="login", limit=1, before=c)] == [b]
    assert await store.list_audit(kind="nothing") == []


@pytest.mark.parametrize("limit", [0, -1, 1001], ids=["zero", "negative", "too-many"])
async def test_list_audit_refuses_bad_limits(store: Store, limit: int) -> None:
    """limit must be 1..1000."""
    with pytest.raises(ValueError, match="limit"):
        await store.list_audit(limit=limit)


# -- clients -------------------------------------------------------------------------------


async def test_clients_add_get_list_delete(store: Store) -> None:
    """Clients round-trip exactly, list oldest first, delete once."""
    clients = [make_client(2), make_client(0), make_client(1, secret_hash=b"\x00" * 32)]
    for client in clients:
        await store.add_client(client)
    assert await store.get_client("client-1") == clients[2]
    assert await store.get_client("nobody") is None
    assert await store.list_clients() == sorted(clients, key=lambda c: c.created_at)
    assert await store.delete_client("client-0") is True
    assert await store.delete_client("client-0") is False
    assert await store.get_client("client-0") is None
    assert [c.id for c in await store.list_clients()] == ["client-1", "client-2"]


async def test_no_clients_lists_empty(store: Store) -> None:
    """An empty client table lists as []."""
    assert await store.list_clients() == []


async def test_duplicate_client_name_or_id_conflicts(store: Store) -> None:
    """A taken name or id is a Conflict and the first client is untouched."""
    first = make_client(1)
    await store.add_client(first)
    with pytest.raises(Conflict, match="client"):
        await store.add_client(make_client(2, name=first.name))
    with pytest.raises(Conflict, match="client"):
        await store.add_client(make_client(1, name="another"))
    assert await store.list_clients() == [first]


# -- failed logins -------------------------------------------------------------------------

FORGET = 900.0


async def test_record_failure_counts_per_key(store: Store) -> None:
    """Failures on one key count 1, 2, 3; another key counts on its own."""
    counts = [await store.record_failure("account:user-0", T0 + n, FORGET) for n in range(3)]
    assert counts == [1, 2, 3]
    assert await store.record_failure("address:192.0.2.1", T0 + 3, FORGET) == 1
    assert await store.record_failure("account:user-0", T0 + 4, FORGET) == 4


async def test_record_failure_forgets_after_the_window(store: Store) -> None:
    """A failure exactly forget_after after the previous one still counts on; one later
    than that starts again at 1 (SECURITY.md P3: nobody is locked out for good)."""
    key = "account:user-0"
    assert await store.record_failure(key, T0, FORGET) == 1
    assert await store.record_failure(key, T0 + FORGET, FORGET) == 2
    later = T0 + 2 * FORGET + 0.001
    assert await store.record_failure(key, later, FORGET) == 1
    assert await store.record_failure(key, later + 1, FORGET) == 2
    assert await store.get_failures([key], later + 1, FORGET) == {key: (2, later + 1)}


async def test_get_failures_returns_requested_keys_in_the_window(store: Store) -> None:
    """get_failures gives each requested key whose last failure is at or after
    now - forget_after, with its exact count and time; stale, unknown and unrequested
    keys are absent."""
    now = T0 + 5000
    await store.record_failure("fresh", now - 10.25, FORGET)
    await store.record_failure("fresh", now - 0.125, FORGET)
    await store.record_failure("edge", now - FORGET, FORGET)
    await store.record_failure("stale", now - FORGET - 0.001, FORGET)
    await store.record_failure("unrequested", now, FORGET)
    got = await store.get_failures(["fresh", "edge", "stale", "unknown"], now, FORGET)
    assert got == {"fresh": (2, now - 0.125), "edge": (1, now - FORGET)}
    assert all(type(count) is int and type(at) is float for count, at in got.values())


async def test_get_failures_of_no_keys_is_empty(store: Store) -> None:
    """An empty list of keys gives {}."""
    await store.record_failure("account:user-0", T0, FORGET)
    assert await store.get_failures([], T0, FORGET) == {}


async def test_get_failures_of_many_keys(store: Store) -> None:
    """Thousands of keys in one call (more than SQLite's 999 bound variables of old)."""
    keys = [f"address:198.51.100.{n}" for n in range(2000)]
    await store.record_failure(keys[1234], T0, FORGET)
    assert await store.get_failures(keys, T0, FORGET) == {keys[1234]: (1, T0)}


async def test_clear_failures_forgets_one_key(store: Store) -> None:
    """clear_failures drops the key's counter (its next failure counts 1) and no other;
    clearing a key without failures is no error."""
    await store.record_failure("a", T0, FORGET)
    await store.record_failure("a", T0, FORGET)
    await store.record_failure("b", T0, FORGET)
    await store.clear_failures("a")
    await store.clear_failures("never-failed")
    assert await store.get_failures(["a", "b"], T0, FORGET) == {"b": (1, T0)}
    assert await store.record_failure("a", T0 + 1, FORGET) == 1


async def test_purge_stale_failures_deletes_only_stale_ones(store: Store) -> None:
    """purge_stale_failures deletes counters whose last failure is before ``before``, at
    most ``limit`` per call, and keeps the rest. A backend whose counters expire by
    themselves (Redis) may report 0; stale counters are never read back either way."""
    stale = [f"stale-{n}" for n in range(5)]
    for n, key in enumerate(stale):
        await store.record_failure(key, T0 + n, FORGET)
    await store.record_failure("edge", T0 + 10, FORGET)
    await store.record_failure("fresh", T0 + 20, FORGET)
    before = T0 + 10
    with pytest.raises(ValueError, match="negative"):
        await store.purge_stale_failures(before, limit=-1)
    deleted = [await store.purge_stale_failures(before, limit=2) for _ in range(4)]
    assert deleted in ([2, 2, 1, 0], [0, 0, 0, 0])
    keys = [*stale, "edge", "fresh"]
    kept = {"edge": (1, T0 + 10), "fresh": (1, T0 + 20)}
    assert await store.get_failures(keys, before + FORGET, FORGET) == kept
    if deleted[0]:
        # Gone for good: even a window reaching back to them finds nothing.
        assert await store.get_failures(keys, T0 + 20, 10 * FORGET) == kept


async def test_concurrent_failures_on_one_key_count_each_once(store: Store) -> None:
    """50 concurrent record_failure calls on one fresh key return exactly 1..50: none is
    lost or counted twice, so a burst of guesses cannot slip under a limit (P3)."""
    counts = await asyncio.gather(
        *(store.record_failure("account:burst", T0, FORGET) for _ in range(50))
    )
    assert sorted(counts) == list(range(1, 51))
    assert await store.get_failures(["account:burst"], T0, FORGET) == {"account:burst": (50, T0)}


# -- scoped tokens -------------------------------------------------------------------------


async def test_scoped_token_round_trip_is_exact(store: Store) -> None:
    """A scoped token comes back equal: scopes in their order, no last use, exact times."""
    user = await add_user(store)
    record = make_scoped_token(
        user.id,
        name="Backup app ünïcode",
        scopes=("write", "read", "reports:export"),
        secret_hash=b"\x00" + new_id_hash()[1:],
        password_changed_at=T0 + 0.125,
        created_at=T0 + 1.000001,
        expires_at=T0 + 7776000.5,
    )
    await store.add_scoped_token(record)
    fetched = await store.get_scoped_token(record.id)
    assert fetched == record
    assert fetched is not None
    assert fetched.scopes == ("write", "read", "reports:export")
    assert fetched.last_used_at is None


async def test_unknown_scoped_token_is_none(store: Store) -> None:
    """An unknown id gives None, not an error."""
    user = await add_user(store)
    await add_scoped_token(store, user.id)
    assert await store.get_scoped_token("tfs_nobody") is None


async def test_list_scoped_tokens_only_theirs_unexpired_newest_first(store: Store) -> None:
    """list_scoped_tokens gives the user's tokens whose expiry is after now (at now counts
    as expired), newest created first, ties by id descending; expired ones can still be
    read one by one."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    now = T0 + 1000
    live = [await add_scoped_token(store, alice.id, n, expires_at=now + n) for n in (5, 1, 9, 3)]
    # Equal creation times: the order falls back to the id (same length, lower case, so
    # every collation agrees).
    tied = [await add_scoped_token(store, alice.id, 4, id=f"tfs_tied_{letter}") for letter in "bca"]
    expired = [
        await add_scoped_token(store, alice.id, 20, expires_at=now),
        await add_scoped_token(store, alice.id, 21, expires_at=now - 0.001),
    ]
    await add_scoped_token(store, bob.id, 30)
    listed = await store.list_scoped_tokens(alice.id, now)
    assert listed == sorted([*live, *tied], key=lambda r: (r.created_at, r.id), reverse=True)
    assert [r.id for r in listed if r.created_at == T0 + 4] == [
        "tfs_tied_c",
        "tfs_tied_b",
        "tfs_tied_a",
    ]
    for record in expired:
        assert await store.get_scoped_token(record.id) == record
    assert await store.list_scoped_tokens(alice.id, T0 + 10**9) == []
    assert await store.list_scoped_tokens("nobody", now) == []


async def test_touch_scoped_token_sets_last_used_at(store: Store) -> None:
    """touch_scoped_token sets last_used_at and nothing else; an unknown id is a no-op
    that creates nothing."""
    user = await add_user(store)
    record = await add_scoped_token(store, user.id)
    other = await add_scoped_token(store, user.id, 1)
    await store.touch_scoped_token(record.id, T0 + 60.5)
    assert await store.get_scoped_token(record.id) == dataclasses.replace(
        record, last_used_at=T0 + 60.5
    )
    await store.touch_scoped_token(record.id, T0 + 120.25)
    assert await store.get_scoped_token(record.id) == dataclasses.replace(
        record, last_used_at=T0 + 120.25
    )
    assert await store.get_scoped_token(other.id) == other
    await store.touch_scoped_token("tfs_nobody", T0)
    assert await store.get_scoped_token("tfs_nobody") is None


async def test_delete_scoped_token_of_another_user_deletes_nothing(store: Store) -> None:
    """With an owner given, a token of another user is not deleted (False); its owner
    deletes it once (True, then False)."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    record = await add_scoped_token(store, alice.id)
    assert await store.delete_scoped_token(record.id, bob.id) is False
    assert await store.delete_scoped_token(record.id, "nobody") is False
    assert await store.get_scoped_token(record.id) == record
    assert await store.list_scoped_tokens(alice.id, T0) == [record]
    assert await store.delete_scoped_token(record.id, alice.id) is True
    assert await store.get_scoped_token(record.id) is None
    assert await store.delete_scoped_token(record.id, alice.id) is False


async def test_delete_scoped_token_without_owner(store: Store) -> None:
    """Without an owner, delete_scoped_token deletes the token whoever owns it, once, and
    no other token."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    record = await add_scoped_token(store, alice.id)
    kept = await add_scoped_token(store, alice.id, 1)
    theirs = await add_scoped_token(store, bob.id)
    assert await store.delete_scoped_token(record.id) is True
    assert await store.get_scoped_token(record.id) is None
    assert await store.delete_scoped_token(record.id) is False
    assert await store.delete_scoped_token("tfs_nobody") is False
    assert await store.list_scoped_tokens(alice.id, T0) == [kept]
    assert await store.get_scoped_token(theirs.id) == theirs


async def test_delete_user_scoped_tokens_returns_exactly_their_ids(store: Store) -> None:
    """delete_user_scoped_tokens deletes every token of the user, expired ones too, and
    returns exactly their ids (sorted); other users' tokens stay."""
    alice, bob = await add_user(store, 1), await add_user(store, 2)
    mine = [await add_scoped_token(store, alice.id, n) for n in range(3)]
    mine.append(await add_scoped_token(store, alice.id, 3, expires_at=T0 - 1))
    theirs = await add_scoped_token(store, bob.id)
    assert await store.delete_user_scoped_tokens(alice.id) == sorted(r.id for r in mine)
    for record in mine:
        assert await store.get_scoped_token(record.id) is None
    assert await store.list_scoped_tokens(alice.id, T0 - 10) == []
    assert await store.delete_user_scoped_tokens(alice.id) == []
    assert await store.delete_user_scoped_tokens("nobody") == []
    assert await store.get_scoped_token(theirs.id) == theirs


async def test_purge_expired_scoped_tokens_is_bounded(store: Store) -> None:
    """purge deletes tokens whose expiry is at or before now, at most ``limit`` per
    call, and keeps the live ones."""
    user = await add_user(store)
    now = T0 + 1000
    expired = [await add_scoped_token(store, user.id, n, expires_at=now - n) for n in range(5)]
    live = await add_scoped_token(store, user.id, 9, expires_at=now + 0.001)
    with pytest.raises(ValueError, match="negative"):
        await store.purge_expired_scoped_tokens(now, limit=-1)
    assert await store.purge_expired_scoped_tokens(now, limit=2) == 2
    left = [r for r in expired if await store.get_scoped_token(r.id) is not None]
    assert len(left) == 3
    assert await store.purge_expired_scoped_tokens(now) == 3
    assert await store.purge_expired_scoped_tokens(now) == 0
    for record in expired:
        assert await store.get_scoped_token(record.id) is None
    assert await store.get_scoped_token(live.id) == live
    assert await store.list_scoped_tokens(user.id, now) == [live]


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
    assert await store.set_key_state("k1", "verify", T0 + 3600.5) is True
    assert await store.list_keys() == [
        dataclasses.replace(key, state="verify", retire_after=T0 + 3600.5)
    ]
    assert await store.set_key_state("k1", "active", None) is True
    assert await store.list_keys() == [key]


async def test_set_key_state_unknown_kid_is_false(store: Store) -> None:
    """set_key_state on an unknown kid is False and creates nothing."""
    assert await store.set_key_state("nope", "retired", T0) is False
    assert await store.list_keys() == []


async def test_ping_answers(store: Store) -> None:
    """An open store answers ping."""
    await store.ping()
