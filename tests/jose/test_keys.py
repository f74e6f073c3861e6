"""JoseKey: one key, one algorithm; material and JWK import rules (T2, T4, T10)."""

from __future__ import annotations

import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.jose.forge import pkcs8
from twofold.errors import ConfigurationError
from twofold.jose.b64 import b64url_decode, b64url_encode
from twofold.jose.jwk import PRIVATE_MEMBERS
from twofold.jose.keys import Algorithm, JoseKey


def _public_pem(key: JoseKey) -> bytes:
    private: Any = serialization.load_pem_private_key(key.to_material(), password=None)
    pem: bytes = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def test_sign_then_verify(key: JoseKey) -> None:
    """A key verifies its own signature and nothing else."""
    signature = key.sign(b"header.payload")
    assert len(signature) == key.signature_size
    assert key.verify(b"header.payload", signature)
    assert not key.verify(b"header.payloaD", signature)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda sig: sig[:-1],
        lambda sig: sig + b"\0",
        lambda sig: b"",
        lambda sig: bytes([sig[0] ^ 1]) + sig[1:],
        lambda sig: b"\0" * len(sig),
        lambda sig: b"\xff" * len(sig),
    ],
    ids=["short", "long", "empty", "bit-flip", "zeros", "ones"],
)
def test_bad_signature_returns_false_never_raises(key: JoseKey, mangle: Any) -> None:
    """verify() answers False for any malformed or wrong signature instead of raising."""
    assert key.verify(b"msg", mangle(key.sign(b"msg"))) is False


def test_hmac_key_is_standard_hmac_sha256_on_every_call() -> None:
    """The pre-keyed HMAC context is copied per message: no state leaks between calls."""
    secret = bytes(range(32))
    key = JoseKey.from_material("k", "HS256", secret)
    for message in (b"first", b"second", b"first"):
        expected = hmac.digest(secret, message, "sha256")
        assert key.sign(message) == expected
        assert key.verify(message, expected)
    assert not key.verify(b"second", hmac.digest(secret, b"first", "sha256"))


def test_es256_signature_is_raw_r_and_s_not_der(keys: dict[Algorithm, JoseKey]) -> None:
    """ES256 signs as 64-byte r||s (RFC 7518 3.4); a DER signature is refused."""
    key = keys["ES256"]
    signature = key.sign(b"msg")
    assert len(signature) == 64
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    assert not key.verify(b"msg", encode_dss_signature(r, s))


def test_public_jwk_holds_public_members_only(key: JoseKey) -> None:
    """Asymmetric keys publish kty/crv/x/y or n/e with kid, alg and use=sig; HMAC nothing (T10)."""
    jwk = key.public_jwk()
    if key.alg == "HS256":
        assert jwk is None
        return
    assert jwk is not None
    assert PRIVATE_MEMBERS.isdisjoint(jwk)
    assert jwk["kid"] == key.kid
    assert jwk["alg"] == key.alg
    assert jwk["use"] == "sig"
    expected = {
        "ES256": {"kty", "crv", "x", "y"},
        "EdDSA": {"kty", "crv", "x"},
        "RS256": {"kty", "n", "e"},
    }
    assert set(jwk) == expected[key.alg] | {"kid", "alg", "use"}


def test_default_kid_is_thumbprint_or_random(alg: Algorithm) -> None:
    """Asymmetric kids default to the RFC 7638 thumbprint; HMAC kids are random per key."""
    first, second = JoseKey.generate(alg), JoseKey.generate(alg)
    assert first.kid != second.kid
    if alg == "HS256":
        assert len(first.kid) == 22
    else:
        jwk = first.public_jwk()
        assert jwk is not None
        assert (
            JoseKey.from_public_jwk({k: v for k, v in jwk.items() if k != "kid"}).kid == first.kid
        )


def test_material_round_trip(key: JoseKey) -> None:
    """to_material() and from_material() rebuild a key that verifies the original's signatures."""
    material = key.to_material()
    if key.alg != "HS256":
        assert material.startswith(b"-----BEGIN PRIVATE KEY-----")
    rebuilt = JoseKey.from_material(key.kid, key.alg, material)
    assert rebuilt.kid == key.kid
    assert rebuilt.verify(b"m", key.sign(b"m"))
    assert key.verify(b"m", rebuilt.sign(b"m"))


def test_hmac_secret_is_random_and_256_bits() -> None:
    """Generated HS256 secrets are 32 random bytes (T4)."""
    first = JoseKey.generate("HS256").to_material()
    assert len(first) == 32
    assert first != JoseKey.generate("HS256").to_material()


@pytest.mark.parametrize("size", [0, 16, 31], ids=lambda n: f"{n}B")
def test_short_hmac_secret_is_rejected(size: int) -> None:
    """An HS256 secret under 256 bits is a configuration error (T4)."""
    with pytest.raises(ConfigurationError):
        JoseKey.from_material("k", "HS256", b"x" * size)


def test_hmac_secret_never_accepts_key_text(keys: dict[Algorithm, JoseKey]) -> None:
    """PEM (public or private), DER, OpenSSH and JWK text never become an HMAC secret (T2)."""
    rsa_pem = _public_pem(keys["RS256"])
    rsa_public: Any = serialization.load_pem_public_key(rsa_pem)
    candidates = [
        rsa_pem,
        _public_pem(keys["ES256"]),
        b"\n  " + rsa_pem,
        keys["RS256"].to_material(),
        rsa_public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        rsa_public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
        json.dumps(keys["ES256"].public_jwk()).encode(),
        json.dumps({"kty": "oct", "k": b64url_encode(b"s" * 32)}).encode(),
    ]
    for material in candidates:
        with pytest.raises(ConfigurationError):
            JoseKey.from_material("k", "HS256", material)


@pytest.mark.parametrize(
    ("alg", "private"),
    [
        ("ES256", lambda: ed25519.Ed25519PrivateKey.generate()),
        ("EdDSA", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("RS256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("ES256", lambda: ec.generate_private_key(ec.SECP384R1())),
        ("EdDSA", lambda: ed448.Ed448PrivateKey.generate()),
    ],
    ids=["ed25519-as-es256", "p256-as-eddsa", "p256-as-rs256", "p384-as-es256", "ed448-as-eddsa"],
)
def test_key_type_must_match_algorithm_exactly(alg: Algorithm, private: Any) -> None:
    """Each algorithm accepts only its own key type and curve (T2)."""
    with pytest.raises(ConfigurationError):
        JoseKey.from_material("k", alg, pkcs8(private()))


def test_rsa_below_2048_bits_is_rejected() -> None:
    """RSA keys under 2048 bits are refused from PEM, from JWK and for generation (T4)."""
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(ConfigurationError):
        JoseKey.from_material("k", "RS256", pkcs8(small))
    numbers = small.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "n": b64url_encode(numbers.n.to_bytes(128, "big")),
        "e": b64url_encode(numbers.e.to_bytes(3, "big")),
    }
    with pytest.raises(ConfigurationError):
        JoseKey.from_public_jwk(jwk)
    with pytest.raises(ConfigurationError):
        JoseKey.generate("RS256", rsa_bits=1024)


def test_asymmetric_material_must_be_unencryptedpkcs8(keys: dict[Algorithm, JoseKey]) -> None:
    """Traditional PEM, encrypted PKCS#8, public PEM and raw bytes are refused with guidance."""
    private: Any = serialization.load_pem_private_key(keys["ES256"].to_material(), password=None)
    traditional = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    encrypted = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    broken = b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"
    for material in (traditional, encrypted, _public_pem(keys["ES256"]), b"\x01" * 64, broken):
        with pytest.raises(ConfigurationError):
            JoseKey.from_material("k", "ES256", material)


def test_public_only_key_cannot_sign_or_export(key: JoseKey) -> None:
    """A key from a public JWK verifies but can neither sign nor hand out material."""
    jwk = key.public_jwk()
    if jwk is None:
        assert key.alg == "HS256"  # HMAC keys have no public form at all
        return
    public = JoseKey.from_public_jwk(jwk)
    assert not public.can_sign
    assert key.can_sign
    assert public.verify(b"m", key.sign(b"m"))
    with pytest.raises(ConfigurationError):
        public.sign(b"m")
    with pytest.raises(ConfigurationError):
        public.to_material()


def _ec_jwk(keys: dict[Algorithm, JoseKey]) -> dict[str, str]:
    jwk = keys["ES256"].public_jwk()
    assert jwk is not None
    return jwk


@pytest.mark.parametrize(
    "change",
    [
        {"d": "AAAA"},
        {"kty": "oct", "k": b64url_encode(b"s" * 32)},
        {"alg": "RS256"},
        {"alg": "none"},
        {"use": "enc"},
        {"crv": "P-384"},
        {"x": b64url_encode(b"\x01" * 32)},
        {"y": b64url_encode(b"\x01" * 31)},
        {"x": "not base64!"},
        {"kid": 7},
        {"kid": ""},
        {"kty": None},
    ],
    ids=[
        "private-member",
        "hmac-secret",
        "alg-mismatch",
        "alg-none",
        "use-enc",
        "other-curve",
        "point-off-curve",
        "short-coordinate",
        "bad-base64",
        "kid-not-string",
        "kid-empty",
        "no-kty",
    ],
)
def test_bad_public_jwk_is_rejected(keys: dict[Algorithm, JoseKey], change: dict[str, Any]) -> None:
    """Imported JWKs must be public, consistent, on the curve and correctly sized (T3, T4)."""
    merged: dict[str, Any] = {**_ec_jwk(keys), **change}
    jwk = {name: value for name, value in merged.items() if value is not None}
    with pytest.raises(ConfigurationError):
        JoseKey.from_public_jwk(jwk)


def test_rsa_jwk_with_leading_zero_is_rejected(keys: dict[Algorithm, JoseKey]) -> None:
    """RSA integers in a JWK must use the minimal encoding (RFC 7518 6.3.1.1)."""
    jwk = keys["RS256"].public_jwk()
    assert jwk is not None
    padded = {**jwk, "n": b64url_encode(b"\0" + b64url_decode(jwk["n"]))}
    with pytest.raises(ConfigurationError):
        JoseKey.from_public_jwk(padded)


@pytest.mark.parametrize("kid", ["", "a\nb", "x" * 257], ids=["empty", "newline", "too-long"])
def test_kid_must_be_short_printable_text(kid: str) -> None:
    """A configured kid is 1-256 printable characters."""
    with pytest.raises(ConfigurationError):
        JoseKey.generate("HS256", kid=kid)


def test_key_is_immutable_and_repr_hides_material(keys: dict[Algorithm, JoseKey]) -> None:
    """Attributes cannot be reassigned, and repr shows kid and alg but never the secret."""
    key = keys["HS256"]
    with pytest.raises(AttributeError):
        key.alg = "RS256"
    with pytest.raises(AttributeError):
        key.kid = "other"
    with pytest.raises(AttributeError):
        del key.kid
    text = repr(key)
    assert key.kid in text
    assert "HS256" in text
    assert key.to_material().hex() not in text
    assert repr(key.to_material()) not in text


def test_unknown_algorithm_is_rejected() -> None:
    """Only HS256, ES256, EdDSA and RS256 exist; anything else is a configuration error."""
    with pytest.raises(ConfigurationError):
        JoseKey.generate("none")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        JoseKey.from_material("k", "HS512", b"s" * 64)  # type: ignore[arg-type]
