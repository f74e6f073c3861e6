"""Strict, unpadded base64url (RFC 7515 section 2 and appendix C).

Decoding accepts exactly one spelling of each byte string: no ``=`` padding, nothing outside
the URL-safe alphabet (no ``+``, ``/``, whitespace or non-ASCII), no impossible length and no
non-zero trailing bits. Without the last rule ``"AB"`` and ``"AC"`` would decode to the same
byte, so a signed token could be re-spelled without touching its signature (SECURITY.md T7).
"""

from __future__ import annotations

import binascii

__all__ = ["b64url_decode", "b64url_encode"]

_URLSAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# One translate() pass turns the URL-safe alphabet into the standard one and turns the
# characters that are valid in standard base64 but not here ('+', '/', '=') into '*', which
# a2b_base64(strict_mode=True) then rejects along with everything else outside the alphabet.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/***")
_FROM_STANDARD = bytes.maketrans(b"+/", b"-_")

# An unpadded length of 4k+2 characters carries one byte (the last character holds 2 bits
# of data and 4 zero bits); 4k+3 carries two bytes (2 zero bits). A canonical encoder always
# writes those spare bits as zero, so the last character must be one of these.
_CANONICAL_LAST: tuple[bytes, ...] = (
    b"",
    b"",
    _URLSAFE[::16],
    _URLSAFE[::4],
)
_PADDING = (b"", b"", b"==", b"=")


def b64url_encode(data: bytes) -> str:
    """Encode bytes as base64url without padding."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_FROM_STANDARD).decode()


def b64url_decode(data: str) -> bytes:
    """Decode unpadded base64url, accepting only the canonical spelling.

    Raises ``ValueError`` for padding, characters outside the URL-safe alphabet, an
    impossible length, or non-zero trailing bits.
    """
    if type(data) is not str:
        raise ValueError("base64url input must be a str")
    try:
        raw = data.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("base64url input must be ASCII") from None
    rem = len(raw) & 3
    if rem == 1:
        raise ValueError("impossible base64url length")
    if rem and raw[-1] not in _CANONICAL_LAST[rem]:
        raise ValueError("non-canonical base64url (trailing bits set or bad character)")
    try:
        return binascii.a2b_base64(raw.translate(_TO_STANDARD) + _PADDING[rem], strict_mode=True)
    except binascii.Error:
        raise ValueError("invalid base64url") from None
