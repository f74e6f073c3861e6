"""Build tokens by hand, including ones ``jws.sign`` would refuse to make (attack tokens)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import serialization

from twofold.jose.b64 import b64url_encode
from twofold.jose.keys import JoseKey

ISSUER = "https://auth.example.test"
AUDIENCE = "https://api.example.test"
NOW = 1_800_000_000.0


def pkcs8(private: Any) -> bytes:
    """A private key as unencrypted PKCS#8 PEM, the material JoseKey loads."""
    pem: bytes = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem


def sign_raw(
    key: JoseKey,
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
) -> str:
    """A compact JWS over exactly these header and payload bytes, signed with ``key``.

    Unlike ``jws.sign`` it adds nothing and refuses nothing, so it can build attack tokens
    that carry a real signature.
    """
    raw_header = header if isinstance(header, bytes) else _compact(header)
    raw_payload = payload if isinstance(payload, bytes) else _compact(payload)
    signing_input = f"{b64url_encode(raw_header)}.{b64url_encode(raw_payload)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"


def _compact(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def good_claims(**overrides: Any) -> dict[str, Any]:
    """A valid RFC 9068 claim set at ``NOW``; ``overrides`` replace or (with None) drop claims."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": int(NOW) + 300,
        "iat": int(NOW),
        "nbf": int(NOW),
        "jti": "jti-0123456789abcdef",
        "client_id": "twofold",
        "roles": ["admin"],
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def at_header(key: JoseKey, **members: Any) -> dict[str, Any]:
    """The header our issuer writes for ``key`` (``typ: at+jwt``), with ``members`` merged in."""
    return {"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **members}
