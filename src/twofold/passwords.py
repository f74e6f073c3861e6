"""Password rules (NIST SP 800-63B) and Argon2id hashing run off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Literal, TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from twofold.errors import Busy, ConfigurationError, WeakPassword

_T = TypeVar("_T")

ProfileName = Literal["owasp-minimum", "rfc9106-low-memory"]


@dataclass(frozen=True, slots=True)
class Argon2Profile:
    """Argon2id cost parameters; ``memory_cost`` is in KiB."""

    time_cost: int
    memory_cost: int
    parallelism: int

    def at_least_owasp_minimum(self) -> bool:
        # OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1 is the floor; trading memory
        # for passes is allowed only along its table, so hold both numbers to the floor.
        return self.memory_cost >= 19_456 and self.time_cost >= 2 and self.parallelism >= 1


ARGON2_PROFILES: dict[ProfileName, Argon2Profile] = {
    # The floor of the OWASP cheat sheet: ~20 ms here. Good for tests and small machines.
    "owasp-minimum": Argon2Profile(time_cost=2, memory_cost=19_456, parallelism=1),
    # RFC 9106's second recommended option, argon2-cffi's default: ~60 ms here.
    "rfc9106-low-memory": Argon2Profile(time_cost=3, memory_cost=65_536, parallelism=4),
}


def normalize_password(password: str) -> str:
    """NFKC, as SP 800-63B asks, so one password typed on two keyboards hashes the same."""
    return unicodedata.normalize("NFKC", password)


@cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of zxcvbn's ranked list, lower-cased."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Length limits and a blocklist; no composition rules (SP 800-63B 3.1.1.2)."""

    min_length: int = 8
    max_length: int = 256

    def check(self, password: str, *, context: Iterable[str] = ()) -> None:
        """Raise ``WeakPassword`` unless ``password`` is acceptable.

        ``context`` holds words specific to the account (the e-mail address and its parts)
        that a password must not be.
        """
        normalized = normalize_password(password)
        if len(normalized) < self.min_length:
            raise WeakPassword(f"The password must have at least {self.min_length} characters.")
        if len(normalized) > self.max_length:
            raise WeakPassword(f"The password must have at most {self.max_length} characters.")
        lowered = normalized.lower()
        if lowered in common_passwords():
            raise WeakPassword("This password is too common; choose another.")
        if len(set(lowered)) < 3:
            raise WeakPassword("The password repeats too few characters; choose another.")
        if any(word and lowered == word.lower() for word in context):
            raise WeakPassword("The password must not be your e-mail address or name.")


#: How much nicer than the event loop the hash threads run by default (Linux: per-thread
#: niceness; the setting ``hash_niceness``).
HASH_NICENESS = 10


def _yield_to_requests(niceness: int) -> None:
    """Lower the calling hash thread's scheduling priority (Linux threads are tasks of their
    own; the lanes libargon2 starts for ``parallelism`` > 1 inherit it).

    argon2-cffi releases the GIL while hashing, so hashing never blocks the event loop on
    the GIL; but on a machine with few cores the hash threads (``parallelism`` lanes each)
    outnumber the cores and the kernel shares the cores evenly among them and the loop:
    with 2 cores and 4 lanes, a request that only checks a token waited for a fifth of
    the CPU. At nice 10 the kernel gives the loop about 10 times a hash thread's share when
    both want to run, and hashing still gets every cycle the requests leave. The price: on a
    host whose other programs keep the cores busy, logins wait for them too (0 turns it off)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + niceness))


class PasswordHasher:
    """Argon2id on a bounded thread pool, so hashing never stalls the event loop.

    argon2-cffi releases the GIL while it hashes; bounding the pool keeps a burst of logins
    from taking every core away from the requests that only check a session or a token.
    """

    def __init__(
        self,
        profile: Argon2Profile,
        *,
        workers: int = 1,
        max_pending: int = 32,
        niceness: int = HASH_NICENESS,
    ) -> None:
        if not profile.at_least_owasp_minimum():
            raise ConfigurationError("Argon2 parameters are below the OWASP minimum.")
        self.profile = profile
        self._hasher = argon2.PasswordHasher(
            time_cost=profile.time_cost,
            memory_cost=profile.memory_cost,
            parallelism=profile.parallelism,
            type=argon2.Type.ID,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="argon2",
            initializer=_yield_to_requests,
            initargs=(niceness,),
        )
        # A queue without a bound lets a flood of logins delay every honest login by
        # minutes; past this many waiting or running jobs the caller is told to come back.
        self._max_pending = max_pending
        self._pending = 0
        # Verified against when the account does not exist, so that an unknown e-mail costs
        # the same time as a wrong password (SECURITY.md P2).
        self._dummy_hash = self._hasher.hash("twofold dummy password for timing equality")

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, normalize_password(password))

    async def verify(self, encoded: str, password: str) -> bool:
        """True if ``password`` matches ``encoded``; a corrupt hash raises, it is not a miss."""
        return await self._run(self._verify_sync, encoded, normalize_password(password))

    async def _run(self, function: Callable[..., _T], *args: str) -> _T:
        if self._pending >= self._max_pending:
            raise Busy("Too many logins at once; try again in a moment.")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        finally:
            self._pending -= 1

    async def burn(self, password: str) -> None:
        """Spend the time of one verification on a dummy hash."""
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, encoded: str) -> bool:
        return self._hasher.check_needs_rehash(encoded)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _verify_sync(self, encoded: str, password: str) -> bool:
        try:
            return self._hasher.verify(encoded, password)
        except VerifyMismatchError:
            return False
        except InvalidHashError:
            raise
        except VerificationError:
            return False
