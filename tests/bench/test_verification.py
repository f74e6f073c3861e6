"""The verification benchmark: honest baselines and well-formed figures (no time limits)."""

from __future__ import annotations

import math
import time

import pytest
from cryptography.exceptions import InvalidSignature

from twofold.bench import verification
from twofold.bench.verification import baseline, measure, targets
from twofold.clock import FrozenClock
from twofold.jose.b64 import b64url_encode
from twofold.jose.jwt import AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import ALGORITHMS, Algorithm, JoseKey


@pytest.fixture(scope="module")
def keys() -> dict[Algorithm, JoseKey]:
    """One key per algorithm (RSA generation is slow, so built once)."""
    return {alg: JoseKey.generate(alg) for alg in ALGORITHMS}


def _token(key: JoseKey, *, now: float | None = None) -> str:
    clock = FrozenClock(time.time() if now is None else now)
    codec = AccessTokenCodec(KeyRing([key], signing_kid=key.kid), TokenPolicy("i", "a"), clock)
    token, _ = codec.issue("user-1", ["user"], sid="s1")
    return token


def _with_other_signature(token: str, key: JoseKey) -> str:
    """The token with its signature replaced by a valid-length signature of other bytes."""
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.{b64url_encode(key.sign(b'other bytes'))}"


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_baseline_accepts_a_real_token(keys: dict[Algorithm, JoseKey], alg: Algorithm) -> None:
    """Each baseline passes for the token the codec issued with the same key."""
    baseline(keys[alg], _token(keys[alg]))()


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_baseline_rejects_a_forged_signature(
    keys: dict[Algorithm, JoseKey], alg: Algorithm
) -> None:
    """The baseline really checks the signature: it is not a no-op timed against us."""
    forged = _with_other_signature(_token(keys[alg]), keys[alg])
    with pytest.raises(InvalidSignature):
        baseline(keys[alg], forged)()


def test_hmac_baseline_rejects_a_changed_payload(keys: dict[Algorithm, JoseKey]) -> None:
    """The minimal HMAC check covers the payload, not only the signature segment."""
    header, payload, signature = _token(keys["HS256"]).split(".")
    changed = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    with pytest.raises(InvalidSignature):
        baseline(keys["HS256"], f"{header}.{changed}.{signature}")()


def test_hmac_baseline_rejects_an_expired_token(keys: dict[Algorithm, JoseKey]) -> None:
    """The minimal HMAC check reads the claims and checks exp, as the issue describes it."""
    expired = _token(keys["HS256"], now=time.time() - 3600)
    with pytest.raises(ValueError, match="expired"):
        baseline(keys["HS256"], expired)()


def test_rounds_interleave_both_sides() -> None:
    """Each round alternates batches of both sides, and which side goes first alternates."""
    calls: list[str] = []

    def ours() -> None:
        calls.append("ours")

    def base() -> None:
        calls.append("base")

    ours_samples, base_samples, ratios = verification._interleaved(ours, base, rounds=4, budget=0.0)
    assert len(ratios) == 4
    assert len(ours_samples) == len(base_samples) == 4 * 3  # the minimum of 3 batches
    timed = calls[-4 * 3 * 2 * verification.BATCH :]
    batches = timed[:: verification.BATCH]
    per_round = [batches[index : index + 6] for index in range(0, len(batches), 6)]
    assert per_round[0] == ["ours", "base"] * 3
    assert per_round[1] == ["base", "ours"] * 3
    assert per_round[2] == ["ours", "base"] * 3


def test_measure_returns_sane_figures() -> None:
    """measure() gives positive, ordered percentiles and a positive ratio for both sides."""
    result = measure("HS256", quick=True)
    assert result.alg == "HS256"
    assert result.baseline_name == "minimal HMAC-plus-JSON check"
    for summary in (result.ours, result.baseline):
        assert summary.count >= 9 * 3
        assert 0 < summary.p50 <= summary.p99 <= summary.max
    assert math.isfinite(result.ratio)
    assert result.ratio > 0


def test_targets_give_one_ratio_per_algorithm() -> None:
    """targets() reports an at-most ratio per algorithm, with both p50s in the detail."""
    found = targets(quick=True)
    assert [target.name.split()[0] for target in found] == list(ALGORITHMS)
    for target, alg in zip(found, ALGORITHMS, strict=True):
        assert target.direction == "at_most"
        assert target.unit == "×"  # noqa: RUF001 - the unit the contract names
        assert target.limit == verification.LIMITS[alg]
        assert target.measured > 0
        assert target.detail.count("µs") >= 2
        assert target.met == (target.measured <= target.limit)
