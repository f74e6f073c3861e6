"""The memory of verified access tokens: a repeat skips the signature check, and nothing
the full check would refuse is ever accepted from memory."""

from __future__ import annotations

from typing import Any

import pytest

from tests.jose.forge import NOW
from twofold.clock import FrozenClock
from twofold.errors import InvalidToken
from twofold.jose.jwt import AccessClaims, AccessTokenCodec
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import JoseKey
from twofold.jose.verified_tokens import VerifiedTokens


class Counting:
    """The codec, counting the full verifications it is asked for."""

    def __init__(self, codec: AccessTokenCodec) -> None:
        self.codec = codec
        self.calls = 0

    @property
    def keyring(self) -> KeyRing:
        return self.codec.keyring

    @property
    def policy(self) -> Any:
        return self.codec.policy

    def verify(self, token: str, *, audience: str | None = None) -> AccessClaims:
        self.calls += 1
        return self.codec.verify(token, audience=audience)


def remembering(codec: AccessTokenCodec, clock: FrozenClock, capacity: int = 8) -> Any:
    counting = Counting(codec)
    return counting, VerifiedTokens(counting, clock, capacity=capacity)  # type: ignore[arg-type]


def reason(verified: VerifiedTokens, token: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidToken) as caught:
        verified.verify(token, **kwargs)
    return caught.value.reason


def test_a_repeat_is_not_verified_again(codec: AccessTokenCodec, clock: FrozenClock) -> None:
    counting, verified = remembering(codec, clock)
    token, _ = codec.issue("user-1", ["user"])
    first = verified.verify(token)
    assert verified.verify(token) == first == codec.verify(token)
    assert counting.calls == 1


def test_expiry_is_checked_on_every_repeat(codec: AccessTokenCodec, clock: FrozenClock) -> None:
    """The same instant the full check refuses a token (exp plus the leeway), memory does."""
    counting, verified = remembering(codec, clock)
    token, claims = codec.issue("user-1", [])
    verified.verify(token)
    clock.advance(claims.exp - NOW + 29)
    verified.verify(token)
    clock.advance(1)
    assert reason(verified, token) == "expired"
    assert len(verified) == 0
    assert reason(verified, token) == "expired"  # and the full check agrees
    assert counting.calls == 2


def test_a_key_change_forgets_everything(
    codec: AccessTokenCodec, clock: FrozenClock, key: JoseKey, ring: KeyRing
) -> None:
    """A key withdrawn (compromised) or a ring rotated: no token is served from memory."""
    _, verified = remembering(codec, clock)
    token, _ = codec.issue("user-1", [])
    verified.verify(token)
    codec.keyring = KeyRing([k for k in ring if k.kid != key.kid])
    assert reason(verified, token) == "unknown_key"
    assert len(verified) == 0


def test_an_audience_is_remembered_apart(codec: AccessTokenCodec, clock: FrozenClock) -> None:
    """A token checked for one audience is not thereby accepted for another."""
    _, verified = remembering(codec, clock)
    token, _ = codec.issue("user-1", [])
    verified.verify(token)
    assert reason(verified, token, audience="https://other.example") == "wrong_audience"


def test_refused_tokens_are_never_remembered(codec: AccessTokenCodec, clock: FrozenClock) -> None:
    counting, verified = remembering(codec, clock)
    token, _ = codec.issue("user-1", [])
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for _ in range(3):
        assert reason(verified, forged) in {"bad_signature", "malformed"}
    assert len(verified) == 0
    assert counting.calls == 3


def test_memory_is_bounded_oldest_first(codec: AccessTokenCodec, clock: FrozenClock) -> None:
    counting, verified = remembering(codec, clock, capacity=2)
    tokens = [codec.issue(f"user-{n}", [])[0] for n in range(3)]
    for token in tokens:
        verified.verify(token)
    assert len(verified) == 2
    verified.verify(tokens[2])
    verified.verify(tokens[1])
    assert counting.calls == 3
    verified.verify(tokens[0])  # the oldest was forgotten
    assert counting.calls == 4


def test_capacity_zero_verifies_every_time(codec: AccessTokenCodec, clock: FrozenClock) -> None:
    counting, verified = remembering(codec, clock, capacity=0)
    token, _ = codec.issue("user-1", [])
    verified.verify(token)
    verified.verify(token)
    assert counting.calls == 2
    assert len(verified) == 0
    with pytest.raises(ValueError, match="capacity"):
        VerifiedTokens(codec, clock, capacity=-1)
