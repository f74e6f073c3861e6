"""Strict unpadded base64url."""

from __future__ import annotations

import base64
import itertools
import os

import pytest

from twofold.jose.b64 import b64url_decode, b64url_encode

_URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _oracle(text: str) -> bytes | None:
    """The one byte string ``text`` canonically encodes, or None: stdlib decode + re-encode."""
    if len(text) % 4 == 1 or any(char not in _URLSAFE for char in text):
        return None
    decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return decoded if b64url_encode(decoded) == text else None


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 31, 32, 33, 64, 256], ids=lambda n: f"{n}B")
def test_round_trip_matches_the_standard_library(size: int) -> None:
    """Encoding is the stdlib's URL-safe alphabet with padding stripped, and decodes back."""
    data = os.urandom(size)
    encoded = b64url_encode(data)
    assert encoded == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert "=" not in encoded
    assert b64url_decode(encoded) == data


@pytest.mark.parametrize(
    "text",
    [
        "QQ==",
        "QQ=",
        "QUJD=",
        "QUI+",
        "QUI/",
        "QU!D",
        "QUJD\n",
        " QUJD",
        "QUJ D",
        "QUJé",
        "QUJDR",
        "QR",
        "QUJ",
        "QUJDRB",
    ],
    ids=[
        "padding-2",
        "padding-1",
        "padding-after-full-block",
        "plus",
        "slash",
        "bang",
        "trailing-newline",
        "leading-space",
        "inner-space",
        "non-ascii",
        "impossible-length",
        "trailing-bits-1-byte",
        "trailing-bits-2-bytes",
        "trailing-bits-after-block",
    ],
)
def test_rejects_non_canonical_or_foreign_text(text: str) -> None:
    """Padding, foreign characters, impossible lengths and set trailing bits raise ValueError."""
    with pytest.raises(ValueError, match=r"."):
        b64url_decode(text)


def test_every_two_and_three_character_string_agrees_with_the_oracle() -> None:
    """Over all short strings, decode accepts exactly the canonical encodings."""
    alphabet = _URLSAFE + "+/= .*"
    for length in (1, 2, 3):
        for chars in itertools.product(alphabet, repeat=length):
            text = "".join(chars)
            expected = _oracle(text)
            if expected is None:
                with pytest.raises(ValueError, match=r"."):
                    b64url_decode(text)
            else:
                assert b64url_decode(text) == expected


@pytest.mark.parametrize("value", [b"QUJD", None, 42], ids=["bytes", "none", "int"])
def test_rejects_non_str_input(value: object) -> None:
    """Only str is decoded; bytes and other types raise ValueError rather than TypeError."""
    with pytest.raises(ValueError, match="str"):
        b64url_decode(value)  # type: ignore[arg-type]
