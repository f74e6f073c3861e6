"""Accounts on the real SQLite store: registration, login without enumeration, password change
(SECURITY.md P1, P2, P4)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from twofold.accounts import Accounts
from twofold.clock import FrozenClock
from twofold.errors import (
    AuthenticationFailed,
    InvalidEmail,
    InvalidRequest,
    ReauthenticationFailed,
    WeakPassword,
)
from twofold.passwords import ARGON2_PROFILES, PasswordHasher, PasswordPolicy
from twofold.store.records import User
from twofold.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0
EMAIL = "alice@example.com"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tr0ubadour and a new song"
OWASP_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"
RFC9106_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"


@pytest.fixture(scope="module")
def stronger_hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(ARGON2_PROFILES["rfc9106-low-memory"])
    yield hasher
    hasher.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def accounts(store: SQLiteStore, hasher: PasswordHasher, clock: FrozenClock) -> Accounts:
    return Accounts(store, hasher, PasswordPolicy(), clock)


async def registered(accounts: Accounts, email: str = EMAIL, password: str = PASSWORD) -> User:
    user = await accounts.register(email, password)
    assert user is not None
    return user


async def failure_of(work: Awaitable[object]) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as caught:
        await work
    return caught.value


# -- register ------------------------------------------------------------------------------


async def test_register_returns_the_stored_user(
    accounts: Accounts, store: SQLiteStore, hasher: PasswordHasher
) -> None:
    """register stores a user with a normalised e-mail, a fresh id and an Argon2id hash."""
    user = await registered(accounts, "  Alice@Example.COM ")
    assert user.email == EMAIL
    assert user.roles == ("user",)
    assert user.created_at == user.password_changed_at == T0
    assert user.locked is False
    assert user.password_hash.startswith(OWASP_PREFIX)
    assert PASSWORD not in user.password_hash
    assert await hasher.verify(user.password_hash, PASSWORD)
    assert await store.get_user(user.id) == user
    assert await store.get_user_by_email(EMAIL) == user


async def test_register_deduplicates_roles(accounts: Accounts) -> None:
    """Repeated roles are stored once, in order."""
    user = await accounts.register(EMAIL, PASSWORD, roles=("admin", "user", "admin"))
    assert user is not None
    assert user.roles == ("admin", "user")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("A@Example.com", "a@example.com"),
        ("alice@example.com", "ALICE@EXAMPLE.COM"),
        ("user@bücher.de", "user@xn--bcher-kva.de"),
    ],
    ids=["case", "upper", "idn"],
)
async def test_register_twice_returns_none(
    accounts: Accounts, store: SQLiteStore, first: str, second: str
) -> None:
    """A second registration of the same (normalised) address returns None, not a user."""
    original = await registered(accounts, first)
    assert await accounts.register(second, "a different pass phrase") is None
    assert await store.list_users() == [original]
    assert await accounts.authenticate(second, PASSWORD) == original


@pytest.mark.parametrize(
    ("email", "password"),
    [
        (EMAIL, "short"),
        (EMAIL, "password"),
        (EMAIL, "aaaaaaaaaa"),
        (EMAIL, EMAIL),
        ("alice.smith@example.com", "Alice.Smith"),
    ],
    ids=["too-short", "common", "repetitive", "the-email", "the-local-part"],
)
async def test_weak_password_is_refused_before_anything_is_stored(
    accounts: Accounts, store: SQLiteStore, email: str, password: str
) -> None:
    """register raises WeakPassword and leaves the store empty."""
    with pytest.raises(WeakPassword):
        await accounts.register(email, password)
    assert await store.list_users() == []


async def test_invalid_email_is_refused_at_registration(
    accounts: Accounts, store: SQLiteStore
) -> None:
    """register raises InvalidEmail for a malformed address and stores nothing."""
    with pytest.raises(InvalidEmail):
        await accounts.register("not-an-address", PASSWORD)
    assert await store.list_users() == []


# -- authenticate (P2) ---------------------------------------------------------------------


async def test_authenticate_with_the_right_password(accounts: Accounts) -> None:
    """The right password, with the address in any case, returns the user."""
    user = await registered(accounts)
    assert await accounts.authenticate(EMAIL, PASSWORD) == user
    assert await accounts.authenticate(" ALICE@example.com", PASSWORD) == user


async def test_login_failures_are_indistinguishable(
    accounts: Accounts, store: SQLiteStore, hasher: PasswordHasher
) -> None:
    """Wrong password, unknown e-mail, malformed e-mail and locked user fail identically."""
    await registered(accounts)
    await store.add_user(
        User(
            id="locked-user",
            email="bob@example.com",
            password_hash=await hasher.hash(PASSWORD),
            roles=("user",),
            created_at=T0,
            password_changed_at=T0,
            locked=True,
        )
    )
    failures = [
        await failure_of(accounts.authenticate(EMAIL, "wrong password")),
        await failure_of(accounts.authenticate("nobody@example.com", PASSWORD)),
        await failure_of(accounts.authenticate("not-an-address", PASSWORD)),
        await failure_of(accounts.authenticate("bob@example.com", PASSWORD)),
    ]
    assert {type(f) for f in failures} == {AuthenticationFailed}
    assert len({(f.code, f.detail, str(f), f.args) for f in failures}) == 1


async def test_locked_user_with_the_right_password_fails(
    accounts: Accounts, store: SQLiteStore, hasher: PasswordHasher
) -> None:
    """A locked account cannot log in even with its password."""
    await store.add_user(
        User(
            id="locked-user",
            email="bob@example.com",
            password_hash=await hasher.hash(PASSWORD),
            roles=(),
            created_at=T0,
            password_changed_at=T0,
            locked=True,
        )
    )
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate("bob@example.com", PASSWORD)


async def _median_seconds(work: Callable[[], Awaitable[object]], rounds: int = 5) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        with pytest.raises(AuthenticationFailed):
            await work()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


async def test_unknown_email_costs_as_much_as_a_wrong_password(accounts: Accounts) -> None:
    """An unknown address still pays one Argon2 verification (dummy hash, P2)."""
    await registered(accounts)
    wrong = await _median_seconds(lambda: accounts.authenticate(EMAIL, "wrong password"))
    unknown = await _median_seconds(lambda: accounts.authenticate("nobody@example.com", PASSWORD))
    malformed = await _median_seconds(lambda: accounts.authenticate("not-an-address", PASSWORD))
    assert unknown >= 0.5 * wrong
    assert malformed >= 0.5 * wrong


async def test_login_rehashes_when_the_profile_changed(
    accounts: Accounts,
    store: SQLiteStore,
    stronger_hasher: PasswordHasher,
    clock: FrozenClock,
) -> None:
    """After a profile upgrade, a successful login stores a hash with the new parameters (P1)."""
    user = await registered(accounts)
    assert user.password_hash.startswith(OWASP_PREFIX)
    upgraded = Accounts(store, stronger_hasher, PasswordPolicy(), clock)
    clock.advance(100)
    after = await upgraded.authenticate(EMAIL, PASSWORD)
    stored = await store.get_user(user.id)
    assert stored is not None
    assert stored.password_hash.startswith(RFC9106_PREFIX)
    assert after.password_hash == stored.password_hash
    assert stored.password_changed_at == user.password_changed_at  # a rehash is not a change
    assert await upgraded.authenticate(EMAIL, PASSWORD) == stored
    with pytest.raises(AuthenticationFailed):
        await upgraded.authenticate(EMAIL, "wrong password")


async def test_login_does_not_rehash_under_the_same_profile(
    accounts: Accounts, store: SQLiteStore
) -> None:
    """With unchanged parameters the stored hash is left alone."""
    user = await registered(accounts)
    await accounts.authenticate(EMAIL, PASSWORD)
    stored = await store.get_user(user.id)
    assert stored is not None
    assert stored.password_hash == user.password_hash


async def test_failed_login_does_not_rehash(
    store: SQLiteStore, accounts: Accounts, stronger_hasher: PasswordHasher, clock: FrozenClock
) -> None:
    """A wrong password never triggers a rehash."""
    user = await registered(accounts)
    upgraded = Accounts(store, stronger_hasher, PasswordPolicy(), clock)
    with pytest.raises(AuthenticationFailed):
        await upgraded.authenticate(EMAIL, "wrong password")
    stored = await store.get_user(user.id)
    assert stored is not None
    assert stored.password_hash == user.password_hash


# -- change_password (P4) ------------------------------------------------------------------


async def test_change_password_with_a_wrong_current_password_is_refused(
    accounts: Accounts, store: SQLiteStore
) -> None:
    """A wrong current password raises ReauthenticationFailed and changes nothing."""
    user = await registered(accounts)
    with pytest.raises(ReauthenticationFailed):
        await accounts.change_password(user.id, "wrong password", NEW_PASSWORD)
    assert await store.get_user(user.id) == user


async def test_change_password_of_an_unknown_user_is_refused(accounts: Accounts) -> None:
    """An unknown user id raises ReauthenticationFailed."""
    with pytest.raises(ReauthenticationFailed):
        await accounts.change_password("no-such-user", PASSWORD, NEW_PASSWORD)


async def test_change_password_to_the_same_password_is_refused(
    accounts: Accounts, store: SQLiteStore
) -> None:
    """The new password must differ from the current one."""
    user = await registered(accounts)
    with pytest.raises(InvalidRequest, match="differ"):
        await accounts.change_password(user.id, PASSWORD, PASSWORD)
    assert await store.get_user(user.id) == user


async def test_change_password_to_the_same_normalised_password_is_refused(
    accounts: Accounts,
) -> None:
    """A new password that NFKC-normalises to the current one is the same password."""
    user = await registered(accounts, password="\ufb01sh and chips forever")
    with pytest.raises(InvalidRequest):
        await accounts.change_password(
            user.id, "\ufb01sh and chips forever", "fish and chips forever"
        )


@pytest.mark.parametrize(
    ("email", "new"),
    [
        (EMAIL, "short"),
        (EMAIL, "password1"),
        (EMAIL, "zzzzzzzzzz"),
        (EMAIL, "ALICE@EXAMPLE.COM"),
        ("alice.smith@example.com", "alice.smith"),
    ],
    ids=["too-short", "common", "repetitive", "the-email", "the-local-part"],
)
async def test_change_password_to_a_weak_password_is_refused(
    accounts: Accounts, store: SQLiteStore, email: str, new: str
) -> None:
    """The new password passes the same policy as at registration, e-mail rule included."""
    user = await registered(accounts, email)
    with pytest.raises(WeakPassword):
        await accounts.change_password(user.id, PASSWORD, new)
    assert await store.get_user(user.id) == user


async def test_change_password(accounts: Accounts, store: SQLiteStore, clock: FrozenClock) -> None:
    """Success stores a new hash, moves password_changed_at, and only the new password works."""
    user = await registered(accounts)
    clock.advance(3600)
    changed = await accounts.change_password(user.id, PASSWORD, NEW_PASSWORD)
    stored = await store.get_user(user.id)
    assert stored == changed
    assert stored.password_changed_at == T0 + 3600
    assert stored.created_at == T0
    assert stored.password_hash != user.password_hash
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate(EMAIL, PASSWORD)
    assert (await accounts.authenticate(EMAIL, NEW_PASSWORD)).id == user.id
