"""Published vectors: RFC 7515 appendix A.1-A.3, RFC 8037 appendix A, RFC 7638 section 3.1.

Each vector is checked with our code and, independently, with PyJWT. The RFC tokens carry no
``kid`` or ``typ``, so their signatures are checked at the key level, and the strict verifier
is shown to refuse them for the missing ``kid``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.jose.forge import pkcs8
from twofold.errors import InvalidToken
from twofold.jose import jws
from twofold.jose.b64 import b64url_decode
from twofold.jose.jwk import PRIVATE_MEMBERS, public_members, thumbprint
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import JoseKey

VECTORS = Path(__file__).parent / "vectors"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


def _examples() -> list[dict[str, Any]]:
    rfc7515 = _load("rfc7515.json")
    examples = [
        dict(example, payload_text=rfc7515["payload_text"]) for example in rfc7515["examples"]
    ]
    rfc8037: list[dict[str, Any]] = _load("rfc8037.json")["examples"]
    return examples + rfc8037


EXAMPLES = _examples()
IDS = [f"{example['alg']}-{example['id']}" for example in EXAMPLES]


def _int(jwk: dict[str, str], name: str) -> int:
    return int.from_bytes(b64url_decode(jwk[name]), "big")


def _key_from_vector(example: dict[str, Any]) -> JoseKey:
    """Our key from the vector's private JWK, through the same material path config uses."""
    jwk = example["jwk"]
    alg = example["alg"]
    if alg == "HS256":
        return JoseKey.from_material("vector", alg, b64url_decode(jwk["k"]))
    if alg == "RS256":
        public = rsa.RSAPublicNumbers(_int(jwk, "e"), _int(jwk, "n"))
        private: Any = rsa.RSAPrivateNumbers(
            p=_int(jwk, "p"),
            q=_int(jwk, "q"),
            d=_int(jwk, "d"),
            dmp1=_int(jwk, "dp"),
            dmq1=_int(jwk, "dq"),
            iqmp=_int(jwk, "qi"),
            public_numbers=public,
        ).private_key()
    elif alg == "ES256":
        private = ec.EllipticCurvePrivateNumbers(
            _int(jwk, "d"),
            ec.EllipticCurvePublicNumbers(_int(jwk, "x"), _int(jwk, "y"), ec.SECP256R1()),
        ).private_key()
    else:
        private = ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(jwk["d"]))
    return JoseKey.from_material("vector", alg, pkcs8(private))


def _pyjwt_key(example: dict[str, Any]) -> Any:
    """PyJWT's own verification key for the vector, built from the JWK by PyJWT itself."""
    jwk = example["jwk"]
    if jwk["kty"] != "oct":
        jwk = {name: value for name, value in jwk.items() if name not in PRIVATE_MEMBERS}
    return pyjwt.PyJWK(jwk, algorithm=example["alg"]).key


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_vector_segments_decode_to_the_published_text(example: dict[str, Any]) -> None:
    """Our strict base64url decodes the RFC header and payload to the exact published bytes."""
    header, payload, _ = example["token"].split(".")
    assert b64url_decode(header).decode() == example["header_text"]
    assert b64url_decode(payload).decode() == example["payload_text"]


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_vector_signature_verifies(example: dict[str, Any]) -> None:
    """The published signature verifies under the published key with our code."""
    key = _key_from_vector(example)
    header, payload, signature = example["token"].split(".")
    assert key.alg == example["alg"]
    assert key.verify(f"{header}.{payload}".encode(), b64url_decode(signature))


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_vector_public_key_round_trips_through_jwk(example: dict[str, Any]) -> None:
    """Our public JWK of the vector key has the published members, and it verifies too."""
    key = _key_from_vector(example)
    jwk = key.public_jwk()
    if example["alg"] == "HS256":
        assert jwk is None
        return
    assert jwk is not None
    published = {
        name: example["jwk"][name]
        for name in ("kty", "crv", "x", "y", "n", "e")
        if name in example["jwk"]
    }
    assert {name: jwk[name] for name in published} == published
    public = JoseKey.from_public_jwk(jwk)
    header, payload, signature = example["token"].split(".")
    assert public.verify(f"{header}.{payload}".encode(), b64url_decode(signature))


@pytest.mark.parametrize(
    "example",
    [example for example in EXAMPLES if example["deterministic"]],
    ids=[i for i, example in zip(IDS, EXAMPLES, strict=True) if example["deterministic"]],
)
def test_deterministic_vector_signature_is_reproduced(example: dict[str, Any]) -> None:
    """HMAC, RSA PKCS#1 v1.5 and Ed25519 are deterministic: we sign to the published bytes."""
    key = _key_from_vector(example)
    header, payload, signature = example["token"].split(".")
    assert key.sign(f"{header}.{payload}".encode()) == b64url_decode(signature)


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_vector_verifies_independently_with_pyjwt(example: dict[str, Any]) -> None:
    """PyJWT, with its own JWK parsing, accepts the same vector: the data file is right."""
    decoded = pyjwt.api_jws.PyJWS().decode_complete(
        example["token"], _pyjwt_key(example), algorithms=[example["alg"]]
    )
    assert decoded["payload"].decode() == example["payload_text"]


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_strict_verify_refuses_the_rfc_token_without_kid(example: dict[str, Any]) -> None:
    """The RFC tokens have no kid; the strict verifier never guesses a key (T3)."""
    key = _key_from_vector(example)
    with pytest.raises(InvalidToken) as caught:
        jws.verify(example["token"], KeyRing([key]), typ=None)
    assert caught.value.reason == "unknown_key"


def test_rfc8037_ed25519_thumbprint_is_the_default_kid() -> None:
    """RFC 8037 A.3: the Ed25519 key's RFC 7638 thumbprint, which we use as its default kid."""
    (example,) = _load("rfc8037.json")["examples"]
    private = ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(example["jwk"]["d"]))
    key = JoseKey.from_material(None, "EdDSA", pkcs8(private))
    assert key.kid == example["thumbprint"]
    assert thumbprint(public_members(private.public_key())) == example["thumbprint"]


def test_rfc7638_rsa_thumbprint() -> None:
    """RFC 7638 section 3.1: thumbprint of the example RSA key, ignoring kid/alg members."""
    vector = _load("rfc7638.json")
    assert thumbprint(vector["jwk"]) == vector["thumbprint"]
    public_only = {name: vector["jwk"][name] for name in ("kty", "n", "e")}
    # The example key is 2048 bits, so it imports; its kid comes from the JWK, not the hash.
    assert JoseKey.from_public_jwk(public_only).kid == vector["thumbprint"]
    assert JoseKey.from_public_jwk(vector["jwk"]).kid == "2011-04-29"
