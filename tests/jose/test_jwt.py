"""RFC 9068 access tokens: issuing, and claim checks after the signature (T1, T5, T6)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from tests.jose.forge import AUDIENCE, ISSUER, NOW, at_header, good_claims, sign_raw
from twofold.clock import FrozenClock
from twofold.errors import ConfigurationError, InvalidToken
from twofold.jose import jws
from twofold.jose.b64 import b64url_decode
from twofold.jose.jwt import AccessClaims, AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import Algorithm, JoseKey


def _reason(codec: AccessTokenCodec, token: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidToken) as caught:
        codec.verify(token, **kwargs)
    return caught.value.reason


def _forge(key: JoseKey, claims: dict[str, Any] | bytes, **header: Any) -> str:
    return sign_raw(key, at_header(key, **header), claims)


def test_issue_then_verify(codec: AccessTokenCodec, key: JoseKey) -> None:
    """A token we issue verifies to equal claims, with typ at+jwt and integer times."""
    token, issued = codec.issue(
        "user-1", ["admin", "user"], scope="openid profile", extra={"tenant": "t1"}, auth_time=NOW
    )
    verified = codec.verify(token)
    assert verified == issued
    assert dataclasses.asdict(verified) == dataclasses.asdict(issued)
    assert verified.roles == ("admin", "user")
    assert verified.extra == {"tenant": "t1"}
    assert verified.auth_time == int(NOW)
    header = json.loads(b64url_decode(token.split(".")[0]))
    assert header == {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    body = json.loads(b64url_decode(token.split(".")[1]))
    assert body["iat"] == body["nbf"] == int(NOW)
    assert body["exp"] == int(NOW) + 300
    assert all(type(body[name]) is int for name in ("iat", "nbf", "exp"))
    assert body["client_id"] == "twofold"


def test_verified_claims_are_a_complete_dataclass(codec: AccessTokenCodec) -> None:
    """The fast construction on verify sets every field, exactly as the constructor would."""
    token, _ = codec.issue("user-1", [])
    verified = codec.verify(token)
    names = {field.name for field in dataclasses.fields(AccessClaims)}
    assert set(vars(verified)) == names
    assert verified == AccessClaims(**{name: getattr(verified, name) for name in names})
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.sub = "admin"  # type: ignore[misc]


def test_jti_is_random_and_long(codec: AccessTokenCodec) -> None:
    """Every token gets a fresh jti of at least 16 random bytes."""
    jtis = {codec.issue("user-1", [])[1].jti for _ in range(50)}
    assert len(jtis) == 50
    assert all(len(b64url_decode(jti)) >= 16 for jti in jtis)


def test_audience_and_lifetime_overrides(codec: AccessTokenCodec) -> None:
    """issue() can target another audience and lifetime; verify() checks the one asked for."""
    token, claims = codec.issue("user-1", [], audience="https://other.test", lifetime=60)
    assert claims.exp - claims.iat == 60
    assert codec.verify(token, audience="https://other.test").aud == "https://other.test"
    assert _reason(codec, token) == "wrong_audience"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sub": ""},
        {"roles": "admin"},
        {"roles": [1]},
        {"extra": {"exp": 1}},
        {"extra": {"iss": "x"}},
        {"lifetime": 0},
        {"lifetime": 301},
        {"extra": {"x": float("nan")}},
        {"audience": ""},
    ],
    ids=[
        "empty-sub",
        "roles-str",
        "roles-int",
        "extra-exp",
        "extra-iss",
        "zero-lifetime",
        "lifetime-over-policy",
        "nan",
        "empty-audience",
    ],
)
def test_issue_refuses_bad_input(codec: AccessTokenCodec, kwargs: dict[str, Any]) -> None:
    """Bad subjects, roles or lifetimes, and extras overriding registered claims, are refused."""
    arguments: dict[str, Any] = {"sub": "user-1", "roles": [], **kwargs}
    with pytest.raises(ValueError, match=r"."):
        codec.issue(arguments.pop("sub"), arguments.pop("roles"), **arguments)


@pytest.mark.parametrize(
    "changes",
    [
        {"issuer": ""},
        {"audience": ""},
        {"lifetime": 0.5},
        {"lifetime": 86_401},
        {"leeway": -1},
        {"leeway": 301},
        {"client_id": ""},
    ],
    ids=[
        "issuer",
        "audience",
        "lifetime-short",
        "lifetime-long",
        "leeway-neg",
        "leeway-big",
        "cid",
    ],
)
def test_policy_is_validated(changes: dict[str, Any]) -> None:
    """A TokenPolicy with empty names or absurd times is a configuration error."""
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, **changes}
    with pytest.raises(ConfigurationError):
        TokenPolicy(**values)


def test_a_token_longer_lived_than_the_policy_is_refused(
    codec: AccessTokenCodec, ring: KeyRing, clock: FrozenClock
) -> None:
    """A token issued under a longer lifetime (a setting lowered since) is refused: the
    server keeps revocations only for its own lifetime, so it could outlive one (T9)."""
    longer = AccessTokenCodec(ring, TokenPolicy(ISSUER, AUDIENCE, lifetime=3600), clock)
    token, _ = longer.issue("user-1", [])
    with pytest.raises(InvalidToken, match="lifetime_exceeded"):
        codec.verify(token)
    assert codec.verify(codec.issue("user-1", [])[0]).sub == "user-1"


# --- time claims (T5) -------------------------------------------------------------------------


def test_expiry_with_leeway(codec: AccessTokenCodec, clock: FrozenClock) -> None:
    """A token lives until exp plus the 30 s leeway, and not one second longer."""
    token, claims = codec.issue("user-1", [])
    clock.advance(claims.exp - NOW + 29)
    codec.verify(token)
    clock.advance(1)
    assert _reason(codec, token) == "expired"


@pytest.mark.parametrize(
    ("claim", "offset", "reason"),
    [
        ("nbf", 31, "not_yet_valid"),
        ("iat", 31, "not_yet_valid"),
        ("exp", -30, "expired"),
        ("exp", -10_000, "expired"),
    ],
    ids=["nbf-future", "iat-future", "exp-at-leeway", "exp-long-past"],
)
def test_time_windows(
    key: JoseKey, codec: AccessTokenCodec, claim: str, offset: int, reason: str
) -> None:
    """nbf and iat may not lie in the future, nor exp in the past, beyond the leeway."""
    token = _forge(key, good_claims(**{claim: int(NOW) + offset}))
    assert _reason(codec, token) == reason


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_small_clock_skew_is_tolerated(key: JoseKey, codec: AccessTokenCodec, claim: str) -> None:
    """An issuer clock up to 30 s ahead is within the leeway."""
    codec.verify(_forge(key, good_claims(**{claim: int(NOW) + 30})))


@pytest.mark.parametrize(
    "raw_exp",
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1e400",
        b"-1e400",
        b"true",
        b"false",
        b'"1900000000"',
        b"[1900000000]",
        b"{}",
    ],
    ids=["nan", "inf", "neg-inf", "1e400", "neg-1e400", "true", "false", "string", "list", "obj"],
)
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "auth_time"])
def test_time_claims_must_be_finite_numbers(
    key: JoseKey, codec: AccessTokenCodec, claim: str, raw_exp: bytes
) -> None:
    """NaN, infinities (literal or 1e400), bools, strings and containers are malformed."""
    body = json.dumps(good_claims(**{claim: 0})).encode()
    body = body.replace(f'"{claim}": 0'.encode(), f'"{claim}": '.encode() + raw_exp)
    assert raw_exp in body
    assert _reason(codec, _forge(key, body)) == "malformed"


def test_float_times_are_accepted(key: JoseKey, codec: AccessTokenCodec) -> None:
    """NumericDate may be fractional (RFC 7519 section 2)."""
    claims = codec.verify(_forge(key, good_claims(exp=NOW + 100.5, iat=NOW - 0.25)))
    assert claims.exp == NOW + 100.5


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"])
def test_required_claims(key: JoseKey, codec: AccessTokenCodec, claim: str) -> None:
    """exp (T5) and the other RFC 9068 required claims must be present."""
    assert _reason(codec, _forge(key, good_claims(**{claim: None}))) == "missing_claim"
    body = json.dumps(good_claims(**{claim: 0})).replace(f'"{claim}": 0', f'"{claim}": null')
    assert _reason(codec, _forge(key, body.encode())) == "missing_claim"


def test_optional_claims_may_be_absent(key: JoseKey, codec: AccessTokenCodec) -> None:
    """nbf, roles, scope and auth_time are optional."""
    claims = codec.verify(_forge(key, good_claims(nbf=None, roles=None)))
    assert claims.nbf is None
    assert claims.roles == ()
    assert claims.scope is None
    assert claims.auth_time is None


# --- issuer, audience and identifiers (T5) ----------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [ISSUER + "/", ISSUER.upper(), "https://evil.test", ["https://auth.example.test"], 1, ""],
    ids=["trailing-slash", "case", "other", "list", "number", "empty"],
)
def test_issuer_must_match_exactly(key: JoseKey, codec: AccessTokenCodec, iss: object) -> None:
    """iss is compared exactly, as a string."""
    assert _reason(codec, _forge(key, good_claims(iss=iss))) == "wrong_issuer"


@pytest.mark.parametrize(
    ("aud", "reason"),
    [
        ("https://other.test", "wrong_audience"),
        (AUDIENCE + "/", "wrong_audience"),
        (["https://a.test", "https://b.test"], "wrong_audience"),
        ([], "wrong_audience"),
        ([AUDIENCE, 7], "malformed"),
        (7, "malformed"),
        ({"aud": AUDIENCE}, "malformed"),
    ],
    ids=["other", "trailing-slash", "list-without", "empty-list", "list-non-str", "number", "obj"],
)
def test_audience_must_match_exactly(
    key: JoseKey, codec: AccessTokenCodec, aud: object, reason: str
) -> None:
    """aud is a string or a list of strings that must contain our audience exactly."""
    assert _reason(codec, _forge(key, good_claims(aud=aud))) == reason


def test_audience_list_containing_ours_is_accepted(key: JoseKey, codec: AccessTokenCodec) -> None:
    """A multi-audience token is accepted when our audience is one of them."""
    claims = codec.verify(_forge(key, good_claims(aud=["https://a.test", AUDIENCE])))
    assert claims.aud == AUDIENCE


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sub": ""}, "malformed"),
        ({"sub": 42}, "malformed"),
        ({"jti": ""}, "malformed"),
        ({"client_id": ["a"]}, "malformed"),
        ({"roles": "admin"}, "malformed"),
        ({"roles": ["admin", 1]}, "malformed"),
        ({"roles": [["admin"]]}, "malformed"),
        ({"scope": ["openid"]}, "malformed"),
    ],
    ids=[
        "sub-empty",
        "sub-int",
        "jti-empty",
        "client-list",
        "roles-str",
        "roles-int",
        "nested",
        "scope",
    ],
)
def test_identifier_and_role_types(
    key: JoseKey, codec: AccessTokenCodec, changes: dict[str, Any], reason: str
) -> None:
    """sub, jti, client_id are non-empty strings; roles a list of strings; scope a string."""
    assert _reason(codec, _forge(key, good_claims(**changes))) == reason


# --- payload shape (T1, T7) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b'"claims"',
        b"not json",
        b"",
        b"\xff\xfe",
        b'{"sub":"a","sub":"b"}',
        json.dumps(good_claims())
        .replace('"sub": "user-1"', '"sub": "user-1", "sub": "admin"')
        .encode(),
        b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}",
    ],
    ids=["list", "string", "not-json", "empty", "not-utf8", "duplicate", "duplicate-sub", "nested"],
)
def test_malformed_payload_is_rejected(
    key: JoseKey, codec: AccessTokenCodec, payload: bytes
) -> None:
    """Even correctly signed, the payload must be one strict JSON object."""
    assert _reason(codec, _forge(key, payload)) == "malformed"


def test_nested_payload_past_the_size_limit_is_oversized(
    keys: dict[Algorithm, JoseKey], policy: TokenPolicy, clock: FrozenClock
) -> None:
    """10 000 nested arrays never reach the parser: the 8 KiB limit stops them first."""
    key = keys["HS256"]
    codec = AccessTokenCodec(KeyRing([key]), policy, clock)
    token = _forge(key, b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}")
    assert _reason(codec, token) == "oversized"


def test_claims_are_not_read_before_the_signature(
    key: JoseKey, codec: AccessTokenCodec, foreign_keys: dict[Algorithm, JoseKey]
) -> None:
    """An expired, garbage or mis-addressed payload under a bad signature is bad_signature (T1)."""
    for payload in (good_claims(exp=1), b"not json", good_claims(iss="https://evil.test")):
        forged = sign_raw(foreign_keys[key.alg], at_header(key), payload)
        assert _reason(codec, forged) == "bad_signature"


@pytest.mark.parametrize("typ", ["JWT", "rt+jwt", None], ids=["jwt", "refresh", "missing"])
def test_only_access_tokens_are_accepted(
    key: JoseKey, codec: AccessTokenCodec, typ: object
) -> None:
    """A validly signed JWT of another type (or untyped) cannot pass as an access token (T6)."""
    header: dict[str, Any] = {"alg": key.alg, "kid": key.kid}
    if typ is not None:
        header["typ"] = typ
    assert _reason(codec, sign_raw(key, header, good_claims())) == "wrong_type"


def test_token_from_another_ring_is_rejected(
    policy: TokenPolicy, clock: FrozenClock, foreign_keys: dict[Algorithm, JoseKey], key: JoseKey
) -> None:
    """A token issued by a different server's key is unknown to ours."""
    foreign = foreign_keys[key.alg]
    issuer = AccessTokenCodec(KeyRing([foreign], signing_kid=foreign.kid), policy, clock)
    ours = AccessTokenCodec(KeyRing([key], signing_kid=key.kid), policy, clock)
    token, _ = issuer.issue("user-1", ["admin"])
    assert _reason(ours, token) == "unknown_key"


def test_key_rotation(
    keys: dict[Algorithm, JoseKey], policy: TokenPolicy, clock: FrozenClock
) -> None:
    """After rotation, tokens from the old key verify while it stays in the ring, then stop."""
    old, new = keys["ES256"], keys["EdDSA"]
    before = AccessTokenCodec(KeyRing([old], signing_kid=old.kid), policy, clock)
    token, _ = before.issue("user-1", [])
    during = AccessTokenCodec(KeyRing([old, new], signing_kid=new.kid), policy, clock)
    during.verify(token)
    assert json.loads(b64url_decode(during.issue("user-1", [])[0].split(".")[0]))["kid"] == new.kid
    after = AccessTokenCodec(KeyRing([new], signing_kid=new.kid), policy, clock)
    assert _reason(after, token) == "unknown_key"


def test_verify_only_ring_cannot_issue(
    keys: dict[Algorithm, JoseKey], policy: TokenPolicy, clock: FrozenClock
) -> None:
    """A resource server's ring (from JWKS) verifies tokens but cannot mint them."""
    issuer = AccessTokenCodec(KeyRing(keys.values(), signing_kid=keys["RS256"].kid), policy, clock)
    token, _ = issuer.issue("user-1", ["reader"])
    remote = KeyRing.from_jwks(KeyRing(keys.values()).jwks())
    resource = AccessTokenCodec(remote, policy, clock)
    assert resource.verify(token).roles == ("reader",)
    with pytest.raises(ConfigurationError):
        resource.issue("user-1", [])


def test_unknown_header_members_do_not_change_the_result(
    key: JoseKey, ring: KeyRing, codec: AccessTokenCodec
) -> None:
    """Harmless extra header members (e.g. cty, x5t) are ignored, never used for keys (T3)."""
    token = _forge(key, good_claims(), x5t="abc", cty="JWT")
    assert codec.verify(token).sub == "user-1"
    assert jws.verify(token, ring, typ="at+jwt")[0]["x5t"] == "abc"
