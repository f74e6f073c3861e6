"""Throttling of failed logins (SECURITY.md P3).

Failures are counted in the store, so every instance sees the same counts, per account and
client address together (strict), per account across all addresses (looser, and its wait
short), per client address (an IPv6 client by its /64, which one machine usually owns
whole) and per known device. Once a key has its free failures, each further attempt must
wait, twice as long after every failure, up to its cap: the answer is 429 with
``Retry-After``, and an attempt refused that way is not counted (hammering does not make
the wait longer). A key forgets its failures after ``memory`` seconds without one.

An attacker who fails on purpose must not lock the victim out. Three things see to it:

- the wait is bounded and forgotten (``memory``), never a lock; failures from one address
  hold off only that address for the account, and the account-wide wait is at most a
  minute;
- a browser that has logged in to the account before carries a *known-device* cookie (an
  HMAC of the user id, the password epoch and a random nonce); its attempts count against
  that device only, so the owner on their own browser is not slowed down by failures from
  anywhere else (the OWASP "device cookie" scheme);
- the account's counters are cleared by a successful login.

The address counter is never cleared by a success, or a client could reset it by logging
in to an account of its own between guesses at other accounts.

Attempts for one account take turns on an instance (``turn``), so a burst of guesses is
judged one by one. Across instances, attempts that arrive at the same moment are checked
against the same count: n instances allow at most n guesses at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import math
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from twofold.clock import Clock
from twofold.emails import normalize_email
from twofold.errors import InvalidEmail, Throttled
from twofold.store.base import ThrottleStore
from twofold.store.records import User

Scope = Literal["account", "address", "device"]
MAX_DEVICE_TOKEN = 128
#: Seconds an attempt waits for its account's turn before it is judged without it.
TURN_WAIT = 1.0


#: The account-wide counter, across all addresses, allows this many times the per-account
#: failures and waits at most ACCOUNT_WIDE_MAX_DELAY: it slows a guesser spread over many
#: addresses without letting them hold the owner's new devices off for long.
ACCOUNT_WIDE_FACTOR = 4
ACCOUNT_WIDE_MAX_DELAY = 60.0


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    per_account: int = 5
    per_address: int = 20
    max_delay: float = 900.0
    memory: float = 3600.0

    @staticmethod
    def delay(failures: int, free: int, cap: float) -> float:
        """Seconds the next attempt must wait after the last of ``failures`` failures."""
        if failures < free:
            return 0.0
        # 2**exponent overflows a float long before any sane count: cap the exponent.
        return min(cap, 2.0 ** min(failures - free, 64))


@dataclass(frozen=True, slots=True)
class Key:
    scope: Scope
    value: str
    free: int
    cap: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """The counters one login attempt is judged by."""

    #: The account it is for (a digest of the normalised address): attempts for one
    #: account take turns on an instance.
    account: str
    keys: tuple[Key, ...]
    #: A valid known-device cookie came with the attempt.
    known_device: bool


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class LoginThrottle:
    def __init__(
        self, store: ThrottleStore, policy: ThrottlePolicy, clock: Clock, device_key: bytes
    ) -> None:
        self._store = store
        self.policy = policy
        self._clock = clock
        self._device_key = device_key
        self._turns: dict[str, _Turn] = {}

    def attempt(
        self, email: str, client_address: str | None, device: str | None, user: User | None
    ) -> Attempt:
        """The keys for a login to ``email`` (``user``, if it names one) from
        ``client_address`` with the known-device cookie ``device`` (if any). Unknown and
        existing accounts get the same keys."""
        policy = self.policy
        account = _digest(_normalized(email))
        nonce = self._device_nonce(user, device)
        if nonce is not None:
            key = Key("device", f"device:{nonce}", policy.per_account, policy.max_delay)
            return Attempt(account, (key,), True)
        keys = [
            Key(
                "account",
                f"account:{account}",
                policy.per_account * ACCOUNT_WIDE_FACTOR,
                min(policy.max_delay, ACCOUNT_WIDE_MAX_DELAY),
            )
        ]
        network = _address_key(client_address)
        if network is not None:
            # The strict count is per account *and* address: failing on purpose from one
            # place does not hold the owner off from another.
            pair = _digest(f"{account}|{network}")
            keys.append(Key("account", f"pair:{pair}", policy.per_account, policy.max_delay))
            keys.append(Key("address", f"address:{network}", policy.per_address, policy.max_delay))
        return Attempt(account, tuple(keys), False)

    @asynccontextmanager
    async def turn(self, attempt: Attempt) -> AsyncIterator[None]:
        """Check the attempt (``Throttled`` if a key must still wait) and hold the
        account's turn on this instance until the caller has counted the outcome, so that a
        burst of guesses is judged one after another, not all against the same old count."""
        turn = self._turns.setdefault(attempt.account, _Turn())
        turn.users += 1
        try:
            if turn.lock.locked():
                # Another attempt holds the turn: be judged by the store now as well, so an
                # attempt that is throttled already, or whose store is down, is answered at
                # once rather than after the queue.
                await self._check(attempt)
            acquired = False
            try:
                async with asyncio.timeout(TURN_WAIT):
                    await turn.lock.acquire()
                    acquired = True
            except TimeoutError:
                # A turn takes one password check; one held this long is stuck on the
                # store (an outage). Judge this attempt on its own rather than queue
                # behind it: its own store call then fails or succeeds by itself.
                pass
            try:
                await self._check(attempt)
                yield
            finally:
                if acquired:
                    turn.lock.release()
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[attempt.account]

    async def _check(self, attempt: Attempt) -> None:
        now = self._clock.now()
        counts = await self._store.get_failures(
            [key.value for key in attempt.keys], now, self.policy.memory
        )
        wait = 0.0
        for key in attempt.keys:
            if key.value in counts:
                failures, last = counts[key.value]
                wait = max(wait, last + self.policy.delay(failures, key.free, key.cap) - now)
        if wait > 0:
            raise Throttled(math.ceil(wait))

    async def failed(self, attempt: Attempt) -> list[Scope]:
        """Count a failure on every key; returns the scopes whose waits begin now."""
        now = self._clock.now()
        counts = await asyncio.gather(
            *(
                self._store.record_failure(key.value, now, self.policy.memory)
                for key in attempt.keys
            )
        )
        begun = {
            key.scope for key, count in zip(attempt.keys, counts, strict=True) if count == key.free
        }
        return sorted(begun)

    async def succeeded(self, attempt: Attempt) -> None:
        """Forget the account's (or the device's) failures; never the address's."""
        for key in attempt.keys:
            if key.scope != "address":
                await self._store.clear_failures(key.value)

    def device_token(self, user: User) -> str:
        """A new known-device cookie value for a browser that just proved ``user``'s
        password. It names the account by id and password epoch, so it dies with a
        password change and never passes to whoever gets the address next."""
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._mac(user, nonce)}"

    def _device_nonce(self, user: User | None, device: str | None) -> str | None:
        if user is None or not device or len(device) > MAX_DEVICE_TOKEN:
            return None
        nonce, _, mac = device.partition(".")
        if not nonce or not hmac.compare_digest(mac.encode(), self._mac(user, nonce).encode()):
            return None
        return nonce

    def _mac(self, user: User, nonce: str) -> str:
        message = f"device:{user.id}:{user.password_changed_at!r}:{nonce}".encode()
        digest = hmac.digest(self._device_key, message, "sha256")
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _normalized(email: str) -> str:
    try:
        return normalize_email(email)
    except InvalidEmail:
        # Not an address at all: still one key per input, so such attempts are counted.
        return email.strip().lower()


def _digest(value: str) -> str:
    # Counters name accounts by digest: the table never lists the addresses tried.
    return hashlib.sha256(value.encode()).hexdigest()[:40]


def _address_key(client_address: str | None) -> str | None:
    if client_address is None:
        return None
    try:
        address = ipaddress.ip_address(client_address)
    except ValueError:
        return client_address[:64]  # not an IP (a Unix socket's name): as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
