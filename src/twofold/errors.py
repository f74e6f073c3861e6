"""One root exception with a shallow tree; each class carries a short machine ``code``.

Only the HTTP layer turns these into status codes (see ``twofold.http.errors``).
Messages never contain secrets, tokens, session ids or passwords.
"""

from __future__ import annotations

from typing import ClassVar


class TwofoldError(Exception):
    """Root of every error Twofold raises on purpose."""

    code: ClassVar[str] = "error"
    default_detail: ClassVar[str] = "The request could not be completed."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class InvalidRequest(TwofoldError):
    """Input that is malformed or breaks a rule (a 4xx for the caller to fix)."""

    code = "invalid_request"
    default_detail = "The request is malformed."


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported_media_type"
    default_detail = "The request body must be JSON (Content-Type: application/json)."


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"
    default_detail = "The request body is too large."


class InvalidEmail(InvalidRequest):
    code = "invalid_email"
    default_detail = "The e-mail address is not valid."


class WeakPassword(InvalidRequest):
    code = "weak_password"
    default_detail = "The password does not meet the password rules."


class InvalidTarget(InvalidRequest):
    """An exchange for an audience that is not configured (RFC 8693 ``invalid_target``)."""

    code = "invalid_target"
    default_detail = "Tokens cannot be issued for that audience."


class InvalidScope(InvalidRequest):
    """Scopes the caller does not hold, or none at all (RFC 6749 ``invalid_scope``)."""

    code = "invalid_scope"
    default_detail = "The requested scope is invalid or exceeds what the caller holds."


class AuthenticationFailed(TwofoldError):
    """Wrong e-mail or password; deliberately the same for both (SECURITY.md P2)."""

    code = "invalid_credentials"
    default_detail = "The e-mail address or password is incorrect."

    def __init__(self, *, user_id: str | None = None, reason: str = "bad_credentials") -> None:
        super().__init__()
        # For the audit log only; the answer is the same whatever these are.
        self.user_id = user_id
        self.reason = reason


class NotAuthenticated(TwofoldError):
    """No valid session or token came with the request."""

    code = "unauthenticated"
    default_detail = "Authentication is required."


class InvalidToken(NotAuthenticated):
    """A bearer token that failed verification; ``reason`` is a short, safe explanation."""

    code = "invalid_token"
    default_detail = "The access token is invalid."

    def __init__(self, reason: str = "invalid") -> None:
        self.reason = reason
        super().__init__(f"The access token is invalid ({reason}).")


class InvalidGrant(NotAuthenticated):
    """A refresh token that is unknown, expired, spent or of an ended family (RFC 6749
    ``invalid_grant``); which of these it was is not told."""

    code = "invalid_grant"
    default_detail = "The refresh token is invalid or expired."


class InvalidClient(TwofoldError):
    """Client authentication failed (RFC 6749 section 5.2 ``invalid_client``)."""

    code = "invalid_client"
    default_detail = "Client authentication failed."


class CsrfFailed(TwofoldError):
    code = "csrf_failed"
    default_detail = "The request lacks valid CSRF proof."


class Forbidden(TwofoldError):
    code = "forbidden"
    default_detail = "You are not allowed to do this."


class ReauthenticationFailed(Forbidden):
    """The current password, asked for again before a sensitive change, was wrong (P4)."""

    code = "reauthentication_failed"
    default_detail = "The current password is incorrect."


class NotFound(TwofoldError):
    code = "not_found"
    default_detail = "Not found."


class Conflict(TwofoldError):
    code = "conflict"
    default_detail = "The resource already exists."


class Throttled(TwofoldError):
    """Too many failed logins from this client or for this account (SECURITY.md P3); the
    same answer whether or not the account exists."""

    code = "too_many_attempts"
    default_detail = "Too many failed attempts."

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        unit = "second" if self.retry_after == 1 else "seconds"
        super().__init__(f"Too many failed attempts; try again in {self.retry_after} {unit}.")


class StoreUnavailable(TwofoldError):
    """The backing store cannot be reached; callers fail closed (SECURITY.md O3)."""

    code = "store_unavailable"
    default_detail = "The service is temporarily unavailable."


class Busy(TwofoldError):
    """The server is saturated (e.g. password hashing); the caller should retry shortly."""

    code = "busy"
    default_detail = "The server is busy; try again in a moment."


class ConfigurationError(TwofoldError):
    code = "configuration_error"
    default_detail = "The configuration is invalid."
