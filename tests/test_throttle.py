"""The login throttle's rules, on a real SQLite store (SECURITY.md P3)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from twofold.clock import FrozenClock
from twofold.errors import Throttled
from twofold.store.records import User
from twofold.store.sqlite import SQLiteStore
from twofold.throttle import LoginThrottle, ThrottlePolicy

ADA = User(
    id="u-ada",
    email="ada@example.com",
    password_hash="x",
    roles=("user",),
    created_at=1.0,
    password_changed_at=1.0,
)


@pytest.fixture
def throttle(store: SQLiteStore) -> LoginThrottle:
    return LoginThrottle(
        store, ThrottlePolicy(per_account=2, per_address=4), FrozenClock(), b"k" * 32
    )


def test_the_wait_doubles_from_the_free_count_up_to_the_cap() -> None:
    delay = ThrottlePolicy.delay
    assert [delay(n, 3, 900) for n in range(1, 8)] == [0, 0, 1, 2, 4, 8, 16]
    assert delay(10_000, 3, 900) == 900


def scopes(throttle: LoginThrottle, email: str, address: str | None) -> dict[str, str]:
    attempt = throttle.attempt(email, address, None, None)
    return {key.value.split(":")[0]: key.value for key in attempt.keys}


def test_addresses_are_counted_by_machine_not_by_spelling(throttle: LoginThrottle) -> None:
    def address_key(client: str) -> str:
        return scopes(throttle, "a@example.com", client)["address"]

    # An IPv6 client owns its /64; an IPv4-mapped address is the IPv4 address.
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7")


def test_account_keys_ignore_case_and_never_hold_the_address(throttle: LoginThrottle) -> None:
    first = scopes(throttle, "Ada@Example.com", "192.0.2.1")
    assert first == scopes(throttle, "ada@example.com", "192.0.2.1")
    assert set(first) == {"account", "pair", "address"}
    assert not any("ada" in value for value in first.values())
    # The strict pair is per address; the account-wide key is not.
    other = scopes(throttle, "ada@example.com", "192.0.2.2")
    assert other["pair"] != first["pair"]
    assert other["account"] == first["account"]


def test_a_device_token_exempts_its_account_only(throttle: LoginThrottle) -> None:
    token = throttle.device_token(ADA)
    mine = throttle.attempt("ada@example.com", "192.0.2.1", token, ADA)
    assert mine.known_device
    assert [key.scope for key in mine.keys] == ["device"]
    bob = replace(ADA, id="u-bob", email="bob@example.com")
    assert not throttle.attempt("bob@example.com", "192.0.2.1", token, bob).known_device
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert not throttle.attempt("ada@example.com", None, tampered, ADA).known_device


def test_a_device_token_dies_with_a_password_change_and_the_account(
    throttle: LoginThrottle,
) -> None:
    token = throttle.device_token(ADA)
    changed = replace(ADA, password_changed_at=2.0)
    assert not throttle.attempt(ADA.email, None, token, changed).known_device
    # Whoever registers the address next is another account.
    successor = replace(ADA, id="u-next")
    assert not throttle.attempt(ADA.email, None, token, successor).known_device
    assert not throttle.attempt(ADA.email, None, token, None).known_device
    # An e-mail change keeps it: the account is the same.
    moved = replace(ADA, email="ada@new.example")
    assert throttle.attempt(moved.email, None, token, moved).known_device


async def test_failures_begin_the_wait_and_success_clears_the_account(
    throttle: LoginThrottle,
) -> None:
    attempt = throttle.attempt("ada@example.com", "192.0.2.1", None, None)
    assert await throttle.failed(attempt) == []
    assert await throttle.failed(attempt) == ["account"]
    with pytest.raises(Throttled) as caught:
        async with throttle.turn(attempt):
            pass
    assert caught.value.retry_after == 1
    await throttle.succeeded(attempt)
    async with throttle.turn(attempt):
        pass
    # The address still remembers its two failures: two more begin its wait.
    other = throttle.attempt("bob@example.com", "192.0.2.1", None, None)
    await throttle.failed(other)
    assert await throttle.failed(other) == ["account", "address"]


async def test_attempts_for_one_account_take_turns(throttle: LoginThrottle) -> None:
    """A burst is judged one by one: after the free failures the rest are refused."""
    outcomes: list[str] = []

    async def guess() -> None:
        attempt = throttle.attempt("ada@example.com", "192.0.2.9", None, None)
        try:
            async with throttle.turn(attempt):
                await asyncio.sleep(0.01)  # the password check
                await throttle.failed(attempt)
                outcomes.append("checked")
        except Throttled:
            outcomes.append("throttled")

    await asyncio.gather(*(guess() for _ in range(10)))
    assert outcomes.count("checked") == 2
    assert outcomes.count("throttled") == 8
    assert throttle._turns == {}


async def test_a_stuck_turn_is_not_waited_for_long(
    throttle: LoginThrottle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During an outage a turn can hang on the store; the next attempt stops waiting
    after TURN_WAIT and is judged on its own (its own store call decides), so logins do
    not queue behind a stuck one. The count still applies to it."""
    monkeypatch.setattr("twofold.throttle.TURN_WAIT", 0.05)
    attempt = throttle.attempt("ada@example.com", "192.0.2.9", None, None)
    release = asyncio.Event()

    async def stuck() -> None:
        async with throttle.turn(attempt):
            await release.wait()

    holder = asyncio.create_task(stuck())
    await asyncio.sleep(0.01)
    async with throttle.turn(attempt):
        assert not release.is_set()
    await throttle.failed(attempt)
    await throttle.failed(attempt)
    with pytest.raises(Throttled):
        async with throttle.turn(attempt):
            pass
    release.set()
    await holder
    assert throttle._turns == {}
