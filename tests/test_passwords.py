"""Password rules (SP 800-63B) and Argon2id hashing off the event loop (SECURITY.md P1)."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterator

import pytest
from argon2.exceptions import InvalidHashError

from twofold.errors import ConfigurationError, WeakPassword
from twofold.passwords import (
    ARGON2_PROFILES,
    Argon2Profile,
    PasswordHasher,
    PasswordPolicy,
    common_passwords,
    normalize_password,
)

PASSWORD = "correct horse battery staple"
# Eight characters, not on the blocklist, several distinct characters.
UNCOMMON_8 = "vq7#mz2p"


@pytest.fixture
def policy() -> PasswordPolicy:
    return PasswordPolicy()


@pytest.fixture
def stronger_hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(ARGON2_PROFILES["rfc9106-low-memory"])
    yield hasher
    hasher.close()


def assert_uncommon(password: str) -> None:
    """Guard: a test of another rule must not pass only because of the blocklist."""
    assert normalize_password(password).lower() not in common_passwords()


# -- PasswordPolicy: length ----------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["", "vq7#mz2", "a1!"],
    ids=["empty", "one-short", "three"],
)
def test_too_short_is_refused(policy: PasswordPolicy, password: str) -> None:
    """Fewer than min_length characters is refused."""
    with pytest.raises(WeakPassword, match="at least 8"):
        policy.check(password)


def test_exactly_min_length_is_accepted(policy: PasswordPolicy) -> None:
    """min_length characters exactly is enough."""
    assert len(UNCOMMON_8) == policy.min_length
    assert_uncommon(UNCOMMON_8)
    policy.check(UNCOMMON_8)


def test_exactly_max_length_is_accepted(policy: PasswordPolicy) -> None:
    """max_length characters exactly is still accepted."""
    password = UNCOMMON_8 * 32
    assert len(password) == policy.max_length
    policy.check(password)


def test_one_over_max_length_is_refused(policy: PasswordPolicy) -> None:
    """max_length + 1 characters is refused."""
    with pytest.raises(WeakPassword, match="at most 256"):
        policy.check(UNCOMMON_8 * 32 + "x")


def test_custom_limits_are_honoured() -> None:
    """A policy built with other limits applies those, not the defaults."""
    policy = PasswordPolicy(min_length=12, max_length=16)
    with pytest.raises(WeakPassword):
        policy.check("vq7#mz2pk4w")  # 11
    policy.check("vq7#mz2pk4wx")  # 12
    policy.check("vq7#mz2pk4wxr9t!")  # 16
    with pytest.raises(WeakPassword):
        policy.check("vq7#mz2pk4wxr9t!j")  # 17


def test_length_counts_nfkc_code_points_that_expand(policy: PasswordPolicy) -> None:
    """Seven typed characters that NFKC expands to eight are long enough ("ﬁ" -> "fi")."""
    typed = "\ufb01q7#mz2"  # LATIN SMALL LIGATURE FI + 6
    assert len(typed) == 7
    assert len(unicodedata.normalize("NFKC", typed)) == 8
    policy.check(typed)


def test_length_counts_nfkc_code_points_that_compose(policy: PasswordPolicy) -> None:
    """Eight typed code points that NFKC composes to seven are too short ("e" + accent)."""
    typed = "e\u0301q7#mz2"
    assert len(typed) == 8
    assert len(unicodedata.normalize("NFKC", typed)) == 7
    with pytest.raises(WeakPassword, match="at least"):
        policy.check(typed)


def test_max_length_counts_normalised_code_points(policy: PasswordPolicy) -> None:
    """256 typed characters that normalise to 257 are over the limit."""
    typed = "\ufb01" + UNCOMMON_8 * 31 + "vq7#mz2"
    assert len(typed) == 256
    with pytest.raises(WeakPassword, match="at most"):
        policy.check(typed)


# -- PasswordPolicy: blocklist and content -------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["password", "PASSWORD", "Password1", "qwerty123", "QwErTy123", "iloveyou", "12345678"],
    ids=["password", "upper", "capitalised-digit", "qwerty123", "mixed-case", "iloveyou", "digits"],
)
def test_common_passwords_are_refused_case_insensitively(
    policy: PasswordPolicy, password: str
) -> None:
    """A password on the common list is refused in any letter case."""
    with pytest.raises(WeakPassword, match="too common"):
        policy.check(password)


def test_common_password_in_compatibility_characters_is_refused(policy: PasswordPolicy) -> None:
    """The full-width spelling of "password" normalises to it and is refused."""
    with pytest.raises(WeakPassword, match="too common"):
        policy.check("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44")


@pytest.mark.parametrize(
    "password",
    [
        PASSWORD,
        "the quick brown fox jumps over the lazy dog again",
        "Ünïcödé pässphräse für alle",
        "пароль для входа в систему",
        "パスワードは長い方が良い",
        "🐴 battery 🔋 staple 📎",
    ],
    ids=["xkcd", "long-sentence", "latin-accents", "cyrillic", "japanese", "emoji"],
)
def test_passphrases_are_accepted(policy: PasswordPolicy, password: str) -> None:
    """Long and non-ASCII passphrases are accepted (no composition rules)."""
    policy.check(password)


@pytest.mark.parametrize(
    "password",
    ["zqzqzqzqzq", "ZZZZZZZZZZ", "Zzzzzzzzzz"],
    ids=["two-letters", "one-letter", "one-letter-any-case"],
)
def test_fewer_than_three_distinct_characters_is_refused(
    policy: PasswordPolicy, password: str
) -> None:
    """A password of one or two distinct characters (after lower-casing) is refused."""
    assert_uncommon(password)
    with pytest.raises(WeakPassword, match="too few"):
        policy.check(password)


def test_three_distinct_characters_are_enough(policy: PasswordPolicy) -> None:
    """Exactly three distinct characters passes the repetition rule."""
    password = "zqxzqxzqxz"
    assert_uncommon(password)
    policy.check(password)


@pytest.mark.parametrize(
    "password",
    ["alice.smith@example.com", "ALICE.SMITH@EXAMPLE.COM", "alice.smith", "Alice.Smith"],
    ids=["email", "email-upper", "local-part", "local-part-mixed-case"],
)
def test_password_equal_to_the_email_or_its_local_part_is_refused(
    policy: PasswordPolicy, password: str
) -> None:
    """The account's own e-mail address (or its local part) is not a password."""
    context = ("alice.smith@example.com", "alice.smith", "example.com")
    assert_uncommon(password)
    policy.check(password)  # fine without the context
    with pytest.raises(WeakPassword, match="e-mail"):
        policy.check(password, context=context)


def test_password_containing_the_local_part_is_accepted(policy: PasswordPolicy) -> None:
    """Only equality with a context word is refused, not containment."""
    policy.check("alice.smith rides a bicycle", context=("alice.smith@example.com", "alice.smith"))


def test_empty_context_words_are_ignored(policy: PasswordPolicy) -> None:
    """An empty context word never matches."""
    policy.check(UNCOMMON_8, context=("", ""))


# -- PasswordHasher ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["owasp-minimum", "rfc9106-low-memory"],
    ids=["owasp-minimum", "rfc9106-low-memory"],
)
async def test_hash_is_argon2id_with_the_profile_parameters(name: str) -> None:
    """The encoded hash is argon2id v19 with the profile's m, t and p."""
    profile = ARGON2_PROFILES[name]  # type: ignore[index]
    hasher = PasswordHasher(profile)
    try:
        encoded = await hasher.hash(PASSWORD)
    finally:
        hasher.close()
    prefix = (
        f"$argon2id$v=19$m={profile.memory_cost},t={profile.time_cost},p={profile.parallelism}$"
    )
    assert encoded.startswith(prefix)
    assert PASSWORD not in encoded


async def test_same_password_hashes_differently(hasher: PasswordHasher) -> None:
    """Each hash has its own salt."""
    assert await hasher.hash(PASSWORD) != await hasher.hash(PASSWORD)


async def test_verify_accepts_the_right_password(hasher: PasswordHasher) -> None:
    """verify is True for the password that was hashed."""
    encoded = await hasher.hash(PASSWORD)
    assert await hasher.verify(encoded, PASSWORD) is True


@pytest.mark.parametrize(
    "attempt",
    ["correct horse battery stapl", "Correct horse battery staple", "", PASSWORD + " "],
    ids=["truncated", "case", "empty", "trailing-space"],
)
async def test_verify_rejects_another_password(hasher: PasswordHasher, attempt: str) -> None:
    """verify is False for any other password."""
    encoded = await hasher.hash(PASSWORD)
    assert await hasher.verify(encoded, attempt) is False


async def test_verify_raises_on_a_corrupt_hash(hasher: PasswordHasher) -> None:
    """A stored value that is not a hash raises rather than counting as a miss."""
    with pytest.raises(InvalidHashError):
        await hasher.verify("not a hash", PASSWORD)


@pytest.mark.parametrize(
    ("hashed", "typed"),
    [
        ("\ufb01sh and chips", "fish and chips"),
        ("fish and chips", "\ufb01sh and chips"),
        ("\uff50\uff41\uff53\uff53 phrase", "pass phrase"),
        ("cafe\u0301 au lait", "caf\u00e9 au lait"),
    ],
    ids=["ligature-stored", "ligature-typed", "full-width", "combining-accent"],
)
async def test_compatibility_characters_verify_against_the_normalised_form(
    hasher: PasswordHasher, hashed: str, typed: str
) -> None:
    """Passwords are NFKC-normalised before hashing and verifying."""
    encoded = await hasher.hash(hashed)
    assert await hasher.verify(encoded, typed) is True


async def test_needs_rehash_when_the_profile_changes(
    hasher: PasswordHasher, stronger_hasher: PasswordHasher
) -> None:
    """A hash made under another profile needs a rehash; one made under this profile does not."""
    weak = await hasher.hash(PASSWORD)
    strong = await stronger_hasher.hash(PASSWORD)
    assert stronger_hasher.needs_rehash(weak) is True
    assert hasher.needs_rehash(strong) is True
    assert hasher.needs_rehash(weak) is False
    assert stronger_hasher.needs_rehash(strong) is False


async def test_a_hash_from_another_profile_still_verifies(
    hasher: PasswordHasher, stronger_hasher: PasswordHasher
) -> None:
    """The parameters are read from the hash, so a profile change does not lock users out."""
    weak = await hasher.hash(PASSWORD)
    assert await stronger_hasher.verify(weak, PASSWORD) is True


@pytest.mark.parametrize(
    "profile",
    [
        Argon2Profile(time_cost=2, memory_cost=19_455, parallelism=1),
        Argon2Profile(time_cost=1, memory_cost=19_456, parallelism=1),
        Argon2Profile(time_cost=2, memory_cost=19_456, parallelism=0),
        Argon2Profile(time_cost=1, memory_cost=8, parallelism=1),
    ],
    ids=["memory", "time", "parallelism", "all-low"],
)
def test_profile_below_the_owasp_floor_is_refused(profile: Argon2Profile) -> None:
    """Parameters under m=19 MiB, t=2, p=1 raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        PasswordHasher(profile)


def test_named_profiles_are_at_least_the_owasp_floor() -> None:
    """Every shipped profile is at or above the OWASP minimum."""
    assert all(profile.at_least_owasp_minimum() for profile in ARGON2_PROFILES.values())


async def _ticks_while(work: Awaitable[object]) -> int:
    """How many 1 ms sleeps the event loop completed before ``work`` finished."""
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            await asyncio.sleep(0.001)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker is now waiting on its first sleep
    await work
    during = ticks
    stop = True
    await ticking
    return during


@pytest.mark.parametrize("operation", ["hash", "verify", "burn"], ids=["hash", "verify", "burn"])
async def test_hashing_runs_off_the_event_loop(hasher: PasswordHasher, operation: str) -> None:
    """While Argon2 runs, the event loop keeps serving other tasks."""
    encoded = await hasher.hash(PASSWORD)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "hash": lambda: hasher.hash(PASSWORD),
        "verify": lambda: hasher.verify(encoded, PASSWORD),
        "burn": lambda: hasher.burn(PASSWORD),
    }
    assert await _ticks_while(calls[operation]()) > 0


async def _median_seconds(work: Callable[[], Awaitable[object]], rounds: int = 5) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        await work()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


async def test_burn_costs_about_one_verification(hasher: PasswordHasher) -> None:
    """burn() (for unknown accounts) takes about as long as a real verify (P2)."""
    encoded = await hasher.hash(PASSWORD)
    verify = await _median_seconds(lambda: hasher.verify(encoded, "wrong password"))
    burn = await _median_seconds(lambda: hasher.burn("wrong password"))
    assert 0.5 * verify <= burn <= 2 * verify


async def test_the_hash_queue_is_bounded() -> None:
    """Past max_pending waiting hashes the hasher refuses with Busy instead of queueing."""
    import asyncio

    from twofold.errors import Busy

    hasher = PasswordHasher(ARGON2_PROFILES["owasp-minimum"], workers=1, max_pending=2)
    try:
        results = await asyncio.gather(
            *(hasher.hash("a long enough password") for _ in range(5)), return_exceptions=True
        )
    finally:
        hasher.close()
    assert sum(isinstance(r, str) for r in results) == 2
    assert sum(isinstance(r, Busy) for r in results) == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_hash_threads_run_nicer_than_the_event_loop(hasher: PasswordHasher) -> None:
    """Hashing runs at a lower CPU priority than the requests, so a burst of logins does not
    take the cores from the requests that only check a session or a token."""
    hash_priority = hasher._pool.submit(
        lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    ).result()
    assert hash_priority > os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_hash_niceness_zero_hashes_at_the_loops_priority() -> None:
    """``hash_niceness = 0``: an operator whose host is busy with other programs keeps
    logins at the same priority as requests."""
    equal = PasswordHasher(ARGON2_PROFILES["owasp-minimum"], niceness=0)
    try:
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        hash_priority = equal._pool.submit(
            lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        ).result()
        assert hash_priority == mine
    finally:
        equal.close()
