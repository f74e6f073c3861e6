"""CSRF proof for cookie-authenticated state changes (SECURITY.md B1).

Two checks, both required: a token bound to the session (an HMAC of the session id, so it
needs no storage and dies with the session) compared in constant time, and an Origin or
Referer that names this server. Before login, forms are bound the same way to a random
value in a separate cookie (login CSRF).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from twofold.errors import CsrfFailed

HEADER = "x-csrf-token"
FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfGuard:
    def __init__(self, key: bytes, trusted_origins: frozenset[str]) -> None:
        self._key = key
        self._trusted = trusted_origins

    def token_for(self, binding: str, *, purpose: str = "session") -> str:
        mac = hmac.digest(self._key, f"{purpose}:{binding}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def check(
        self, request: Request, binding: str, presented: str | None, *, purpose: str = "session"
    ) -> None:
        """Raise ``CsrfFailed`` unless the origin is ours and ``presented`` matches."""
        self.check_origin(request)
        expected = self.token_for(binding, purpose=purpose)
        if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise CsrfFailed()

    def check_origin(self, request: Request) -> None:
        """Origin (or, lacking it, Referer) must be this server or a trusted origin.

        A request with neither comes from a non-browser client: the token still applies.
        """
        origin = request.headers.get("origin")
        if origin is None:
            referer = request.headers.get("referer")
            if referer is None:
                return
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._allowed(request):
            raise CsrfFailed("The request comes from another origin.")

    def _allowed(self, request: Request) -> frozenset[str]:
        host = request.headers.get("host")
        own = {f"{request.url.scheme}://{host}"} if host else set()
        return self._trusted | own
