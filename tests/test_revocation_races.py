"""Revocation against the requests already in flight, and against duplicate tokens: what
the security review found, pinned (T8, T9, S8)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, make_settings
from twofold.authority import Origin
from twofold.clients import NewClient
from twofold.clock import FrozenClock
from twofold.errors import InvalidGrant, InvalidToken
from twofold.runtime import Runtime
from twofold.store.records import User

EMAIL = "races@example.com"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(time.time())


@pytest.fixture
async def runtime(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Runtime]:
    runtime = await Runtime.start(make_settings(tmp_path / "data"), clock=clock)
    await runtime.authority.register(EMAIL, PASSWORD)
    yield runtime
    await runtime.close()


def interleave(runtime: Runtime, action: Callable[[str], Awaitable[object]]) -> None:
    """Run ``action(user_id)`` the first time a refresh reads the user: after it spent its
    token, before it signs the new access token."""
    accounts = runtime.authority.accounts
    read = accounts.get
    done = False

    async def get(user_id: str) -> User | None:
        nonlocal done
        if not done:
            done = True
            await action(user_id)
        return await read(user_id)

    accounts.get = get  # type: ignore[method-assign]


@pytest.mark.parametrize("scope", ["user", "everyone"])
async def test_ending_a_users_logins_beats_a_refresh_in_flight(
    runtime: Runtime, scope: str
) -> None:
    """An admin ends the user's logins while a refresh is between its spend and its new
    token: the refresh issues nothing that outlives the admin's action."""
    authority = runtime.authority
    login = await authority.login_token(EMAIL, PASSWORD, origin=Origin())

    async def end(user_id: str) -> None:
        await runtime.admin.end_sessions(
            user_id if scope == "user" else None, actor=None, origin=Origin()
        )

    interleave(runtime, end)
    with pytest.raises(InvalidGrant):
        await authority.refresh(login.refresh.token, origin=Origin())
    with pytest.raises(InvalidToken):
        authority.token_principal(login.access_token)


async def test_a_revoked_access_token_stays_revoked_in_its_grace_copy(
    runtime: Runtime, clock: FrozenClock
) -> None:
    """A duplicate refresh within the grace window gets an access token with the same jti
    signed a little later; revoking the first copy refuses the second until it expires."""
    authority = runtime.authority
    login = await authority.login_token(EMAIL, PASSWORD, origin=Origin())
    first = await authority.refresh(login.refresh.token, origin=Origin())
    clock.advance(runtime.settings.refresh_reuse_grace - 1)
    copy = await authority.refresh(login.refresh.token, origin=Origin())
    assert copy.claims.jti == first.claims.jti
    assert copy.claims.exp > first.claims.exp

    client: NewClient = await runtime.clients.add("resource")
    await runtime.oauth.revoke(first.access_token, client=client.client, origin=Origin())
    clock.advance(first.claims.exp - clock.now() + runtime.settings.token_leeway + 1)
    await runtime.maintain()
    with pytest.raises(InvalidToken, match="revoked"):
        authority.token_principal(copy.access_token)
