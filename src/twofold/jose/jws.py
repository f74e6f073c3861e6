"""Compact JWS (RFC 7515): signing, and verification that trusts nothing in the token.

Verification runs in a fixed order, cheapest and safest first: type and size, three
segments, the header (strict JSON, at most 1 KiB), header rules, the key by ``kid`` from the
ring, ``alg`` against that key, ``typ``, the signature -- and only then is the payload
decoded (SECURITY.md T1). What it refuses, and why:

- ``alg`` must equal the algorithm of the key the ring holds under ``kid``: the token never
  chooses the algorithm, so ``none`` and algorithm confusion are impossible (T2).
- ``kid`` is required and is only a dictionary look-up (T3).
- ``jku``, ``jwk``, ``x5u`` and ``x5c`` would let a token bring its own key. They are never
  used, and a token carrying one is rejected outright rather than silently half-read (T3).
- ``crit`` is rejected: Twofold understands no extensions (T7). ``b64`` (RFC 7797) is only
  meaningful under ``crit`` and is rejected too.
- Malformed, non-canonical or oversized input raises ``InvalidToken``, never anything else.

Every failure raises :class:`~twofold.errors.InvalidToken` with a short, safe ``reason``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from twofold.errors import InvalidToken
from twofold.jose.b64 import b64url_decode, b64url_encode
from twofold.jose.keyring import KeyRing
from twofold.jose.keys import JoseKey

__all__ = [
    "MAX_HEADER_LENGTH",
    "MAX_REMEMBERED_HEADERS",
    "MAX_TOKEN_LENGTH",
    "JwsVerifier",
    "parse_json_object",
    "sign",
    "verify",
]

#: Longest compact token accepted, checked before anything else is done with it.
MAX_TOKEN_LENGTH = 8 * 1024
#: Longest encoded header accepted; also bounds how deeply a header can nest.
MAX_HEADER_LENGTH = 1024
#: How many distinct verified headers a :class:`JwsVerifier` keeps (one per signing key).
MAX_REMEMBERED_HEADERS = 64

_KEY_CARRYING = frozenset({"jku", "jwk", "x5u", "x5c"})
_REJECTED_HEADERS = _KEY_CARRYING | {"crit", "b64"}
# Set by sign() from the key; a caller can neither override them nor emit rejected headers.
_RESERVED_HEADERS = _REJECTED_HEADERS | {"alg", "kid"}


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Two parsers could disagree on which duplicate wins (RFC 7515 section 5.2).
        raise ValueError("duplicate member name")
    return obj


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


# Built once: NaN/Infinity/-Infinity are not JSON, and duplicate names are refused.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant
)
# The decoder's C scanner, called directly: JSONDecoder.decode() adds two regex passes for
# surrounding whitespace, which a token never needs, to a path that runs on every request.
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def parse_json_object(data: bytes) -> dict[str, Any]:
    """Strictly parse UTF-8 JSON that must be an object; ``InvalidToken("malformed")`` if not.

    Rejects duplicate member names, the non-JSON constants ``NaN`` and ``Infinity``, and
    whitespace around the object. Nesting too deep for the parser is reported as malformed,
    never as ``RecursionError``.
    """
    try:
        text = data.decode("utf-8")
        value, end = _SCAN(text, 0)
    except (ValueError, RecursionError, StopIteration):
        raise InvalidToken("malformed") from None
    if end != len(text) or type(value) is not dict:
        raise InvalidToken("malformed")
    return value


def _media_type(typ: str) -> str:
    # RFC 7515 section 4.1.9 and RFC 8725 section 3.11: compared case-insensitively, with
    # "application/" implied when the value has no "/".
    typ = typ.lower()
    return typ if "/" in typ else "application/" + typ


def sign(header_extra: Mapping[str, Any], payload: bytes, key: JoseKey) -> str:
    """Sign ``payload`` as a compact JWS whose header has the key's ``alg`` and ``kid``.

    ``header_extra`` adds members such as ``typ``; it may not set ``alg``, ``kid`` or any
    header this module rejects. Raises ``ValueError`` for those, and for a token that would
    be longer than :data:`MAX_TOKEN_LENGTH`.
    """
    clash = _RESERVED_HEADERS.intersection(header_extra)
    if clash:
        raise ValueError(f"header members set by the key or never emitted: {sorted(clash)}")
    header = {"alg": key.alg, "kid": key.kid, **header_extra}
    encoded_header = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    signing_input = f"{encoded_header}.{b64url_encode(payload)}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    if len(encoded_header) > MAX_HEADER_LENGTH or len(token) > MAX_TOKEN_LENGTH:
        raise ValueError("the token would be too large to verify")
    return token


def verify(
    token: str,
    keyring: KeyRing,
    *,
    typ: str | None,
    max_length: int = MAX_TOKEN_LENGTH,
) -> tuple[dict[str, Any], bytes]:
    """Verify a compact JWS against the ring and return ``(header, payload)``.

    ``typ``, when given, must match the header's ``typ`` as a media type (so ``at+jwt``
    matches ``application/at+jwt``); None skips the check. The payload is returned as bytes,
    decoded only after the signature has been verified. For a hot path, build a
    :class:`JwsVerifier` once instead.
    """
    return _verify(token, keyring, typ, max_length, None)


class JwsVerifier:
    """:func:`verify` bound to one ring and ``typ``, remembering headers it has accepted.

    Every token a key signs carries the same header, so once a header has come with a valid
    signature its parsed form and key are kept, keyed by its exact encoded text, and later
    tokens skip decoding and re-checking it (about a fifth of an HS256 verification). The
    signature is still verified on every call. Only signature-verified headers are kept, and
    at most :data:`MAX_REMEMBERED_HEADERS`, so a forger cannot grow the memo.
    """

    __slots__ = ("_keyring", "_max_length", "_memo", "_typ")

    def __init__(
        self, keyring: KeyRing, *, typ: str | None, max_length: int = MAX_TOKEN_LENGTH
    ) -> None:
        self._keyring = keyring
        self._typ = typ
        self._max_length = max_length
        self._memo: dict[str, tuple[dict[str, Any], JoseKey]] = {}

    def verify(self, token: str) -> tuple[dict[str, Any], bytes]:
        """Same checks and result as :func:`verify`."""
        header, payload = _verify(token, self._keyring, self._typ, self._max_length, self._memo)
        return dict(header), payload  # a copy: the remembered header must stay as verified

    def verify_payload(self, token: str) -> bytes:
        """Same checks as :meth:`verify`; only the payload, for callers that ignore the header.

        Saves copying the header on a path that runs on every authenticated request.
        """
        return _verify(token, self._keyring, self._typ, self._max_length, self._memo)[1]


def _verify(
    token: str,
    keyring: KeyRing,
    typ: str | None,
    max_length: int,
    memo: dict[str, tuple[dict[str, Any], JoseKey]] | None,
) -> tuple[dict[str, Any], bytes]:
    if type(token) is not str:
        raise InvalidToken("malformed")
    if len(token) > max_length:
        raise InvalidToken("oversized")
    if not token.isascii():
        raise InvalidToken("malformed")
    segments = token.split(".")
    if len(segments) != 3:
        raise InvalidToken("malformed")
    encoded_header, encoded_payload, encoded_signature = segments
    known = None if memo is None else memo.get(encoded_header)
    if known is None:
        header, key = _check_header(encoded_header, keyring, typ)
    else:
        header, key = known

    # Every valid signature for this key has one length, so check it before decoding.
    if len(encoded_signature) != (key.signature_size * 4 + 2) // 3:
        raise InvalidToken("bad_signature")
    try:
        signature = b64url_decode(encoded_signature)
    except ValueError:
        raise InvalidToken("malformed") from None
    signing_input = token[: len(encoded_header) + 1 + len(encoded_payload)].encode("ascii")
    if not key.verify(signing_input, signature):
        raise InvalidToken("bad_signature")

    try:
        payload = b64url_decode(encoded_payload)
    except ValueError:
        raise InvalidToken("malformed") from None
    if known is None and memo is not None and len(memo) < MAX_REMEMBERED_HEADERS:
        memo[encoded_header] = (header, key)
    return header, payload  # the remembered header itself: JwsVerifier copies it


def _check_header(
    encoded_header: str, keyring: KeyRing, typ: str | None
) -> tuple[dict[str, Any], JoseKey]:
    """Decode and check a header; return it with the ring's key for its ``kid``."""
    if len(encoded_header) > MAX_HEADER_LENGTH:
        raise InvalidToken("oversized")
    try:
        raw_header = b64url_decode(encoded_header)
    except ValueError:
        raise InvalidToken("malformed") from None
    header = parse_json_object(raw_header)

    if not _REJECTED_HEADERS.isdisjoint(header):
        raise InvalidToken("unsupported_header")
    kid = header.get("kid")
    if kid is None:
        raise InvalidToken("unknown_key")
    if type(kid) is not str:
        raise InvalidToken("malformed")
    key = keyring.get(kid)
    if key is None:
        raise InvalidToken("unknown_key")
    if header.get("alg") != key.alg:
        raise InvalidToken("algorithm_mismatch")
    if typ is not None:
        token_typ = header.get("typ")
        if token_typ != typ and (
            type(token_typ) is not str or _media_type(token_typ) != _media_type(typ)
        ):
            raise InvalidToken("wrong_type")
    return header, key
