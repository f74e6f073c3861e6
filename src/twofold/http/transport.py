"""How credentials travel: the session cookie and the Bearer header (not what they are)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.responses import Response

from twofold.errors import InvalidToken
from twofold.sessions import IssuedSession

MAX_BEARER_LENGTH = 8192
REFRESH_PATH = "/auth/refresh"
DEVICE_COOKIE_LIFETIME = 365 * 86_400


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """Session cookie attributes (SECURITY.md S5).

    Over HTTPS the name carries the ``__Host-`` prefix, which makes the browser insist on
    Secure, Path=/ and no Domain. Over plain HTTP (development on loopback) it cannot.
    """

    secure: bool

    @property
    def session_name(self) -> str:
        return "__Host-twofold_session" if self.secure else "twofold_session"

    @property
    def csrf_name(self) -> str:
        return "__Host-twofold_csrf" if self.secure else "twofold_csrf"

    def set(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def set_session(self, response: Response, issued: IssuedSession) -> None:
        """The session cookie, living as long as the session can at most."""
        record = issued.record
        remaining = int(record.absolute_expires_at - record.last_seen_at)
        self.set(response, self.session_name, issued.id, max_age=max(0, remaining))

    def clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")

    @property
    def device_name(self) -> str:
        return "__Host-twofold_device" if self.secure else "twofold_device"

    def set_device(self, response: Response, value: str) -> None:
        """The known-device cookie (``throttle.py``): sent only with our own pages'
        requests (SameSite=Strict), kept a year."""
        response.set_cookie(
            self.device_name,
            value,
            max_age=DEVICE_COOKIE_LIFETIME,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    @property
    def refresh_name(self) -> str:
        # __Secure-, not __Host-: the cookie is scoped to the refresh path, not Path=/.
        return "__Secure-twofold_refresh" if self.secure else "twofold_refresh"

    def set_refresh(self, response: Response, token: str, max_age: int) -> None:
        """A browser's refresh token: HttpOnly, SameSite=Strict, sent to the refresh
        endpoint only, so page scripts and every other request never see it."""
        response.set_cookie(
            self.refresh_name,
            token,
            max_age=max(0, max_age),
            path=REFRESH_PATH,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def clear_refresh(self, response: Response) -> None:
        response.delete_cookie(
            self.refresh_name,
            path=REFRESH_PATH,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )


def session_cookie(request: HTTPConnection, policy: CookiePolicy) -> str | None:
    """The session id, from the cookie only: never from the URL or the body (S4)."""
    return request.cookies.get(policy.session_name) or None


def refresh_cookie(request: HTTPConnection, policy: CookiePolicy) -> str | None:
    return request.cookies.get(policy.refresh_name) or None


def bearer_token(request: HTTPConnection) -> str | None:
    """The Bearer token of the Authorization header (RFC 6750 section 2.1), or None if there
    is none: another scheme (Basic, say) carries no Bearer credentials (section 3.1).

    A Bearer header that is not a well-formed token is an invalid token.
    """
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token or " " in token:
        raise InvalidToken("malformed")
    if len(token) > MAX_BEARER_LENGTH:
        raise InvalidToken("oversized")
    return token
