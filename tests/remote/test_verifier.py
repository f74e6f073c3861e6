"""RemoteVerifier against a stand-in issuer: discovery checks, the JWKS cache and its rate
limit, revocations from the feed, reconnection, and what happens when the feed is lost
(T1-T3, T5, T9, O3)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable

import pytest

from tests.jose.forge import sign_raw
from tests.remote.conftest import FAST, following
from tests.remote.issuer import AUDIENCE, ISSUER, FakeIssuer
from twofold.errors import ConfigurationError, InvalidToken
from twofold.jose.b64 import b64url_decode, b64url_encode
from twofold.jose.keys import JoseKey
from twofold.remote import FeedUnavailable, RemotePolicy, RemoteVerifier
from twofold.revocation import EVERYONE


async def eventually(condition: Callable[[], bool], limit: float = 2.0) -> float:
    """Seconds until ``condition`` holds; fails after ``limit``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit:
            raise AssertionError(f"not within {limit} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def refused(verifier: RemoteVerifier, token: str) -> bool:
    try:
        await verifier.verify(token)
    except InvalidToken:
        return True
    return False


async def refused_within(verifier: RemoteVerifier, token: str, limit: float = 2.0) -> float:
    started = time.monotonic()
    while not await refused(verifier, token):
        if time.monotonic() - started > limit:
            raise AssertionError(f"still accepted after {limit} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def reason(exc: pytest.ExceptionInfo[InvalidToken]) -> str:
    return exc.value.reason


# -- discovery ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("issuer", "https://issuer.test/"),
        ("issuer", "https://evil.test"),
        ("jwks_uri", "https://evil.test/.well-known/jwks.json"),
        ("jwks_uri", "http://issuer.test/.well-known/jwks.json"),
        ("jwks_uri", "https://issuer.test:8443/.well-known/jwks.json"),
        ("twofold_revocation_feed_endpoint", "https://evil.test/oauth/revocations"),
        ("twofold_revocation_feed_endpoint", None),
    ],
    ids=[
        "issuer-slash",
        "issuer-other",
        "jwks-other-host",
        "jwks-other-scheme",
        "jwks-other-port",
        "feed-other-host",
        "feed-missing",
    ],
)
async def test_a_discovery_document_contradicting_the_configuration_is_refused(
    issuer: FakeIssuer, member: str, value: str | None
) -> None:
    """The issuer must match exactly and the keys and feed must be on its origin: a
    misdirected document never points the verifier at someone else's keys."""
    if value is None:
        del issuer.discovery[member]
    else:
        issuer.discovery[member] = value
    async with issuer.client() as http:
        verifier = RemoteVerifier(ISSUER, audience=AUDIENCE, policy=FAST, http=http)
        with pytest.raises(ConfigurationError):
            await verifier.start()
    assert issuer.jwks_reads() == 0
    assert not issuer.feed_requests()


async def test_an_unreachable_issuer_fails_start_after_the_timeout(issuer: FakeIssuer) -> None:
    issuer.feed_status = 503
    policy = dataclasses.replace(FAST, start_timeout=0.5)
    async with issuer.client() as http:
        verifier = RemoteVerifier(ISSUER, audience=AUDIENCE, policy=policy, http=http)
        with pytest.raises(FeedUnavailable):
            await verifier.start()
    assert len(issuer.feed_requests()) >= 2  # retried meanwhile


async def test_verify_before_start_fails_closed(issuer: FakeIssuer) -> None:
    verifier = RemoteVerifier(ISSUER, audience=AUDIENCE)
    with pytest.raises(FeedUnavailable):
        await verifier.verify(issuer.token())


def test_a_policy_whose_bound_is_within_a_heartbeat_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        RemotePolicy(max_staleness=1.0)
    with pytest.raises(ConfigurationError):
        RemotePolicy(on_feed_loss="maybe")  # type: ignore[arg-type]


# -- tokens ------------------------------------------------------------------------------


async def test_a_valid_token_verifies(issuer: FakeIssuer, verifier: RemoteVerifier) -> None:
    claims = await verifier.verify(issuer.token(sub="u-7", roles=["admin"], scope="read"))
    assert (claims.sub, claims.aud, claims.iss) == ("u-7", AUDIENCE, ISSUER)
    assert claims.roles == ("admin",)
    assert claims.scope == "read"


async def test_claims_are_checked_as_the_issuer_checks_them(
    issuer: FakeIssuer, verifier: RemoteVerifier
) -> None:
    """T5: another audience, another issuer, expired -- each refused."""
    with pytest.raises(InvalidToken) as wrong_aud:
        await verifier.verify(issuer.token(audience="twofold"))
    assert reason(wrong_aud) == "wrong_audience"
    token = issuer.token()
    header, payload, _ = token.split(".")
    claims = json.loads(b64url_decode(payload))
    for changes, expected in (
        ({"iss": "https://evil.test"}, "wrong_issuer"),
        ({"exp": int(time.time()) - 100, "iat": int(time.time()) - 200}, "expired"),
        ({"exp": int(time.time()) + 10_000}, "lifetime_exceeded"),
    ):
        forged = sign_raw(issuer.signing, b64url_decode(header), {**claims, **changes})
        with pytest.raises(InvalidToken) as exc:
            await verifier.verify(forged)
        assert reason(exc) == expected


async def test_forged_tokens_are_refused(issuer: FakeIssuer, verifier: RemoteVerifier) -> None:
    """T1-T3: another key under our kid, alg none, a key carried in the header, an HMAC
    signed with the public key, and a tampered payload."""
    token = issuer.token()
    header_b64, payload_b64, signature = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    claims = json.loads(b64url_decode(payload_b64))
    other = JoseKey.generate("ES256", kid=issuer.signing.kid)
    jwk = other.public_jwk()
    tampered = {**claims, "roles": ["admin"]}
    forgeries = {
        "other-key": sign_raw(other, header, claims),
        "alg-none": f"{b64url_encode(json.dumps({**header, 'alg': 'none'}).encode())}"
        f".{payload_b64}.",
        "embedded-jwk": sign_raw(other, {**header, "jwk": jwk}, claims),
        "jku": sign_raw(other, {**header, "jku": "https://evil.test/jwks"}, claims),
        "hmac-public": hmac_with_public_key(issuer, {**header, "alg": "HS256"}, claims),
        "tampered": f"{header_b64}.{b64url_encode(json.dumps(tampered).encode())}.{signature}",
    }
    for forged in forgeries.values():
        with pytest.raises(InvalidToken):
            await verifier.verify(forged)


def hmac_with_public_key(issuer: FakeIssuer, header: dict[str, str], claims: object) -> str:
    """HS256 keyed with the issuer's published key: algorithm confusion (T2)."""
    secret = json.dumps(issuer.published[0]).encode()
    signing_input = (
        f"{b64url_encode(json.dumps(header).encode())}.{b64url_encode(json.dumps(claims).encode())}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


# -- the JWKS ----------------------------------------------------------------------------


async def test_an_unknown_kid_re_reads_the_jwks(
    issuer: FakeIssuer, verifier: RemoteVerifier
) -> None:
    """A key the issuer published after the last read (a rotation not yet announced)."""
    await asyncio.sleep(FAST.jwks_min_refresh)  # the read at start counts too
    new = JoseKey.generate("EdDSA", kid="k2")
    issuer.publish(issuer.signing, new)
    reads = issuer.jwks_reads()
    claims = await verifier.verify(issuer.token(new))
    assert claims.sub == "user-1"
    assert issuer.jwks_reads() == reads + 1


async def test_unknown_kids_re_read_the_jwks_at_most_once_per_interval(
    issuer: FakeIssuer, verifier: RemoteVerifier
) -> None:
    """A stream of tokens with made-up kids cannot make the verifier hammer the issuer."""
    strangers = [JoseKey.generate("ES256", kid=f"made-up-{n}") for n in range(20)]
    await asyncio.sleep(FAST.jwks_min_refresh)  # the read at start counts too
    reads = issuer.jwks_reads()
    results = await asyncio.gather(
        *(verifier.verify(issuer.token(key)) for key in strangers), return_exceptions=True
    )
    assert all(isinstance(r, InvalidToken) and r.reason == "unknown_key" for r in results)
    for key in strangers:
        with pytest.raises(InvalidToken):
            await verifier.verify(issuer.token(key))
    assert issuer.jwks_reads() == reads + 1
    await asyncio.sleep(FAST.jwks_min_refresh + 0.05)
    with pytest.raises(InvalidToken):
        await verifier.verify(issuer.token(strangers[0]))
    assert issuer.jwks_reads() == reads + 2


async def test_a_key_entry_re_reads_the_jwks(issuer: FakeIssuer, verifier: RemoteVerifier) -> None:
    """A compromised key dropped by the issuer is refused as soon as the feed says so,
    without waiting for a token with an unknown kid."""
    old = issuer.token()
    new_key = JoseKey.generate("ES256", kid="k2")
    issuer.publish(new_key)
    reads = issuer.jwks_reads()
    issuer.revoke("key", "k2")
    delay = await refused_within(verifier, old, 1.0)
    assert delay < 0.2
    assert issuer.jwks_reads() > reads
    assert (await verifier.verify(issuer.token(new_key))).sub == "user-1"


async def test_a_key_change_whose_jwks_cannot_be_read_fails_closed(
    issuer: FakeIssuer, verifier: RemoteVerifier
) -> None:
    """A key change announced while the JWKS cannot be read: the dropped (perhaps
    compromised) key is trusted at most max_staleness longer, then tokens are refused
    until the JWKS is read; then the dropped key's tokens are refused for good."""
    old = issuer.token()
    new_key = JoseKey.generate("ES256", kid="k2")
    issuer.publish(new_key)
    issuer.jwks_status = 503
    issuer.revoke("key", "k2")
    started = time.monotonic()
    await eventually(lambda: verifier.staleness() > FAST.max_staleness, 3)
    with pytest.raises(FeedUnavailable):
        await verifier.verify(old)
    assert time.monotonic() - started < FAST.max_staleness + 0.5
    issuer.jwks_status = 200
    await eventually(lambda: verifier.staleness() < FAST.max_staleness, 5)
    with pytest.raises(InvalidToken):
        await verifier.verify(old)
    assert (await verifier.verify(issuer.token(new_key))).sub == "user-1"


async def test_published_keys_without_alg_are_skipped(issuer: FakeIssuer) -> None:
    """The ring decides the algorithm (T2): a key that does not name one is not used."""
    jwk = issuer.signing.public_jwk()
    assert jwk is not None
    issuer.published = [{k: v for k, v in jwk.items() if k != "alg"}]
    async with following(issuer) as verifier:
        with pytest.raises(InvalidToken) as exc:
            await verifier.verify(issuer.token())
    assert reason(exc) == "unknown_key"


# -- revocations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "subject"),
    [("family", "fam-1"), ("user", "user-1"), ("user", EVERYONE), ("token", None)],
    ids=["family", "user", "everyone", "token"],
)
async def test_a_revocation_on_the_feed_refuses_the_token(
    issuer: FakeIssuer, verifier: RemoteVerifier, kind: str, subject: str | None
) -> None:
    token = issuer.token(jti="jti-1")
    other = issuer.token(sub="user-2", sid="fam-2", jti="jti-2")
    await verifier.verify(token)
    issuer.revoke(kind, subject or "jti-1", at=time.time() + 1)
    assert await refused_within(verifier, token) < 0.2
    if subject != EVERYONE:
        await verifier.verify(other)


async def test_revocations_made_before_start_are_caught_up(issuer: FakeIssuer) -> None:
    token = issuer.token()
    issuer.revoke("family", "fam-1")
    async with following(issuer) as verifier:
        assert await refused(verifier, token)


async def test_the_follower_resumes_from_its_last_seq(
    issuer: FakeIssuer, verifier: RemoteVerifier
) -> None:
    """After a disconnect it reconnects with Last-Event-ID, and what was revoked while it
    was away still arrives."""
    issuer.revoke("token", "jti-a")
    await asyncio.sleep(0.1)
    issuer.drop_connections()
    issuer.revoke("family", "fam-1")
    token = issuer.token()
    await refused_within(verifier, token)
    await eventually(lambda: len(issuer.feed_requests()) >= 2)
    resumed = issuer.feed_requests()[-1]
    assert int(resumed.headers["last-event-id"]) >= 1


# -- losing the feed ---------------------------------------------------------------------


async def test_a_lost_feed_fails_closed(issuer: FakeIssuer, verifier: RemoteVerifier) -> None:
    """No heartbeat for max_staleness: tokens are refused with FeedUnavailable (O3), and
    accepted again once heartbeats resume."""
    token = issuer.token()
    issuer.heartbeating = False
    started = time.monotonic()
    while True:
        try:
            await verifier.verify(token)
        except FeedUnavailable:
            break
        await asyncio.sleep(0.01)
    assert FAST.max_staleness - 0.1 < time.monotonic() - started < FAST.max_staleness + 0.5
    issuer.heartbeating = True
    await asyncio.sleep(0.3)
    assert (await verifier.verify(token)).sub == "user-1"


async def test_fail_open_keeps_verifying_on_the_last_list(
    issuer: FakeIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """fail_open: tokens still verify (revocations already known still refuse) and one
    warning is logged for the outage."""
    revoked = issuer.token(sid="fam-gone")
    issuer.revoke("family", "fam-gone")
    policy = dataclasses.replace(FAST, on_feed_loss="fail_open")
    async with following(issuer, policy) as verifier:
        issuer.heartbeating = False
        await eventually(lambda: verifier.staleness() > policy.max_staleness, 3)
        with caplog.at_level(logging.WARNING, logger="twofold.remote"):
            for _ in range(5):
                assert (await verifier.verify(issuer.token())).sub == "user-1"
                assert await refused(verifier, revoked)
        warnings = [r for r in caplog.records if r.name == "twofold.remote"]
        assert len(warnings) == 1
        assert "fail_open" in warnings[0].getMessage()


async def test_a_private_feed_gets_the_credentials_and_only_the_feed(
    issuer: FakeIssuer,
) -> None:
    issuer.feed_authorization = "Basic dGZjX2lkOnMzY3JldA=="  # tfc_id:s3cret
    async with issuer.client() as http:
        verifier = RemoteVerifier(
            ISSUER, audience=AUDIENCE, policy=FAST, http=http, client_credentials=("x", "y")
        )
        with pytest.raises(ConfigurationError):
            await verifier.start()
        async with RemoteVerifier(
            ISSUER,
            audience=AUDIENCE,
            policy=FAST,
            http=http,
            client_credentials=("tfc_id", "s3cret"),
        ) as verifier:
            await verifier.verify(issuer.token())
    others = [r for r in issuer.requests if r.url.path != "/oauth/revocations"]
    assert all("authorization" not in r.headers for r in others)
