"""The runtime's upkeep: old keys retire when their tokens have expired, expired records
are purged, and the in-memory revocation list forgets what can no longer matter."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, make_settings
from twofold.authority import Origin
from twofold.clock import FrozenClock
from twofold.runtime import Runtime
from twofold.signing_keys import SigningKeys

EMAIL = "upkeep@example.com"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(time.time())


@pytest.fixture
async def runtime(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Runtime]:
    runtime = await Runtime.start(make_settings(tmp_path / "data"), clock=clock)
    yield runtime
    await runtime.close()


async def test_a_rotated_key_verifies_until_its_tokens_expire_then_retires(
    runtime: Runtime, clock: FrozenClock
) -> None:
    await runtime.authority.register(EMAIL, PASSWORD)
    login = await runtime.authority.login_token(EMAIL, PASSWORD, origin=Origin())
    old_kid = runtime.keyring.signing_key.kid
    await runtime.admin.rotate_keys(compromised=False, actor=None, origin=Origin())
    assert runtime.keyring.signing_key.kid != old_kid
    runtime.authority.token_principal(login.access_token)  # the old key still verifies

    settings = runtime.settings
    clock.advance(settings.access_token_lifetime + settings.token_leeway - 1)
    await runtime.maintain()
    assert runtime.keyring.get(old_kid) is not None  # not yet: a token may still be valid

    clock.advance(2)
    await runtime.maintain()
    assert runtime.keyring.get(old_kid) is None
    states = {key.kid: key.state for key in await runtime.keys.all()}
    assert states[old_kid] == "retired"
    retired = await runtime.authority.audit.page(kind="key_retired")
    assert [event.detail["kid"] for event in retired] == [old_kid]


async def test_expired_sessions_families_and_revocations_are_purged(
    runtime: Runtime, clock: FrozenClock
) -> None:
    authority = runtime.authority
    await authority.register(EMAIL, PASSWORD)
    session = await authority.login_session(EMAIL, PASSWORD, origin=Origin(), replacing=None)
    tokens = await authority.login_token(EMAIL, PASSWORD, origin=Origin())
    await authority.logout(
        authority.token_principal(tokens.access_token), session_id=None, origin=Origin()
    )
    assert len(authority.revoker.revoked) == 1
    other = await authority.login_token(EMAIL, PASSWORD, origin=Origin())

    clock.advance(runtime.settings.refresh_absolute_lifetime + 1)
    await runtime.maintain()
    store = runtime.store
    assert await store.get_session(session.session.record.id_hash) is None
    assert await store.get_family(other.refresh.family.id) is None
    assert await store.revocations_after(0, 0) == []
    assert len(authority.revoker.revoked) == 0


async def test_instances_starting_together_on_a_new_store_agree_on_the_signing_key(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances that both find no key each make one; the one made at start is
    announced on the stream, so after following it both verify both keys and sign with
    the same (newest) one: a token from either works on the other."""
    settings = make_settings(tmp_path / "data")
    first = await Runtime.start(settings, clock=clock)
    # The second instance looked before the first made its key: force that interleaving.
    usable = SigningKeys.usable
    calls = 0

    async def none_at_first(self: SigningKeys) -> list:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        return [] if calls == 1 else await usable(self)

    monkeypatch.setattr(SigningKeys, "usable", none_at_first)
    clock.advance(1)
    second = await Runtime.start(settings, clock=clock)
    monkeypatch.undo()
    try:
        assert {k.kid for k in await first.keys.usable()} != {first.keyring.signing_key.kid}
        await first.authority.revoker.catch_up()
        await second.authority.revoker.catch_up()
        assert first.keyring.signing_key.kid == second.keyring.signing_key.kid
        await first.authority.register(EMAIL, PASSWORD)
        login = await first.authority.login_token(EMAIL, PASSWORD, origin=Origin())
        second.authority.token_principal(login.access_token)
    finally:
        await second.close()
        await first.close()


async def test_a_backlog_larger_than_one_batch_is_purged_in_one_round(
    runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Purges go batch by batch (each bounded) until a batch comes back short, so a
    backlog bigger than a batch does not wait for later rounds."""
    monkeypatch.setattr("twofold.runtime.PURGE_BATCH", 2)
    for n in range(5):
        await runtime.authority.revoker.token(f"jti-{n}", clock.now() + 1)
    # Entries are kept a horizon past their expiry (other processes may keep tokens longer).
    horizon = runtime.settings.access_token_lifetime + runtime.settings.token_leeway
    clock.advance(2 * horizon + 2)
    await runtime.maintain()
    assert await runtime.store.revocations_after(0, 0) == []
