"""Signing keys: one key, exactly one algorithm (SECURITY.md T2, T4, T10).

Twofold's JOSE layer is written by hand on ``cryptography`` and the standard library rather
than wrapping a JOSE library, for two reasons: speed (HS256 verification must stay within
1.5x of a bare HMAC-and-JSON check and asymmetric verification within 1.15x of the raw
``cryptography`` call, which rules out per-call key parsing and generic dispatch) and
strictness (the algorithm comes from this object, never from a token). A ``JoseKey`` is built
once from configuration and then only signs and verifies bytes.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, NoReturn, get_args

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.hmac import HMAC

from twofold.errors import ConfigurationError
from twofold.jose.jwk import public_key_from_jwk, public_members, thumbprint
from twofold.jose.material import (
    MIN_HMAC_SECRET_BYTES,
    check_hmac_secret,
    check_rsa_bits,
    load_pkcs8_private_key,
)

__all__ = ["ALGORITHMS", "Algorithm", "JoseKey"]

Algorithm = Literal["HS256", "ES256", "EdDSA", "RS256"]
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)

MAX_KID_LENGTH = 256

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_P256_SCALAR_BYTES = 32


class JoseKey(ABC):
    """A key allowed for exactly one JWS algorithm; immutable once built.

    Build one with :meth:`generate`, :meth:`from_material` or :meth:`from_public_jwk`.
    ``verify`` returns ``False`` for any bad signature and never raises for one.
    """

    __slots__ = ("alg", "kid", "signature_size")

    alg: Algorithm
    kid: str
    #: Length in bytes of every valid signature made with this key.
    signature_size: int

    def _init(self, kid: str, alg: Algorithm, signature_size: int) -> None:
        _check_kid(kid)
        object.__setattr__(self, "kid", kid)
        object.__setattr__(self, "alg", alg)
        object.__setattr__(self, "signature_size", signature_size)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        # Never the key material: reprs end up in logs and tracebacks (O2).
        return f"JoseKey(kid={self.kid!r}, alg={self.alg!r}, can_sign={self.can_sign})"

    @property
    @abstractmethod
    def can_sign(self) -> bool:
        """Whether this key holds private material (False for a key from a public JWK)."""

    @abstractmethod
    def sign(self, signing_input: bytes) -> bytes:
        """Sign bytes; raises ``ConfigurationError`` for a public-only key."""

    @abstractmethod
    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is valid for ``signing_input`` under this key."""

    @abstractmethod
    def public_jwk(self) -> dict[str, str] | None:
        """The public JWK (with ``kid``, ``alg``, ``use``), or None for an HMAC key (T10)."""

    @abstractmethod
    def to_material(self) -> bytes:
        """The raw HMAC secret or an unencrypted PKCS#8 PEM private key, for storage.

        Encrypting it at rest is the caller's job. Raises ``ConfigurationError`` for a
        public-only key.
        """

    @classmethod
    def generate(cls, alg: Algorithm, kid: str | None = None, *, rsa_bits: int = 2048) -> JoseKey:
        """A new random key for ``alg`` (HS256: 32 bytes from ``secrets``; RSA: ``rsa_bits``)."""
        if alg == "HS256":
            return _HmacKey(kid, secrets.token_bytes(MIN_HMAC_SECRET_BYTES))
        if alg == "ES256":
            return _EcdsaKey(kid, ec.generate_private_key(ec.SECP256R1()))
        if alg == "EdDSA":
            return _Ed25519Key(kid, ed25519.Ed25519PrivateKey.generate())
        if alg == "RS256":
            check_rsa_bits(rsa_bits)
            return _RsaKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits))
        raise ConfigurationError(f"Unsupported algorithm {alg!r}.")

    @classmethod
    def from_material(cls, kid: str | None, alg: Algorithm, material: bytes) -> JoseKey:
        """A key from stored material: a raw secret for HS256, PKCS#8 PEM for the others.

        The key type must match ``alg`` exactly. An HS256 secret must be at least 32 bytes
        and must not look like a PEM, OpenSSH or JWK key (T2).
        """
        if not isinstance(material, bytes):
            raise ConfigurationError("Key material must be bytes.")
        if alg == "HS256":
            return _HmacKey(kid, check_hmac_secret(material))
        if alg not in ALGORITHMS:
            raise ConfigurationError(f"Unsupported algorithm {alg!r}.")
        private = load_pkcs8_private_key(material)
        if alg == "ES256" and isinstance(private, ec.EllipticCurvePrivateKey):
            if not isinstance(private.curve, ec.SECP256R1):
                raise ConfigurationError("ES256 needs a P-256 key.")
            return _EcdsaKey(kid, private)
        if alg == "EdDSA" and isinstance(private, ed25519.Ed25519PrivateKey):
            return _Ed25519Key(kid, private)
        if alg == "RS256" and isinstance(private, rsa.RSAPrivateKey):
            check_rsa_bits(private.key_size)
            return _RsaKey(kid, private)
        raise ConfigurationError(f"The key material is not a key for {alg}.")

    @classmethod
    def from_public_jwk(cls, jwk: Mapping[str, Any]) -> JoseKey:
        """A verify-only key from a public JWK, as a resource server reads from JWKS.

        ``kty``/``crv`` decide the algorithm; an ``alg`` member, if present, must agree, and
        ``use``, if present, must be ``sig``. ``kid`` defaults to the RFC 7638 thumbprint.
        """
        if not isinstance(jwk, Mapping):
            raise ConfigurationError("A JWK must be a JSON object.")
        public = public_key_from_jwk(jwk)
        key: JoseKey
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ConfigurationError("The JWK 'kid' must be a string.")
        if isinstance(public, ec.EllipticCurvePublicKey):
            key = _EcdsaKey(kid, None, public)
        elif isinstance(public, ed25519.Ed25519PublicKey):
            key = _Ed25519Key(kid, None, public)
        else:
            check_rsa_bits(public.key_size)
            key = _RsaKey(kid, None, public)
        if jwk.get("alg", key.alg) != key.alg:
            raise ConfigurationError("The JWK 'alg' does not match its key type.")
        if jwk.get("use", "sig") != "sig":
            raise ConfigurationError("The JWK is not a signature key ('use' must be 'sig').")
        return key


class _HmacKey(JoseKey):
    __slots__ = ("_keyed", "_secret")

    _secret: bytes
    #: HMAC-SHA256 already keyed with the secret, copied for each message. ``hmac.digest``
    #: looks SHA-256 up in OpenSSL and derives the inner and outer pads on every call, which
    #: cost about 3 of the 5.5 us a verification took on the benchmark machine.
    _keyed: HMAC

    def __init__(self, kid: str | None, secret: bytes) -> None:
        self._init(kid if kid is not None else secrets.token_urlsafe(16), "HS256", 32)
        object.__setattr__(self, "_secret", secret)
        object.__setattr__(self, "_keyed", HMAC(secret, _SHA256))

    @property
    def can_sign(self) -> bool:
        return True

    def sign(self, signing_input: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(signing_input)
        return mac.finalize()

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        mac = self._keyed.copy()
        mac.update(signing_input)
        try:
            mac.verify(signature)  # constant-time comparison
        except InvalidSignature:
            return False
        return True

    def public_jwk(self) -> None:
        return None

    def to_material(self) -> bytes:
        return self._secret


class _AsymmetricKey(JoseKey):
    """Shared plumbing for the three public-key algorithms."""

    __slots__ = ("_jwk", "_private", "_public")

    _private: Any
    _public: Any
    _jwk: dict[str, str]

    _ALG: ClassVar[Algorithm]

    def __init__(self, kid: str | None, private: Any, public: Any = None) -> None:
        if private is not None:
            public = private.public_key()
        members = public_members(public)
        self._init(kid if kid is not None else thumbprint(members), self._ALG, self._size(public))
        object.__setattr__(self, "_private", private)
        object.__setattr__(self, "_public", public)
        object.__setattr__(
            self, "_jwk", {**members, "kid": self.kid, "alg": self.alg, "use": "sig"}
        )

    @staticmethod
    def _size(public: Any) -> int:
        return 64  # ES256 r||s and Ed25519 signatures alike; RSA overrides this

    @property
    def can_sign(self) -> bool:
        return self._private is not None

    def public_jwk(self) -> dict[str, str]:
        return dict(self._jwk)

    def to_material(self) -> bytes:
        if self._private is None:
            raise ConfigurationError("This key is public-only.")
        return bytes(
            self._private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def _signer(self) -> Any:
        if self._private is None:
            raise ConfigurationError("This key is public-only and cannot sign.")
        return self._private


class _EcdsaKey(_AsymmetricKey):
    __slots__ = ()

    _ALG = "ES256"

    def sign(self, signing_input: bytes) -> bytes:
        # JWS wants the fixed-size r || s form (RFC 7518 section 3.4), not DER.
        r, s = decode_dss_signature(self._signer().sign(signing_input, _ECDSA_SHA256))
        return r.to_bytes(_P256_SCALAR_BYTES, "big") + s.to_bytes(_P256_SCALAR_BYTES, "big")

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 2 * _P256_SCALAR_BYTES:
            return False
        der = encode_dss_signature(
            int.from_bytes(signature[:_P256_SCALAR_BYTES], "big"),
            int.from_bytes(signature[_P256_SCALAR_BYTES:], "big"),
        )
        try:
            self._public.verify(der, signing_input, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True


class _Ed25519Key(_AsymmetricKey):
    __slots__ = ()

    _ALG = "EdDSA"

    def sign(self, signing_input: bytes) -> bytes:
        return bytes(self._signer().sign(signing_input))

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        try:
            self._public.verify(signature, signing_input)
        except InvalidSignature:
            return False
        return True


class _RsaKey(_AsymmetricKey):
    __slots__ = ()

    _ALG = "RS256"

    @staticmethod
    def _size(public: Any) -> int:
        return (int(public.key_size) + 7) // 8

    def sign(self, signing_input: bytes) -> bytes:
        return bytes(self._signer().sign(signing_input, _PKCS1V15, _SHA256))

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != self.signature_size:
            return False
        try:
            self._public.verify(signature, signing_input, _PKCS1V15, _SHA256)
        except InvalidSignature:
            return False
        return True


def _check_kid(kid: object) -> None:
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH or not kid.isprintable():
        raise ConfigurationError("A kid must be a printable string of 1 to 256 characters.")
