"""A minimal, strict JOSE layer for access tokens, written on ``cryptography`` and the stdlib.

Layers, each importing only those above it in this list:

- ``b64``: strict unpadded base64url.
- ``jwk``: public JWK members and RFC 7638 thumbprints.
- ``keys``: ``JoseKey``, one key with exactly one algorithm (HS256, ES256, EdDSA, RS256).
- ``keyring``: ``KeyRing``, the fixed table of keys a token's ``kid`` is looked up in.
- ``jws``: compact JWS signing and strict verification.
- ``jwt``: RFC 9068 access tokens (``AccessTokenCodec``).
"""

from __future__ import annotations

from twofold.jose.jwt import AccessClaims, AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import Algorithm, JoseKey

__all__ = ["AccessClaims", "AccessTokenCodec", "Algorithm", "JoseKey", "KeyRing", "TokenPolicy"]
