"""E-mail addresses: validated by email-validator and folded to one canonical form."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from twofold.errors import InvalidEmail

MAX_EMAIL_LENGTH = 254  # RFC 5321's path limit less the angle brackets


def normalize_email(address: str) -> str:
    """The canonical form used as the account's key.

    The domain is IDNA-normalised by email-validator; the local part is lower-cased too,
    because every major provider treats it case-insensitively and two accounts that differ
    only in case are a phishing aid, not a feature.
    """
    if not isinstance(address, str):
        raise InvalidEmail()
    # NFKC first: a full-width or ligature spelling of an address is the same address, not
    # a second account that looks identical to the first.
    address = unicodedata.normalize("NFKC", address.strip())
    if len(address) > MAX_EMAIL_LENGTH:
        raise InvalidEmail()
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidEmail() from None
    return checked.normalized.lower()
