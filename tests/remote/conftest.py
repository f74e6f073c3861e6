"""Fixtures for the remote verifier: a stand-in issuer and a verifier following it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.remote.issuer import AUDIENCE, ISSUER, FakeIssuer
from twofold.remote import RemotePolicy, RemoteVerifier

#: Quick to go stale and to allow a JWKS re-read, so that tests wait little.
FAST = RemotePolicy(max_staleness=1.2, jwks_min_refresh=0.5, start_timeout=3)


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


@asynccontextmanager
async def following(
    issuer: FakeIssuer, policy: RemotePolicy = FAST
) -> AsyncIterator[RemoteVerifier]:
    """A verifier of ``issuer`` for ``AUDIENCE``, started, and stopped at the end."""
    async with (
        issuer.client() as http,
        RemoteVerifier(ISSUER, audience=AUDIENCE, policy=policy, http=http) as verifier,
    ):
        yield verifier


@pytest.fixture
async def verifier(issuer: FakeIssuer) -> AsyncIterator[RemoteVerifier]:
    async with following(issuer) as verifier:
        yield verifier
