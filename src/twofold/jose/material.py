"""What configuration may hand over as key material (SECURITY.md T2, T4).

An HMAC secret must be at least 256 random bits and must never be key text: a verifier that
took a public key as its HMAC secret would accept tokens anyone can forge with that public
key. Private keys come as unencrypted PKCS#8 PEM (decrypting them is the caller's job) and
RSA moduli are at least 2048 bits.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from twofold.errors import ConfigurationError

__all__ = [
    "MAX_RSA_BITS",
    "MIN_HMAC_SECRET_BYTES",
    "MIN_RSA_BITS",
    "check_hmac_secret",
    "check_rsa_bits",
    "load_pkcs8_private_key",
    "looks_like_key_text",
]

MIN_HMAC_SECRET_BYTES = 32  # 256 bits (T4)
MIN_RSA_BITS = 2048  # T4
MAX_RSA_BITS = 8192  # verification cost grows with the modulus; nothing larger is sensible

_PKCS8_HEADER = b"-----BEGIN PRIVATE KEY-----"
# OpenSSH public keys start with their type name; PEM of any kind with its armour.
_KEY_TEXT_PREFIXES = (b"ssh-", b"ecdsa-sha2-", b"sk-ssh-", b"sk-ecdsa-", b"-----BEGIN")


def check_hmac_secret(secret: bytes) -> bytes:
    """Return ``secret`` if it can be an HS256 secret, else raise ``ConfigurationError``."""
    if len(secret) < MIN_HMAC_SECRET_BYTES:
        raise ConfigurationError("An HS256 secret must be at least 32 random bytes.")
    if looks_like_key_text(secret):
        raise ConfigurationError("An HS256 secret must be random bytes, not a key (PEM/SSH/JWK).")
    return secret


def looks_like_key_text(material: bytes) -> bool:
    """Whether bytes are a PEM, OpenSSH, JWK or DER public key rather than a random secret."""
    stripped = material.lstrip()
    if stripped.startswith(_KEY_TEXT_PREFIXES) or b"-----BEGIN " in material:
        return True
    if stripped.startswith(b"{"):
        # Random bytes start with "{" one time in 256; only a real JSON object counts.
        try:
            return isinstance(json.loads(stripped), dict)
        except ValueError:
            return False
    try:
        serialization.load_der_public_key(material)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def check_rsa_bits(bits: int) -> None:
    """Raise ``ConfigurationError`` unless an RSA modulus size is within the allowed range."""
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise ConfigurationError(f"RSA keys must be {MIN_RSA_BITS} to {MAX_RSA_BITS} bits.")


def load_pkcs8_private_key(material: bytes) -> Any:
    """Load an unencrypted PKCS#8 PEM private key; ``ConfigurationError`` for anything else."""
    if not material.lstrip().startswith(_PKCS8_HEADER):
        raise ConfigurationError(
            "Asymmetric key material must be an unencrypted PKCS#8 PEM private key "
            "('-----BEGIN PRIVATE KEY-----'; convert with 'openssl pkcs8 -topk8 -nocrypt')."
        )
    try:
        return serialization.load_pem_private_key(material, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError("The PEM private key could not be loaded.") from None
