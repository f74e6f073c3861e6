"""The core facade: principals from sessions and tokens, and password changes that leave
no old session alive, however the steps interleave."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from twofold.accounts import Accounts
from twofold.audit import AuditLog
from twofold.authority import Authority, Origin
from twofold.clock import FrozenClock
from twofold.errors import NotAuthenticated, StoreUnavailable
from twofold.jose.jwt import AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import JoseKey
from twofold.passwords import PasswordHasher, PasswordPolicy
from twofold.refresh import RefreshPolicy, RefreshTokens
from twofold.revocation import Revoker
from twofold.scoped_tokens import ScopedTokenPolicy, ScopedTokens
from twofold.sessions import SessionManager, SessionPolicy
from twofold.store.sqlite import SQLiteStore
from twofold.throttle import LoginThrottle, ThrottlePolicy

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "an entirely new passphrase"
EMAIL = "ada@example.com"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def authority(store: SQLiteStore, hasher: PasswordHasher, clock: FrozenClock) -> Authority:
    key = JoseKey.generate("EdDSA")
    tokens = AccessTokenCodec(
        KeyRing([key], signing_kid=key.kid), TokenPolicy("https://t.example", "api"), clock
    )
    revoker = Revoker(store, clock, horizon=330)
    audit_log = AuditLog(store, clock)
    return Authority(
        Accounts(store, hasher, PasswordPolicy(), clock),
        SessionManager(store, SessionPolicy(), clock),
        tokens,
        RefreshTokens(store, RefreshPolicy(), clock, b"k" * 32),
        revoker,
        audit_log,
        LoginThrottle(store, ThrottlePolicy(), clock, b"d" * 32),
        scoped_tokens=ScopedTokens(store, store, revoker, audit_log, clock, ScopedTokenPolicy()),
    )


async def session_login(authority: Authority, password: str = PASSWORD) -> str:
    login = await authority.login_session(EMAIL, password, origin=Origin(), replacing=None)
    return login.session.id


async def test_a_login_that_finishes_after_a_password_change_is_refused(
    authority: Authority,
) -> None:
    """A login that proved the old password but stored its session after the change (and
    after the other sessions were ended) yields a dead session (S7)."""
    await authority.register(EMAIL, PASSWORD)
    mine = await session_login(authority)
    me = await authority.session_principal(mine)
    # The attacker's login has verified the old password and is about to store a session...
    stale_user = await authority.accounts.authenticate(EMAIL, PASSWORD)
    # ...when the owner changes the password, ending every other session...
    await authority.change_password(me, PASSWORD, NEW_PASSWORD, session_id=mine, origin=Origin())
    # ...and only then does the attacker's session reach the store.
    late = await authority.sessions.create(
        stale_user.id,
        password_changed_at=stale_user.password_changed_at,
        client_address=None,
        user_agent=None,
    )
    with pytest.raises(NotAuthenticated):
        await authority.session_principal(late.id)


async def test_old_sessions_die_even_if_clean_up_fails(
    authority: Authority, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing the new password is what ends the other sessions; a store failure while
    deleting their records leaves none usable (S7, O3)."""
    await authority.register(EMAIL, PASSWORD)
    mine = await session_login(authority)
    other = await session_login(authority)
    me = await authority.session_principal(mine)

    async def failing(user_id: str, keep: bytes | None = None) -> int:
        raise StoreUnavailable()

    monkeypatch.setattr(store, "delete_user_sessions", failing)
    with pytest.raises(StoreUnavailable):
        await authority.change_password(
            me, PASSWORD, NEW_PASSWORD, session_id=mine, origin=Origin()
        )
    with pytest.raises(NotAuthenticated):
        await authority.session_principal(other)


async def test_the_password_epoch_moves_even_when_the_clock_does_not(
    authority: Authority,
) -> None:
    """Two changes within the same clock reading still invalidate older sessions."""
    await authority.register(EMAIL, PASSWORD)
    first = await session_login(authority)
    second = await session_login(authority)
    me = await authority.session_principal(first)
    await authority.change_password(me, PASSWORD, NEW_PASSWORD, session_id=first, origin=Origin())
    with pytest.raises(NotAuthenticated):
        await authority.session_principal(second)


async def test_the_caller_keeps_a_rotated_session_after_a_change(authority: Authority) -> None:
    """The session that changed the password continues under a new id; the old id is dead."""
    await authority.register(EMAIL, PASSWORD)
    mine = await session_login(authority)
    me = await authority.session_principal(mine)
    changed = await authority.change_password(
        me, PASSWORD, NEW_PASSWORD, session_id=mine, origin=Origin()
    )
    assert changed.session is not None
    assert changed.tokens is None
    assert (await authority.session_principal(changed.session.id)).user_id == me.user_id
    with pytest.raises(NotAuthenticated):
        await authority.session_principal(mine)


async def test_a_locked_or_deleted_user_has_no_session(authority: Authority, db_path: Path) -> None:
    """Lock and deletion are read on every session request (S7)."""
    await authority.register(EMAIL, PASSWORD)
    locked = await session_login(authority)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE users SET locked = 1")
    with pytest.raises(NotAuthenticated):
        await authority.session_principal(locked)
    with conn:
        conn.execute("UPDATE users SET locked = 0")
    deleted = await session_login(authority)
    with conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DELETE FROM users")
    conn.close()
    with pytest.raises(NotAuthenticated):
        await authority.session_principal(deleted)


async def test_a_token_principal_reads_no_store(
    authority: Authority, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verifying an access token needs no store at all."""
    await authority.register(EMAIL, PASSWORD)
    token = (await authority.login_token(EMAIL, PASSWORD, origin=Origin())).access_token

    async def no_store(*args: object) -> None:
        raise AssertionError("the store was read")

    for name in ("get_user", "get_user_by_email", "get_session", "list_keys"):
        monkeypatch.setattr(store, name, no_store)
    principal = authority.token_principal(token)
    assert (principal.email, principal.mode, principal.roles) == (EMAIL, "jwt", ("user",))
