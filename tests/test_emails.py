"""E-mail addresses: one canonical form per mailbox, anything else refused."""

from __future__ import annotations

import pytest

from twofold.emails import MAX_EMAIL_LENGTH, normalize_email
from twofold.errors import InvalidEmail, InvalidRequest

LABEL = "b" * 63


def address_of_length(length: int) -> str:
    """A syntactically valid address of exactly ``length`` characters (>= 200)."""
    local = "a" * 64
    last = length - len(local) - 1 - 2 * (len(LABEL) + 1) - len(".com")
    return f"{local}@{LABEL}.{LABEL}.{'c' * last}.com"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("alice@example.com", "alice@example.com"),
        ("Alice@Example.COM", "alice@example.com"),
        ("ALICE.SMITH@EXAMPLE.COM", "alice.smith@example.com"),
        ("  alice@example.com\t\n", "alice@example.com"),
        ("Ä@Example.com", "ä@example.com"),
    ],
    ids=["canonical", "mixed-case", "upper-case", "surrounding-whitespace", "non-ascii-local"],
)
def test_case_and_whitespace_are_folded(given: str, expected: str) -> None:
    """Case and surrounding whitespace do not make a different address."""
    assert normalize_email(given) == expected


@pytest.mark.parametrize(
    "given",
    ["user@bücher.de", "user@BÜCHER.DE", "User@Bücher.De", "user@xn--bcher-kva.de"],
    ids=["unicode", "unicode-upper", "mixed", "punycode"],
)
def test_idn_domain_has_one_canonical_form(given: str) -> None:
    """An internationalised domain, in Unicode or punycode, in any case, folds to one key."""
    assert normalize_email(given) == "user@bücher.de"


def test_normalisation_is_idempotent() -> None:
    """Normalising a normalised address changes nothing."""
    once = normalize_email(" Alice.Smith@BÜCHER.de ")
    assert normalize_email(once) == once


def test_address_of_max_length_is_accepted() -> None:
    """An address of exactly 254 characters is accepted."""
    address = address_of_length(MAX_EMAIL_LENGTH)
    assert len(address) == MAX_EMAIL_LENGTH == 254
    assert normalize_email(address) == address


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        "plainaddress",
        "a@b@example.com",
        "@example.com",
        "alice@",
        "alice @example.com",
        "alice@example..com",
        address_of_length(255),
        "a" * 10_000 + "@example.com",
    ],
    ids=[
        "empty",
        "blank",
        "no-at",
        "two-at",
        "no-local-part",
        "no-domain",
        "inner-space",
        "empty-label",
        "255-chars",
        "10k-chars",
    ],
)
def test_invalid_addresses_are_refused(given: str) -> None:
    """Malformed or over-long (> 254) addresses raise InvalidEmail."""
    with pytest.raises(InvalidEmail):
        normalize_email(given)


@pytest.mark.parametrize(
    "given",
    [None, 42, b"alice@example.com", ["alice@example.com"]],
    ids=["none", "int", "bytes", "list"],
)
def test_non_strings_are_refused(given: object) -> None:
    """Anything but a str raises InvalidEmail, not a TypeError."""
    with pytest.raises(InvalidEmail):
        normalize_email(given)  # type: ignore[arg-type]


def test_invalid_email_is_a_request_error_with_a_code() -> None:
    """InvalidEmail is a 4xx-style InvalidRequest with its own machine code."""
    with pytest.raises(InvalidRequest) as caught:
        normalize_email("nope")
    assert caught.value.code == "invalid_email"


@pytest.mark.parametrize(
    ("lookalike", "plain"),
    [
        pytest.param("\uff41dmin@example.com", "admin@example.com", id="fullwidth"),
        pytest.param("\ufb01le@example.com", "file@example.com", id="ligature"),
        pytest.param("ADMIN@EXAMPLE.COM", "admin@example.com", id="case"),
    ],
)
def test_lookalike_spellings_are_one_address(lookalike: str, plain: str) -> None:
    """Compatibility spellings fold to one address, so no second account looks the same."""
    assert normalize_email(lookalike) == normalize_email(plain)
