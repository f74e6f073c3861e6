"""JSON Web Key members for public keys (RFC 7517, RFC 7518 section 6, RFC 8037, RFC 7638).

Plain functions between ``cryptography`` public keys and their JWK members, and the RFC 7638
thumbprint used as the default ``kid``. Only public members ever leave or enter through here:
private keys and HMAC secrets never appear in a JWK that Twofold writes (SECURITY.md T10), and
a JWK carrying private members is refused on import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from twofold.errors import ConfigurationError
from twofold.jose.b64 import b64url_decode, b64url_encode

__all__ = [
    "PRIVATE_MEMBERS",
    "PublicKey",
    "public_key_from_jwk",
    "public_members",
    "thumbprint",
]

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

#: Members that would carry secret material (RFC 7518 sections 6.2.2, 6.3.2 and 6.4).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# RFC 7638 section 3.2: the required members of each key type, hashed in this order.
_REQUIRED = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}

_P256_COORDINATE_BYTES = 32
_ED25519_KEY_BYTES = 32


def public_members(key: PublicKey) -> dict[str, str]:
    """The key-type members of a public JWK: ``kty`` and ``crv``/``x``/``y`` or ``n``/``e``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigurationError("Only the P-256 curve is supported.")
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(numbers.x.to_bytes(_P256_COORDINATE_BYTES, "big")),
            "y": b64url_encode(numbers.y.to_bytes(_P256_COORDINATE_BYTES, "big")),
        }
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    numbers_rsa = key.public_numbers()
    return {"kty": "RSA", "n": _uint_to_b64(numbers_rsa.n), "e": _uint_to_b64(numbers_rsa.e)}


def thumbprint(members: Mapping[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) over the required members only."""
    try:
        required = {name: members[name] for name in _REQUIRED[members["kty"]]}
    except KeyError:
        raise ConfigurationError("The JWK lacks a member its thumbprint needs.") from None
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """Build a public key from a JWK's members, validating every one of them.

    Accepts ``EC``/``P-256``, ``OKP``/``Ed25519`` and ``RSA``. EC points must lie on the
    curve (``cryptography`` checks this); coordinates must have their full fixed size and RSA
    integers their minimal size, as RFC 7518 requires. Raises ``ConfigurationError``.
    """
    present = PRIVATE_MEMBERS.intersection(jwk)
    if present:
        raise ConfigurationError("A public JWK must not carry private or secret members.")
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            if jwk.get("crv") != "P-256":
                raise ConfigurationError("Only the P-256 curve is supported for EC keys.")
            x = _fixed_bytes(jwk, "x", _P256_COORDINATE_BYTES)
            y = _fixed_bytes(jwk, "y", _P256_COORDINATE_BYTES)
            return ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            ).public_key()
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise ConfigurationError("Only the Ed25519 curve is supported for OKP keys.")
            return ed25519.Ed25519PublicKey.from_public_bytes(
                _fixed_bytes(jwk, "x", _ED25519_KEY_BYTES)
            )
        if kty == "RSA":
            return rsa.RSAPublicNumbers(_b64_to_uint(jwk, "e"), _b64_to_uint(jwk, "n")).public_key()
    except ValueError:
        # Off-curve points, bad RSA numbers and bad base64url all end up here.
        raise ConfigurationError("The JWK does not describe a valid public key.") from None
    raise ConfigurationError("Unsupported JWK key type (HMAC secrets are never imported).")


def _member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise ConfigurationError(f"The JWK member {name!r} is missing or not a string.")
    return b64url_decode(value)


def _fixed_bytes(jwk: Mapping[str, Any], name: str, size: int) -> bytes:
    raw = _member(jwk, name)
    if len(raw) != size:
        raise ConfigurationError(f"The JWK member {name!r} must be exactly {size} bytes.")
    return raw


def _b64_to_uint(jwk: Mapping[str, Any], name: str) -> int:
    raw = _member(jwk, name)
    if not raw or raw[0] == 0:
        raise ConfigurationError(f"The JWK member {name!r} must use the minimal encoding.")
    return int.from_bytes(raw, "big")


def _uint_to_b64(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))
