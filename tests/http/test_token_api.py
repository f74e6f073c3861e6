"""JWT mode end to end over a real socket, and a catalogue of forged and malformed tokens."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest

from tests.conftest import PASSWORD, LiveServer
from twofold.http.schemas import MeOut
from twofold.jose.b64 import b64url_decode, b64url_encode
from twofold.jose.keys import JoseKey


def token_login(live: LiveServer, email: str) -> dict[str, Any]:
    with live.client() as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"}
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def forge(header: dict[str, Any], claims: dict[str, Any], key: JoseKey | None) -> str:
    signing_input = (
        b64url_encode(json.dumps(header).encode())
        + "."
        + b64url_encode(json.dumps(claims).encode())
    )
    signature = key.sign(signing_input.encode()) if key else b""
    return signing_input + "." + b64url_encode(signature)


def test_jwt_login_answers_the_contract(live: LiveServer) -> None:
    """mode=jwt answers access_token, token_type Bearer and expires_in; no cookie is set."""
    email = live.register()
    with live.client() as client:
        answer = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"}
        )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == live.settings.access_token_lifetime
    assert "set-cookie" not in answer.headers


def test_access_token_is_a_standard_rfc9068_jwt(live: LiveServer) -> None:
    """An independent library (PyJWT) verifies the token with the JWKS public key alone."""
    email = live.register()
    token = token_login(live, email)["access_token"]
    with live.client() as client:
        jwks = client.get("/.well-known/jwks.json").json()
    header = pyjwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = pyjwt.decode(
        token,
        key=pyjwt.PyJWK(jwk).key,
        algorithms=["ES256"],
        audience=live.settings.audience,
        issuer=live.settings.effective_issuer,
        options={"require": ["exp", "iat", "nbf", "jti", "sub", "iss", "aud"]},
        leeway=60,
    )
    assert claims["email"] == email
    assert claims["roles"] == ["user"]
    assert claims["exp"] - claims["iat"] == live.settings.access_token_lifetime


def test_me_with_bearer_reports_jwt_mode(live: LiveServer) -> None:
    """/auth/me with a Bearer token answers the user and auth.mode == jwt, marked no-store."""
    email = live.register()
    token = token_login(live, email)["access_token"]
    with live.client() as client:
        me = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.headers["cache-control"] == "no-store"
    assert me.json()["email"] == email
    assert me.json()["auth"]["mode"] == "jwt"


def test_jwks_publishes_public_keys_only(live: LiveServer) -> None:
    """The JWKS has no private or symmetric members (T10)."""
    with live.client() as client:
        keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert keys
    for key in keys:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)
        assert key["kty"] in {"EC", "OKP", "RSA"}


def test_missing_bearer_answers_rfc6750_challenge(live: LiveServer) -> None:
    """No credentials: 401 with a Bearer challenge and no error code (RFC 6750 3.1)."""
    with live.client() as client:
        answer = client.get("/auth/me")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="twofold"'
    assert answer.json()["error"] == "unauthenticated"


def _server_key(live: LiveServer) -> JoseKey:
    return live.runtime.keyring.signing_key  # type: ignore[return-value]


def _claims(live: LiveServer, **changes: Any) -> dict[str, Any]:
    now = int(live.clock.now())
    claims: dict[str, Any] = {
        "iss": live.settings.effective_issuer,
        "aud": live.settings.audience,
        "sub": "00000000-0000-0000-0000-000000000000",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "forged-jti-0001",
        "roles": ["admin"],
        "client_id": "twofold",
    }
    for name, value in changes.items():
        if value is ...:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _header(live: LiveServer, **changes: Any) -> dict[str, Any]:
    key = _server_key(live)
    header: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    for name, value in changes.items():
        if value is ...:
            header.pop(name, None)
        else:
            header[name] = value
    return header


def _public_pem(live: LiveServer) -> bytes:
    from cryptography.hazmat.primitives import serialization

    jwk = _server_key(live).public_jwk()
    assert jwk is not None
    public = pyjwt.PyJWK(jwk).key
    return public.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["roles"] = ["admin", "root"]
    return ".".join([header, b64url_encode(json.dumps(claims).encode()), signature])


def _hs256_with_public_key(live: LiveServer) -> str:
    """The classic algorithm confusion: HMAC keyed with the server's public key."""
    import hashlib
    import hmac

    header = _header(live, alg="HS256")
    signing_input = (
        b64url_encode(json.dumps(header).encode())
        + "."
        + b64url_encode(json.dumps(_claims(live)).encode())
    )
    signature = hmac.digest(_public_pem(live), signing_input.encode(), hashlib.sha256)
    return signing_input + "." + b64url_encode(signature)


Forger = Callable[[LiveServer], str]

FORGERIES: list[Any] = [
    pytest.param(
        lambda live: forge(_header(live, alg="none"), _claims(live), None),
        id="alg-none",
    ),
    pytest.param(
        lambda live: forge(_header(live, alg="none"), _claims(live), None).rstrip("."),
        id="alg-none-two-segments",
    ),
    pytest.param(_hs256_with_public_key, id="hs256-keyed-with-public-key"),
    pytest.param(
        lambda live: forge(
            _header(live), _claims(live), JoseKey.generate("ES256", kid=_server_key(live).kid)
        ),
        id="foreign-key-same-kid",
    ),
    pytest.param(
        lambda live: forge(_header(live, kid="../../etc/passwd"), _claims(live), _server_key(live)),
        id="kid-path",
    ),
    pytest.param(
        lambda live: forge(_header(live, kid=...), _claims(live), _server_key(live)),
        id="no-kid",
    ),
    pytest.param(
        lambda live: forge(
            _header(live, jku="http://127.0.0.1:1/jwks"), _claims(live), _server_key(live)
        ),
        id="jku",
    ),
    pytest.param(
        lambda live: forge(
            _header(live, jwk=_server_key(live).public_jwk()), _claims(live), _server_key(live)
        ),
        id="embedded-jwk",
    ),
    pytest.param(
        lambda live: forge(_header(live, crit=["exp"]), _claims(live), _server_key(live)),
        id="crit",
    ),
    pytest.param(
        lambda live: forge(_header(live, typ="JWT"), _claims(live), _server_key(live)),
        id="typ-jwt",
    ),
    pytest.param(
        lambda live: forge(_header(live, typ=...), _claims(live), _server_key(live)),
        id="no-typ",
    ),
    pytest.param(
        lambda live: forge(
            _header(live), _claims(live, exp=int(live.clock.now()) - 3600), _server_key(live)
        ),
        id="expired",
    ),
    pytest.param(
        lambda live: forge(_header(live), _claims(live, exp=...), _server_key(live)),
        id="no-exp",
    ),
    pytest.param(
        lambda live: forge(_header(live), _claims(live, exp="tomorrow"), _server_key(live)),
        id="exp-string",
    ),
    pytest.param(
        lambda live: forge(_header(live), _claims(live, exp=True), _server_key(live)),
        id="exp-bool",
    ),
    pytest.param(
        lambda live: forge(_header(live), _claims(live, exp=1e400), _server_key(live)),
        id="exp-infinite",
    ),
    pytest.param(
        lambda live: forge(
            _header(live), _claims(live, nbf=int(live.clock.now()) + 3600), _server_key(live)
        ),
        id="not-yet-valid",
    ),
    pytest.param(
        lambda live: forge(_header(live), _claims(live, aud="another-api"), _server_key(live)),
        id="wrong-audience",
    ),
    pytest.param(
        lambda live: forge(
            _header(live), _claims(live, iss="https://evil.example"), _server_key(live)
        ),
        id="wrong-issuer",
    ),
    pytest.param(
        lambda live: _tamper(forge(_header(live), _claims(live), _server_key(live))),
        id="tampered-payload",
    ),
    pytest.param(
        lambda live: forge(_header(live), _claims(live), _server_key(live))[:-4] + "AAAA",
        id="tampered-signature",
    ),
    pytest.param(lambda live: "a.b", id="two-segments"),
    pytest.param(lambda live: "a.b.c.d", id="four-segments"),
    pytest.param(lambda live: "e30.e30.", id="empty-object-unsigned"),
    pytest.param(lambda live: "!!!.???.***", id="not-base64"),
    pytest.param(lambda live: "x" * 20_000, id="oversized"),
    pytest.param(
        lambda live: b64url_encode(b"[" * 5000) + ".e30.AAAA",
        id="deeply-nested-header",
    ),
]


def test_a_properly_signed_token_passes(live: LiveServer) -> None:
    """The control for the catalogue below: the forger's helpers make valid tokens."""
    token = forge(_header(live), _claims(live), _server_key(live))
    with live.client() as client:
        answer = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("make", FORGERIES)
def test_forged_and_malformed_tokens_are_refused(live: LiveServer, make: Forger) -> None:
    """Every forged or malformed token gets 401 invalid_token with an RFC 6750 challenge
    (T1-T7)."""
    token = make(live)
    with live.client() as client:
        answer = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "invalid_token"
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="twofold", error="invalid_token"')


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param("Basic dXNlcjpwYXNz", "unauthenticated", id="basic"),
        pytest.param("Token abc", "unauthenticated", id="other-scheme"),
        pytest.param("Bearer", "invalid_token", id="bearer-empty"),
        pytest.param("Bearer a b", "invalid_token", id="bearer-two-words"),
        pytest.param("Bearer " + "a" * 10_000, "invalid_token", id="bearer-oversized"),
    ],
)
def test_malformed_authorization_headers_are_refused(
    live: LiveServer, value: str, error: str
) -> None:
    """A malformed Bearer header is 401 invalid_token; another scheme carries no Bearer
    credentials and gets the bare challenge (RFC 6750 3.1); never a 500."""
    with live.client() as client:
        answer = client.get("/auth/me", headers={"Authorization": value})
    assert answer.status_code == 401
    assert answer.json()["error"] == error


def test_a_bad_bearer_is_not_rescued_by_a_session_cookie(live: LiveServer) -> None:
    """When a Bearer header is present it decides; a valid cookie beside it does not help."""
    email = live.register()
    with live.client() as client:
        client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert client.get("/auth/me").status_code == 200
        answer = client.get("/auth/me", headers={"Authorization": "Bearer nope.nope.nope"})
    assert answer.status_code == 401


def test_expired_token_is_refused_after_its_lifetime(fresh_live: LiveServer) -> None:
    """A real token stops working once its exp (plus leeway) passes (T5)."""
    live = fresh_live
    email = live.register()
    token = token_login(live, email)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    with live.client() as client:
        assert client.get("/auth/me", headers=headers).status_code == 200
        live.clock.advance(live.settings.access_token_lifetime + live.settings.token_leeway + 1)
        answer = client.get("/auth/me", headers=headers)
    assert answer.status_code == 401
    assert "expired" in answer.headers["www-authenticate"]


def test_me_answers_exactly_its_documented_shape(live: LiveServer) -> None:
    """/auth/me is built by hand for speed: both modes must still be exactly MeOut (no key
    missing, none extra, none null)."""
    email = live.register()
    token = token_login(live, email)["access_token"]
    with live.client() as client:
        login = client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
        )
        assert login.status_code == 200
        by_cookie = client.get("/auth/me").json()
        by_token = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    for body, mode in ((by_cookie, "session"), (by_token, "jwt")):
        assert MeOut.model_validate(body).model_dump(exclude_none=True) == body
        assert body["auth"]["mode"] == mode
    assert set(by_cookie["auth"]) == {"mode", "expires_at", "csrf_token"}
    assert set(by_token["auth"]) == {"mode", "expires_at"}
