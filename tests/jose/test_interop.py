"""Interoperability with PyJWT, an independent implementation, in both directions."""

from __future__ import annotations

import time
from typing import Any

import jwt as pyjwt
import pytest

from tests.jose.forge import AUDIENCE, ISSUER
from twofold.clock import FrozenClock
from twofold.errors import InvalidToken
from twofold.jose.jwt import AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import JoseKey


@pytest.fixture
def live_codec(key: JoseKey) -> AccessTokenCodec:
    """A codec on the real time, since PyJWT checks exp and iat against the wall clock."""
    policy = TokenPolicy(issuer=ISSUER, audience=AUDIENCE)
    return AccessTokenCodec(KeyRing([key], signing_kid=key.kid), policy, FrozenClock(time.time()))


def _pyjwt_verification_key(key: JoseKey) -> Any:
    """What a PyJWT user would configure: the raw secret, or our published public JWK."""
    jwk = key.public_jwk()
    if jwk is None:
        return key.to_material()
    return pyjwt.PyJWK(jwk).key


def test_our_tokens_verify_with_pyjwt(key: JoseKey, live_codec: AccessTokenCodec) -> None:
    """PyJWT accepts what we issue, from our JWK or secret alone, with all claims intact."""
    token, claims = live_codec.issue("user-1", ["admin"], scope="openid", extra={"tenant": "t"})
    assert pyjwt.get_unverified_header(token) == {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    decoded = pyjwt.decode(
        token,
        _pyjwt_verification_key(key),
        algorithms=[key.alg],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert decoded == {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": claims.exp,
        "iat": claims.iat,
        "nbf": claims.nbf,
        "jti": claims.jti,
        "client_id": "twofold",
        "roles": ["admin"],
        "scope": "openid",
        "tenant": "t",
    }


def test_pyjwt_tokens_verify_with_ours(key: JoseKey, live_codec: AccessTokenCodec) -> None:
    """A token PyJWT signs with our key material (plus kid and typ) verifies with ours."""
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "sub": "user-2",
        "aud": [AUDIENCE, "https://other.test"],
        "exp": now + 60,
        "iat": now,
        "jti": "pyjwt-0123456789",
        "client_id": "pyjwt-client",
        "roles": ["reader"],
    }
    token = pyjwt.encode(
        payload, key.to_material(), algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"}
    )
    claims = live_codec.verify(token)
    assert claims.sub == "user-2"
    assert claims.aud == AUDIENCE
    assert claims.client_id == "pyjwt-client"
    assert claims.roles == ("reader",)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (None, "unknown_key"),
        ({"typ": "at+jwt"}, "unknown_key"),
        ({"kid": "KID"}, "wrong_type"),
    ],
    ids=["pyjwt-defaults", "typed-without-kid", "kid-with-default-typ"],
)
def test_pyjwt_token_without_kid_or_typ_is_refused(
    key: JoseKey, live_codec: AccessTokenCodec, headers: dict[str, str] | None, reason: str
) -> None:
    """PyJWT's defaults (typ JWT, no kid) are not an access token here (T3, T6)."""
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": "u", "aud": AUDIENCE, "exp": now + 60, "iat": now}
    if headers is not None and headers.get("kid") == "KID":
        headers = {"kid": key.kid}
    token = pyjwt.encode(payload, key.to_material(), algorithm=key.alg, headers=headers)
    with pytest.raises(InvalidToken) as caught:
        live_codec.verify(token)
    assert caught.value.reason == reason
