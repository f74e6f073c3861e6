"""Fixtures for the JOSE tests: one key per algorithm, rings, a frozen clock and a codec."""

from __future__ import annotations

import pytest

from tests.jose.forge import AUDIENCE, ISSUER, NOW
from twofold.clock import FrozenClock
from twofold.jose.jwt import AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import ALGORITHMS, Algorithm, JoseKey


@pytest.fixture(scope="session")
def keys() -> dict[Algorithm, JoseKey]:
    """One signing key per algorithm (RSA generation is slow, so built once)."""
    return {alg: JoseKey.generate(alg) for alg in ALGORITHMS}


@pytest.fixture(scope="session")
def foreign_keys() -> dict[Algorithm, JoseKey]:
    """A second key per algorithm that no ring under test contains."""
    return {alg: JoseKey.generate(alg) for alg in ALGORITHMS}


@pytest.fixture(params=ALGORITHMS, ids=list(ALGORITHMS))
def alg(request: pytest.FixtureRequest) -> Algorithm:
    """Each supported algorithm in turn."""
    value: Algorithm = request.param
    return value


@pytest.fixture
def key(keys: dict[Algorithm, JoseKey], alg: Algorithm) -> JoseKey:
    """The session key for the current algorithm."""
    return keys[alg]


@pytest.fixture
def ring(keys: dict[Algorithm, JoseKey], key: JoseKey) -> KeyRing:
    """Every session key, with the current algorithm's key signing."""
    return KeyRing(keys.values(), signing_kid=key.kid)


@pytest.fixture
def clock() -> FrozenClock:
    """A clock frozen at a fixed instant."""
    return FrozenClock(NOW)


@pytest.fixture
def policy() -> TokenPolicy:
    """The access-token policy the tests issue and verify under."""
    return TokenPolicy(issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def codec(ring: KeyRing, policy: TokenPolicy, clock: FrozenClock) -> AccessTokenCodec:
    """An access-token codec over the current ring."""
    return AccessTokenCodec(ring, policy, clock)
