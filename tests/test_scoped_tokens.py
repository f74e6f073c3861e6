"""Scoped tokens in the core: made with a secret shown once, authenticated in constant
time, touched sparingly, bounded per user; and the scopes an exchange grants."""

from __future__ import annotations

import pytest

from twofold.audit import AuditLog
from twofold.clock import FrozenClock
from twofold.errors import InvalidRequest, InvalidScope, InvalidToken, NotAuthenticated, NotFound
from twofold.exchange import granted_scopes
from twofold.revocation import Revoker
from twofold.scoped_tokens import MAX_PER_USER, TOUCH_INTERVAL, ScopedTokenPolicy, ScopedTokens
from twofold.store.records import User
from twofold.store.sqlite import SQLiteStore

DAY = 86_400


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def user(store: SQLiteStore, clock: FrozenClock) -> User:
    user = User(
        id="u-1",
        email="ada@example.com",
        password_hash="x",
        roles=("user",),
        created_at=clock.now(),
        password_changed_at=clock.now(),
    )
    await store.add_user(user)
    return user


@pytest.fixture
def tokens(store: SQLiteStore, clock: FrozenClock) -> ScopedTokens:
    return ScopedTokens(
        store,
        store,
        Revoker(store, clock, horizon=330),
        AuditLog(store, clock),
        clock,
        ScopedTokenPolicy(scopes=("read", "write", "admin"), max_lifetime=30 * DAY),
    )


async def test_only_the_hash_of_the_secret_is_stored(
    tokens: ScopedTokens, store: SQLiteStore, user: User
) -> None:
    """The record holds SHA-256 of the secret, never the secret; scopes in configured order."""
    new = await tokens.create(user.id, name=" CI ", scopes=["write", "read", "write"])
    token_id, _, secret = new.token.partition(".")
    assert token_id == new.record.id
    stored = await store.get_scoped_token(token_id)
    assert stored is not None
    assert stored.name == "CI"
    assert stored.scopes == ("read", "write")
    assert len(stored.secret_hash) == 32
    assert secret.encode() not in stored.secret_hash
    assert stored.expires_at == stored.created_at + 30 * DAY  # the default is the maximum


async def test_authentication_touches_at_most_once_per_interval(
    tokens: ScopedTokens, store: SQLiteStore, user: User, clock: FrozenClock
) -> None:
    """last_used_at is written on first use, then once per TOUCH_INTERVAL, not per use."""
    new = await tokens.create(user.id, name="CI", scopes=["read"])
    first = clock.now()
    assert (await tokens.authenticate(new.token)).user.id == user.id
    clock.advance(TOUCH_INTERVAL / 2)
    await tokens.authenticate(new.token)
    stored = await store.get_scoped_token(new.record.id)
    assert stored is not None
    assert stored.last_used_at == first
    clock.advance(TOUCH_INTERVAL)
    await tokens.authenticate(new.token)
    stored = await store.get_scoped_token(new.record.id)
    assert stored is not None
    assert stored.last_used_at == clock.now()


@pytest.mark.parametrize(
    "token",
    ["", ".", "tfs_short.secret", "tfs_" + "A" * 22, "tfs_" + "A" * 22 + ".x", "nonsense"],
    ids=["empty", "dot", "short-id", "no-secret", "unknown", "no-prefix"],
)
async def test_malformed_and_unknown_tokens_are_invalid(tokens: ScopedTokens, token: str) -> None:
    """Anything but an issued id with its secret is an invalid token."""
    with pytest.raises(InvalidToken):
        await tokens.authenticate(token)


async def test_a_locked_user_cannot_make_tokens(
    tokens: ScopedTokens, store: SQLiteStore, user: User
) -> None:
    """A locked account makes no tokens (nor authenticates any)."""
    await store.set_locked(user.id, True)
    with pytest.raises(NotAuthenticated):
        await tokens.create(user.id, name="CI", scopes=["read"])


async def test_a_user_holds_a_bounded_number_of_tokens(tokens: ScopedTokens, user: User) -> None:
    """Past MAX_PER_USER live tokens a new one is refused: no filling the store."""
    for number in range(MAX_PER_USER):
        await tokens.create(user.id, name=f"t{number}", scopes=["read"], expires_in=DAY)
    with pytest.raises(InvalidRequest, match="at most"):
        await tokens.create(user.id, name="one more", scopes=["read"], expires_in=DAY)


async def test_revoking_anothers_token_is_not_found(tokens: ScopedTokens, user: User) -> None:
    """Another user's token, or no token at all: NotFound, and the token lives on."""
    new = await tokens.create(user.id, name="CI", scopes=["read"])
    with pytest.raises(NotFound):
        await tokens.revoke("someone-else", new.record.id)
    with pytest.raises(NotFound):
        await tokens.revoke(user.id, "not-an-id")
    assert (await tokens.authenticate(new.token)).record.id == new.record.id


@pytest.mark.parametrize(
    ("requested", "held", "granted"),
    [
        (None, ("read", "write"), ("read", "write")),
        ("write", ("read", "write"), ("write",)),
        ("write read write", ("read", "write"), ("read", "write")),
    ],
    ids=["all-by-default", "subset", "order-and-repeats"],
)
def test_granted_scopes(
    requested: str | None, held: tuple[str, ...], granted: tuple[str, ...]
) -> None:
    """All held scopes by default, else those asked for, in the order held."""
    assert granted_scopes(requested, held) == granted


@pytest.mark.parametrize(
    ("requested", "held"),
    [("read admin", ("read",)), ("", ("read",)), (None, ())],
    ids=["superset", "empty", "nothing-held"],
)
def test_scopes_beyond_those_held_are_refused(requested: str | None, held: tuple[str, ...]) -> None:
    """More than held, or nothing at all, is invalid_scope."""
    with pytest.raises(InvalidScope):
        granted_scopes(requested, held)
